import FerryCore
import FerryTestSupport
import NIOCore
import PGOutput
import PostgresReplication
import PostgresWire
import Testing

/// Sample values of one type, as SQL input text (nil = NULL).
struct Sample: Sendable, CustomStringConvertible {
    var type: String
    var inputs: [String?]
    init(_ type: String, _ inputs: [String?]) {
        self.type = type
        self.inputs = inputs
    }
    var description: String { type }
}

let allBytes = "\\x" + (0...255).map { byte in
    let digits = Array("0123456789abcdef")
    return String([digits[byte >> 4], digits[byte & 15]])
}.joined()

/// Types whose text and binary forms decode to the same Value.
let roundTripSamples: [Sample] = [
    Sample("bool", ["t", "f", nil]),
    Sample("int2", ["-32768", "32767", "0"]),
    Sample("int4", ["-2147483648", "2147483647", "42"]),
    Sample("int8", ["-9223372036854775808", "9223372036854775807", "0"]),
    Sample("oid", ["4294967295", "0"]),
    Sample("float4", ["NaN", "Infinity", "-Infinity", "-0", "0.1", "1e6", "100000", "3.4028235e38", "1.17549435e-38",
                      "1e-45", "123456.7", "-2.5"]),
    Sample("float8", ["NaN", "Infinity", "-Infinity", "-0", "0.1", "1e15", "123456789012345", "1e-5", "0.0001",
                      "5e-324", "1.7976931348623157e308", "3.141592653589793", "1e100", "-2.5e-300", "123456789012345678"]),
    Sample("numeric", ["NaN", "Infinity", "-Infinity", "0", "-0.000", "1.50", "0.0001", "1e-30",
                       "123456789012345678901234567890123456789012.123456789012345678901234567890",
                       "-99999999999999999999.9999", "10000", "0.1", "1e20"]),
    Sample("numeric(10,3)", ["3.14159", "-1"]),
    Sample("text", ["", "hello", "quote ' \" \\ backslash", "tab\there\nnewline\r", "ünïcødé ✓ 😀", "NULL"]),
    Sample("varchar(10)", ["abc", ""]),
    Sample("char(5)", ["ab", "abcde"]),
    Sample("\"char\"", ["x", "", "\\351"]),
    Sample("name", ["pg_class"]),
    Sample("bytea", [allBytes, "\\x", "\\x00"]),
    Sample("date", ["2000-01-01", "2024-02-29", "0044-03-15 BC", "4714-11-24 BC", "5874897-12-31", "infinity", "-infinity",
                    "0001-01-01", "0001-12-31 BC", "1970-01-01"]),
    Sample("time", ["00:00:00", "13:45:00.5", "23:59:59.999999", "24:00:00"]),
    Sample("time(3)", ["13:45:00.12345"]),
    Sample("timetz", ["12:00:00.5+05:30", "23:59:59-08", "00:00:00+00", "12:00:00+01:02:03", "08:00:00-15:59"]),
    Sample("timestamp", ["2024-02-29 13:45:00.123456", "infinity", "-infinity", "0044-03-15 12:00:00 BC",
                         "4713-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999", "1999-12-31 23:59:59.999999",
                         "1970-01-01 00:00:00"]),
    Sample("timestamptz", ["2024-02-29 13:45:00.123456+00", "2024-02-29 19:15:00+05:30", "infinity", "-infinity",
                           "0044-03-15 12:00:00+00 BC", "1999-12-31 23:59:59.999999+00"]),
    Sample("interval", ["1 year 2 mons -3 days 04:05:06.5", "0", "-1 mon", "-00:00:01", "1 day -00:00:01",
                        "-178000000 years", "178000000 years", "1000 hours", "0.000001 sec", "-1 year -2 mons +3 days -04:05:06",
                        "2147483647 days", "-2562047788:00:54.775807"]),
    Sample("uuid", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000"]),
    Sample("json", ["{\"a\" : [1, 2.50, \"x\"]}", "null", "\"s\\u0000\""]),
    Sample("jsonb", ["{\"b\": [1, 2.50], \"a\": {\"c\": null}}", "[]", "\"ü\"", "1e400"]),
    Sample("xml", ["<a b=\"1\">text &amp; more</a>"]),
    Sample("inet", ["192.168.0.1/24", "10.1.2.3", "::1", "::ffff:1.2.3.4", "2001:db8::1/64", "fe80::1:2:3:4", "::", "1::",
                    "::1.2.3.4", "2001:0:0:1::a/64", "1:0:0:2:0:0:0:3", "0.0.0.0/0"]),
    Sample("cidr", ["10.0.0.0/8", "10.1.2.3/32", "2001:db8::/32", "::/0", "::ffff:0.0.0.0/96"]),
    Sample("macaddr", ["08:00:2b:01:02:03", "ff:ff:ff:ff:ff:ff"]),
    Sample("macaddr8", ["08:00:2b:01:02:03:04:05"]),
    Sample("money", ["-12345.67", "0.05", "92233720368547758.07", "-92233720368547758.08", "0"]),
    Sample("bit(4)", ["0101"]),
    Sample("varbit", ["", "101010101", "1"]),
    Sample("tsvector", ["a:1A,2 cat:3", "'x\\\\y' 'it''s' b:4B,5C,6D", ""]),
    Sample("int4[]", ["{}", "{1,2,3}", "{{1,NULL},{3,4}}", "[0:1]={7,8}", "{{{1,2},{3,4}},{{5,6},{7,8}}}",
                      "[-2:-1][1:2]={{1,2},{3,4}}", "{NULL}"]),
    Sample("text[]", [#"{"a b",NULL,"NULL","c\"d","",e,"x\\y","{}",",","ünï"}"#, "{{a,b},{c,d}}", "{null,Null}"]),
    Sample("numeric[]", ["{1.50,NaN,-Infinity,NULL}"]),
    Sample("float8[]", ["{NaN,Infinity,-0,1e-300}"]),
    Sample("bool[]", ["{t,f,NULL}"]),
    Sample("bytea[]", [#"{"\\x00ff",NULL,"\\x"}"#]),
    Sample("date[]", [#"{infinity,"0044-03-15 BC",2024-02-29}"#]),
    Sample("timestamptz[]", [#"{"2024-02-29 13:45:00.123456+00",-infinity}"#]),
    Sample("interval[]", [#"{"1 day","-00:00:01"}"#]),
    Sample("uuid[]", ["{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"]),
    Sample("jsonb[]", [#"{"{\"a\": 1}",null,"[]"}"#]),
    Sample("json[]", [#"{"{\"a\" : 1}"}"#]),
    Sample("inet[]", ["{::1,10.0.0.1/8}"]),
    Sample("varchar[]", ["{a,b}"]),
    Sample("char(3)[]", ["{a,bc}"]),
    Sample("box[]", ["{(1,1),(0,0);(2,2),(1,1)}"]),
    Sample("money[]", ["{1.5,-2}"]),
    Sample("int4range", ["[1,5)", "empty", "(,5]", "[3,)", "(,)"]),
    Sample("numrange", ["[1.5,2.25]", "(0,)"]),
    Sample("tsrange", ["[2000-01-01 00:00,2000-01-02 00:00)", "[-infinity,infinity]"]),
    Sample("tstzrange", ["[2000-01-01 00:00+00,)"]),
    Sample("daterange", ["[2000-01-01,infinity)", "[2000-01-01,2000-01-01]"]),
    Sample("int8range", ["[-9223372036854775808,9223372036854775807)"]),
    Sample("int4multirange", ["{[1,3),[5,7)}", "{}"]),
    Sample("tsmultirange", ["{[2000-01-01 00:00,2000-01-02 00:00)}"]),
    Sample("int4range[]", [#"{"[1,5)",empty}"#]),
    Sample("point", ["(1.5,-2)", "(0.1,1e300)"]),
    Sample("line", ["{1,2,3}"]),
    Sample("lseg", ["[(1,2),(3,4)]"]),
    Sample("box", ["(1,1),(0,0)"]),
    Sample("path", ["((1,2),(3,4))", "[(1,2),(3,4)]"]),
    Sample("polygon", ["((0,0),(1,1),(1,0))"]),
    Sample("circle", ["<(1,2),3>"]),
    Sample("pg_lsn", ["16/B374D848", "0/0"]),
    Sample("tid", ["(0,1)", "(4294967295,65535)"]),
    Sample("xid8", ["18446744073709551615"]),
    Sample("hstore", ["a=>1, b=>NULL, \"c d\"=>\"x\\\"y\"", ""]),
    Sample("citext", ["MiXeD Case"]),
    Sample("mood", ["happy", "sad"]),
    Sample("mood[]", ["{happy,NULL,ok}"]),
    Sample("posint", ["42"]),
    Sample("posint[]", ["{1,2}"]),
    Sample("label", ["hi there"]),
    Sample("label2", ["domain over a domain"]),
    Sample("intlist", ["{1,2,3}"]),
    Sample("pair", ["(1,\"x y\")", "(,)", "(2,\"\")", "(3,\"a\\\\b\"\"c\")"]),
    Sample("pair[]", [#"{"(1,x)","(,)"}"#]),
    Sample("floatrange", ["[0.5,1]", "empty"]),
    Sample("floatmultirange", ["{[0.5,1],[2,3)}"]),
]

/// Types whose binary form Ferry keeps as bytes (``Value/unknownBinary(typeOID:bytes:)``):
/// their text decodes to ``Value/unknown(typeOID:text:)``.
let opaqueSamples: [Sample] = [
    Sample("tsquery", ["'a' & 'b'"]),
    Sample("regclass", ["pg_class"]),
    Sample("jsonpath", ["$.a[*] ? (@ > 1)"]),
    Sample("pg_snapshot", ["10:20:10,14,15"]),
]

/// The session settings Ferry uses for text values.
let sessionSettings = """
    SET DateStyle = 'ISO, MDY'; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3;
    SET lc_monetary = 'C'; SET bytea_output = 'hex'; SET client_encoding = 'UTF8'
    """

let customTypes = """
    CREATE EXTENSION hstore; CREATE EXTENSION citext;
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
    CREATE DOMAIN label AS text;
    CREATE DOMAIN label2 AS label;
    CREATE DOMAIN intlist AS int4[];
    CREATE TYPE pair AS (a int4, b text);
    CREATE TYPE floatrange AS RANGE (subtype = float8);
    """

/// Round trips against a real PostgreSQL: for every sample, the server's text output and
/// binary send output decode to the same Value, and that Value prints exactly as the server
/// printed it. The same again through pgoutput, with and without `binary 'true'`.
@Suite(.serialized) struct ValueRoundTripTests {
    @Test func textAndBinaryAgreeWithTheServer() async throws {
        try await withTestDatabase(.trust, prefix: "values") { db in
            try await db.psql(customTypes)
            let connection = try await PGConnection.connect(try ConnectionConfiguration.parse(db.url))
            try await connection.simpleQuery(sessionSettings)
            let decoder = ValueDecoder(registry: try TypeRegistry(rows: try await connection.query(TypeRegistry.query)))
            #expect(decoder.registry.count > 5)

            for sample in roundTripSamples + opaqueSamples {
                let select = Self.select(sample)
                let result = try #require(try await connection.simpleQuery(select).last, "\(sample)")
                let typeOID = try #require(result.fields.first?.typeOID)
                let binaryRows = try await Self.binaryCopy(connection, select)
                try #require(result.rows.count == sample.inputs.count && binaryRows.count == sample.inputs.count, "\(sample)")
                for (index, row) in result.rows.enumerated() {
                    let text = row[0]
                    let fromText = try decoder.decode(typeOID: typeOID, text: text)
                    let fromBinary: Value = try binaryRows[index].map { try decoder.decode(typeOID: typeOID, binary: $0) } ?? .null
                    let opaque = opaqueSamples.contains { $0.type == sample.type }
                    if opaque {
                        #expect(fromText == .unknown(typeOID: typeOID, text: text ?? ""), "\(sample.type)")
                        #expect(fromBinary == .unknownBinary(typeOID: typeOID, bytes: binaryRows[index] ?? []), "\(sample.type)")
                    } else {
                        #expect(fromText == fromBinary, "\(sample.type) \(text ?? "NULL")")
                    }
                    #expect(fromText.postgresText == text, "\(sample.type)")
                    #expect(fromText.isNull == (text == nil))
                }
            }
            await connection.close()
        }
    }

    /// Random values of the types Ferry formats itself (floats, dates, times, intervals,
    /// numerics): the server reads Ferry's `postgresText`, prints exactly the same text, and
    /// its binary form decodes to the same value.
    @Test func randomValuesPrintLikeTheServer() async throws {
        try await withTestDatabase(.trust, prefix: "values") { db in
            let connection = try await PGConnection.connect(try ConnectionConfiguration.parse(db.url))
            try await connection.simpleQuery(sessionSettings)
            var random = SplitMix(seed: 20_240_229)
            func uniform(_ range: ClosedRange<Int64>) -> Int64 {
                let width = UInt64(bitPattern: range.upperBound &- range.lowerBound) &+ 1
                return range.lowerBound &+ Int64(bitPattern: width == 0 ? random.next() : random.next() % width)
            }
            var cases: [(type: String, values: [Value])] = []
            cases.append(("float8", (0..<2000).map { index in
                // Random bit patterns cover every exponent; a third are small integers and short decimals.
                switch index % 3 {
                case 0: .float64(Double(bitPattern: random.next()))
                case 1: .float64(Double(uniform(-1_000_000...1_000_000)) / 1000)
                default: .float64(Double(uniform(-(1 << 53)...(1 << 53))))
                }
            }))
            cases.append(("float4", (0..<2000).map { index in
                index % 2 == 0 ? .float32(Float(bitPattern: UInt32(truncatingIfNeeded: random.next())))
                               : .float32(Float(uniform(-100_000...100_000)) / 100)
            }))
            cases.append(("numeric", (0..<500).map { _ in
                let digits = (0..<Int(uniform(1...60))).map { _ in String(uniform(0...9)) }.joined()
                let scale = Int(uniform(0...Int64(digits.count)))
                var text = String(digits.dropLast(scale)).drop { $0 == "0" }
                if text.isEmpty { text = "0" }
                if scale > 0 { text += "." + digits.suffix(scale) }
                let isZero = !text.contains { $0 != "0" && $0 != "." }
                return .numeric((uniform(0...1) == 0 && !isZero ? "-" : "") + text)
            }))
            cases.append(("date", (0..<1000).map { _ in .date(.days(Int32(uniform(-2_451_545...2_145_031_948)))) }))
            cases.append(("timestamp", (0..<1000).map { _ in
                .timestamp(.microseconds(uniform(-211_813_488_000_000_000...9_223_371_331_199_999_999)))
            }))
            cases.append(("timestamptz", (0..<1000).map { index in
                .timestamptz(.microseconds(index % 2 == 0 ? uniform(-211_813_488_000_000_000...9_223_371_331_199_999_999)
                                                          : uniform(-3_000_000_000_000_000...3_000_000_000_000_000)))
            }))
            cases.append(("time", (0..<500).map { _ in .time(Value.Time(microseconds: uniform(0...86_400_000_000))) }))
            cases.append(("timetz", (0..<500).map { _ in
                .timetz(Value.TimeTZ(microseconds: uniform(0...86_400_000_000), utcOffsetSeconds: Int32(uniform(-57_599...57_599))))
            }))
            cases.append(("interval", (0..<1000).map { index in
                let small = index % 2 == 0
                return .interval(Value.Interval(
                    months: Int32(uniform(small ? -30...30 : Int64(Int32.min + 1)...Int64(Int32.max))),
                    days: Int32(uniform(small ? -40...40 : Int64(Int32.min + 1)...Int64(Int32.max))),
                    microseconds: uniform(small ? -200_000_000_000...200_000_000_000 : (Int64.min + 1)...(Int64.max - 1))))
            }))
            cases.append(("bytea", (0..<200).map { _ in .bytes((0..<Int(uniform(0...40))).map { _ in UInt8(uniform(0...255)) }) }))
            cases.append(("uuid", (0..<200).map { _ in .uuid(Value.UUID(high: random.next(), low: random.next())) }))
            cases.append(("inet", (0..<500).map { index in
                var address = [UInt8](repeating: 0, count: 16)
                // Mostly zeros, so that runs of zero words (and :: compression) are common.
                for position in 0..<16 where uniform(0...3) == 0 { address[position] = UInt8(uniform(0...255)) }
                let isV4 = index % 4 == 0
                let bits = isV4 ? uniform(0...32) : uniform(0...128)
                var bytes: [UInt8] = [isV4 ? 2 : 3, UInt8(bits), 0, isV4 ? 4 : 16]
                bytes += isV4 ? Array(address.prefix(4)) : address
                return try! plainDecoder.decode(typeOID: TypeOID.inet, binary: bytes)
            }))

            var checked = 0
            for (type, values) in cases {
                let sample = Sample(type, values.map { $0.postgresText! })
                let select = Self.select(sample)
                let rows = try await connection.query(select)
                let binaryRows = try await Self.binaryCopy(connection, select)
                try #require(rows.count == values.count && binaryRows.count == values.count)
                for (index, value) in values.enumerated() {
                    let printed = rows[index][0]
                    #expect(printed == value.postgresText, "\(type) \(String(reflecting: value))")
                    let typeOID = try #require(Self.typeOID(of: type))
                    let fromBinary = try binaryRows[index].map { try plainDecoder.decode(typeOID: typeOID, binary: $0) }
                    #expect(fromBinary == value, "\(type) \(printed ?? "NULL")")
                    #expect(try plainDecoder.decode(typeOID: typeOID, text: printed) == value, "\(type) \(printed ?? "NULL")")
                    checked += 1
                }
            }
            #expect(checked > 10_000)
            await connection.close()
        }
    }

    static func typeOID(of type: String) -> UInt32? {
        ["float8": TypeOID.float8, "float4": TypeOID.float4, "numeric": TypeOID.numeric, "date": TypeOID.date,
             "timestamp": TypeOID.timestamp, "timestamptz": TypeOID.timestamptz, "time": TypeOID.time, "timetz": TypeOID.timetz,
         "interval": TypeOID.interval, "bytea": TypeOID.bytea, "uuid": TypeOID.uuid, "inet": TypeOID.inet][type]
    }

    /// Spot checks that the decoded values mean what the server means.
    @Test func decodedValuesMatchTheServersNumbers() async throws {
        try await withTestDatabase(.trust, prefix: "values") { db in
            let connection = try await PGConnection.connect(try ConnectionConfiguration.parse(db.url))
            try await connection.simpleQuery(sessionSettings)
            let decoder = ValueDecoder()
            let rows = try await connection.query("""
                SELECT '2024-02-29 13:45:00.123456+00'::timestamptz,
                       (extract(epoch FROM '2024-02-29 13:45:00.123456+00'::timestamptz) * 1000000)::int8,
                       '0044-03-15 BC'::date, '0044-03-15 BC'::date - '2000-01-01'::date,
                       '1 year 2 mons -3 days 04:05:06.5'::interval
                """)
            let row = try #require(rows.first)
            let timestamp = try decoder.decode(typeOID: TypeOID.timestamptz, text: row[0])
            guard case .timestamptz(let instant) = timestamp else { Issue.record("\(timestamp)"); return }
            #expect(instant.microsecondsSince1970 == Int64(row[1]!))
            #expect(try decoder.decode(typeOID: TypeOID.date, text: row[2]) == .date(.days(Int32(row[3]!)!)))
            #expect(try decoder.decode(typeOID: TypeOID.interval, text: row[4])
                == .interval(Value.Interval(months: 14, days: -3, microseconds: 14_706_500_000)))
            // IntervalStyle iso_8601 and another TimeZone still decode to the same values.
            try await connection.simpleQuery("SET IntervalStyle = 'iso_8601'; SET TimeZone = 'Asia/Kolkata'")
            let other = try #require(try await connection.query("""
                SELECT '2024-02-29 13:45:00.123456+00'::timestamptz, '1 year 2 mons -3 days 04:05:06.5'::interval
                """).first)
            #expect(try decoder.decode(typeOID: TypeOID.timestamptz, text: other[0]) == timestamp)
            #expect(try decoder.decode(typeOID: TypeOID.interval, text: other[1])
                == .interval(Value.Interval(months: 14, days: -3, microseconds: 14_706_500_000)))
            await connection.close()
        }
    }

    /// pgoutput: the same inserts decoded from `binary 'true'` and from text give the same
    /// Values (per column: binary when the type has a send function), equal to a plain SELECT;
    /// an unchanged TOAST column arrives as `u` and decodes to ``Value/unchangedToast``.
    @Test func pgoutputBinaryAndTextAgree() async throws {
        try await withTestDatabase(.trust, prefix: "values") { db in
            try await db.psql(customTypes)
            let samples = roundTripSamples + opaqueSamples
            let columns = samples.enumerated().map { "c\($0.offset) \($0.element.type)" }.joined(separator: ", ")
            let rowCount = samples.map(\.inputs.count).max() ?? 1
            var inserts: [String] = []
            for row in 0..<rowCount {
                let values = samples.map { sample in
                    row < sample.inputs.count ? (sample.inputs[row].map { "\(sqlLiteral($0))::\(sample.type)" } ?? "NULL") : "NULL"
                }
                inserts.append("(\(row), repeat('x', 3), \(values.joined(separator: ", ")))")
            }
            try await db.psql("""
                CREATE TABLE sample (id int PRIMARY KEY, big text, \(columns));
                ALTER TABLE sample ALTER COLUMN big SET STORAGE EXTERNAL;
                CREATE PUBLICATION pub FOR TABLE sample;
                """)
            try await db.psql("SELECT pg_create_logical_replication_slot('values_slot', 'pgoutput')")
            // Three transactions: the inserts, a large value stored out of line, then an update
            // that leaves it alone.
            try await db.psql("INSERT INTO sample VALUES \(inserts.joined(separator: ", "))")
            try await db.psql("UPDATE sample SET big = (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i) WHERE id = 0")
            try await db.psql("UPDATE sample SET c2 = 7 WHERE id = 0")
            let connection = try await PGConnection.connect(try ConnectionConfiguration.parse(db.url))
            try await connection.simpleQuery(sessionSettings)
            let decoder = ValueDecoder(registry: try TypeRegistry(rows: try await connection.query(TypeRegistry.query)))

            let textChanges = try await Self.peek(connection, decoder: decoder, binary: false)
            let binaryChanges = try await Self.peek(connection, decoder: decoder, binary: true)
            #expect(textChanges.rows.count == rowCount + 2)
            #expect(binaryChanges.rows.count == textChanges.rows.count)
            // Every type here has a send function, so under `binary 'true'` every value is binary.
            #expect(binaryChanges.binaryColumns > rowCount * 2)
            #expect(binaryChanges.textColumns == 0)
            #expect(textChanges.binaryColumns == 0)

            // What a plain SELECT gives, decoded from text.
            let select = try #require(try await connection.simpleQuery("SELECT * FROM sample ORDER BY id").last)
            let current = try select.rows.map { row in
                try row.enumerated().map { try decoder.decode(typeOID: select.fields[$0.offset].typeOID, text: $0.element) }
            }
            for (index, (textRow, binaryRow)) in zip(textChanges.rows, binaryChanges.rows).enumerated() {
                #expect(textRow.count == samples.count + 2)
                for column in 0..<textRow.count {
                    let sampleIndex = column - 2
                    let opaque = sampleIndex >= roundTripSamples.count
                    if opaque, case .unknownBinary = binaryRow[column] { continue }
                    #expect(textRow[column] == binaryRow[column],
                            "change \(index) column \(column) \(sampleIndex >= 0 ? samples[sampleIndex].type : "")")
                }
                if index < rowCount {
                    // The inserts: equal to the table's current content (row 0 changed since).
                    let expected = current[index]
                    for column in 2..<textRow.count where index > 0 {
                        #expect(textRow[column] == expected[column], "row \(index) \(samples[column - 2].type)")
                    }
                }
            }
            // The last update left the TOASTed column out: `u`, never NULL.
            let last = try #require(textChanges.rows.last)
            #expect(last[1] == .unchangedToast)
            #expect(last[4] == .int32(7))
            #expect(try #require(binaryChanges.rows.last)[1] == .unchangedToast)
            #expect(try #require(textChanges.rows.dropLast().last)[1] == current[0][1])
            await connection.close()
        }
    }

    // MARK: Helpers

    static func select(_ sample: Sample) -> String {
        let values = sample.inputs.enumerated().map { index, input in
            "(\(index), \(input.map(sqlLiteral) ?? "NULL")::\(sample.type))"
        }
        return "SELECT v FROM (VALUES \(values.joined(separator: ", "))) AS t(n, v) ORDER BY n"
    }

    /// Runs `COPY (select) TO STDOUT (FORMAT binary)` and splits the result into fields of
    /// the first column (nil for NULL).
    static func binaryCopy(_ connection: PGConnection, _ select: String) async throws -> [[UInt8]?] {
        var buffer = ByteBuffer()
        try await connection.copyOut("COPY (\(select)) TO STDOUT (FORMAT binary)") { chunk in
            var chunk = chunk
            buffer.writeBuffer(&chunk)
        }
        // Signature, flags, header extension.
        let signature: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]
        let header = buffer.readBytes(length: 11)
        #expect(header == signature)
        let flags = buffer.readInteger(as: Int32.self)
        let extensionLength = buffer.readInteger(as: Int32.self) ?? 0
        #expect(flags == 0)
        buffer.moveReaderIndex(forwardBy: Int(extensionLength))
        var rows: [[UInt8]?] = []
        while let count = buffer.readInteger(as: Int16.self), count != -1 {
            #expect(count == 1)
            guard let length = buffer.readInteger(as: Int32.self) else { break }
            rows.append(length == -1 ? nil : buffer.readBytes(length: Int(length)))
        }
        return rows
    }

    struct DecodedChanges {
        /// Each Insert's or Update's new tuple, decoded.
        var rows: [[Value]] = []
        /// How many column values came in binary, and in text.
        var binaryColumns = 0
        var textColumns = 0
    }

    /// Reads the slot's changes as pgoutput messages and decodes their tuples.
    static func peek(_ connection: PGConnection, decoder: ValueDecoder, binary: Bool) async throws -> DecodedChanges {
        let options = binary ? ", 'binary', 'true'" : ""
        let rows = try await connection.query("""
            SELECT data FROM pg_logical_slot_peek_binary_changes('values_slot', NULL, NULL,
                'proto_version', '1', 'publication_names', 'pub'\(options))
            """)
        var pgoutput = PGOutputDecoder(protocolVersion: 1)
        var columns: [UInt32: [PGOutputMessage.Relation.Column]] = [:]
        var changes = DecodedChanges()
        for row in rows {
            guard case .bytes(let payload) = try decoder.decode(typeOID: TypeOID.bytea, text: row[0]) else {
                Issue.record("not bytea")
                continue
            }
            var buffer = ByteBuffer(bytes: payload)
            let message = try pgoutput.decode(&buffer)
            let tuple: TupleData
            let relationID: UInt32
            switch message {
            case .relation(let relation):
                columns[relation.id] = relation.columns
                continue
            case .insert(let insert):
                tuple = insert.newTuple
                relationID = insert.relationID
            case .update(let update):
                tuple = update.newTuple
                relationID = update.relationID
            default:
                continue
            }
            let relationColumns = try #require(columns[relationID])
            var values: [Value] = []
            for (value, column) in zip(tuple.values, relationColumns) {
                switch value {
                case .binary: changes.binaryColumns += 1
                case .text: changes.textColumns += 1
                default: break
                }
                do {
                    values.append(try decoder.decode(value, typeOID: column.typeOID, typeModifier: column.typeModifier))
                } catch {
                    Issue.record("\(column.name): \(String(reflecting: error))")
                    values.append(.null)
                }
            }
            changes.rows.append(values)
        }
        return changes
    }
}
