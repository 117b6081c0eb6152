import FerryCore
import NIOCore
import PGOutput
import Testing

/// Malformed input gives typed errors (never a trap), and the JSON rendering.
@Suite struct ValueErrorTests {
    func expectError(_ code: ValueDecodingError.Code, _ oid: UInt32, binary: [UInt8],
                     sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: ValueDecodingError.self, sourceLocation: sourceLocation) { try decodeBinary(oid, binary) }
        #expect(error?.code == code, sourceLocation: sourceLocation)
        #expect(error?.format == .binary, sourceLocation: sourceLocation)
    }

    func expectError(_ code: ValueDecodingError.Code, _ oid: UInt32, text: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        let error = #expect(throws: ValueDecodingError.self, sourceLocation: sourceLocation) { try decodeText(oid, text) }
        #expect(error?.code == code, sourceLocation: sourceLocation)
    }

    @Test func binaryErrors() {
        expectError(.invalidLength, TypeOID.int4, binary: [0, 0, 1])
        expectError(.invalidLength, TypeOID.int8, binary: [0, 0, 0, 0, 0, 0, 0, 0, 0])
        expectError(.outOfRange, TypeOID.bool, binary: [2])
        expectError(.outOfRange, TypeOID.numeric, binary: Bytes().i16(1).i16(0).u16(0).i16(0).i16(10000).bytes)
        expectError(.outOfRange, TypeOID.numeric, binary: Bytes().i16(0).i16(0).u16(0x1234).i16(0).bytes)
        expectError(.invalidLength, TypeOID.numeric, binary: Bytes().i16(5).i16(0).u16(0).i16(0).i16(1).bytes)
        expectError(.truncated, TypeOID.numeric, binary: [0, 1])
        expectError(.outOfRange, TypeOID.jsonb, binary: Bytes().u8(2).raw("{}").bytes)
        expectError(.invalidEncoding, TypeOID.text, binary: [0x66, 0xFF, 0x66])
        expectError(.outOfRange, TypeOID.date, binary: Bytes().i32(2_145_031_949).bytes)
        expectError(.outOfRange, TypeOID.timestamp, binary: Bytes().i64(.max - 1).bytes)
        expectError(.outOfRange, TypeOID.time, binary: Bytes().i64(-1).bytes)
        // Arrays: a count larger than the bytes present is refused before allocating.
        expectError(.invalidLength, 1007, binary: Bytes().i32(1).i32(0).u32(TypeOID.int4).i32(.max).i32(1).bytes)
        expectError(.invalidLength, 1007, binary: Bytes().i32(2).i32(0).u32(TypeOID.int4).i32(65536).i32(1).i32(65536).i32(1).bytes)
        expectError(.outOfRange, 1007, binary: Bytes().i32(7).i32(0).u32(TypeOID.int4).bytes)
        expectError(.outOfRange, 1007, binary: Bytes().i32(1).i32(2).u32(TypeOID.int4).i32(0).i32(1).bytes)
        expectError(.invalidLength, 1007, binary: Bytes().i32(1).i32(0).u32(TypeOID.int4).i32(1).i32(1).i32(400).bytes)
        expectError(.trailingBytes, 1007, binary: Bytes().i32(0).i32(0).u32(TypeOID.int4).u8(0).bytes)
        // The element's own error surfaces with the element's type.
        let error = #expect(throws: ValueDecodingError.self) {
            try decodeBinary(1007, Bytes().i32(1).i32(0).u32(TypeOID.int4).i32(1).i32(1).field([1, 2]))
        }
        #expect(error?.typeOID == TypeOID.int4)
        #expect(error?.code == .invalidLength)
        expectError(.outOfRange, TypeOID.inet, binary: [9, 0, 0, 4, 1, 2, 3, 4])
        expectError(.invalidLength, TypeOID.inet, binary: [2, 33, 0, 4, 1, 2, 3, 4])
        expectError(.invalidLength, TypeOID.varbit, binary: Bytes().i32(9).u8(0).bytes)
        expectError(.truncated, TypeOID.tsvector, binary: Bytes().i32(1).raw("abc").bytes)
        expectError(.invalidLength, TypeOID.int4range, binary: Bytes().u8(0x02).i32(100).bytes)
    }

    @Test func textErrors() {
        expectError(.invalidSyntax, TypeOID.int4, text: "12a")
        expectError(.invalidSyntax, TypeOID.int4, text: "")
        expectError(.outOfRange, TypeOID.int2, text: "32768")
        expectError(.invalidSyntax, TypeOID.int8, text: "99999999999999999999")
        expectError(.invalidSyntax, TypeOID.float8, text: "abc")
        expectError(.invalidSyntax, TypeOID.numeric, text: "1.2.3")
        expectError(.invalidSyntax, TypeOID.numeric, text: "1e5")
        expectError(.invalidSyntax, TypeOID.bool, text: "yes please")
        expectError(.invalidSyntax, TypeOID.bytea, text: "\\x0")
        expectError(.invalidSyntax, TypeOID.bytea, text: "\\xzz")
        expectError(.invalidSyntax, TypeOID.date, text: "01/02/2024")
        expectError(.outOfRange, TypeOID.date, text: "2023-02-29")
        expectError(.invalidSyntax, TypeOID.timestamp, text: "2024-01-01")
        expectError(.invalidSyntax, TypeOID.timestamptz, text: "2024-01-01 00:00:00")
        expectError(.invalidSyntax, TypeOID.time, text: "25:00:00")
        expectError(.invalidSyntax, TypeOID.interval, text: "1 fortnight")
        expectError(.invalidSyntax, TypeOID.interval, text: "@ 1 year")
        expectError(.invalidSyntax, TypeOID.uuid, text: "a0eebc99")
        // Far outside the range, without overflowing on the way.
        expectError(.outOfRange, TypeOID.timestamp, text: "9999999-12-31 23:59:59")
        expectError(.outOfRange, TypeOID.timestamptz, text: "294277-01-01 00:00:00+00")
        expectError(.invalidSyntax, TypeOID.interval, text: "2562047788:59:59")
        expectError(.invalidSyntax, TypeOID.interval, text: "-2562047788:00:54.775807 -2562047788:00:54.775807")
        expectError(.outOfRange, TypeOID.interval, text: "178956971 years")
        expectError(.invalidSyntax, TypeOID.interval, text: "PT99999999999999H")
        expectError(.invalidSyntax, TypeOID.bit, text: "012")
        expectError(.invalidSyntax, 1007, text: "{1,2")
        expectError(.invalidSyntax, 1007, text: "{{1,2},{3}}")
        expectError(.invalidSyntax, 1007, text: "{{1,2},3}")
        expectError(.invalidSyntax, 1007, text: "{1,}")
        expectError(.invalidSyntax, 1007, text: "{1}x")
        expectError(.invalidSyntax, 1007, text: "[1:3]={1,2}")
        expectError(.invalidSyntax, 1009, text: "{\"abc}")
        expectError(.invalidSyntax, 1007, text: "{{{{{{{1}}}}}}}")
        let error = #expect(throws: ValueDecodingError.self) { try decodeText(1007, "{1,x}") }
        #expect(error?.typeOID == TypeOID.int4)
    }

    @Test func invalidUTF8IsRefused() {
        let error = #expect(throws: ValueDecodingError.self) {
            try plainDecoder.decode(typeOID: TypeOID.text, format: .text, bytes: ByteBuffer(bytes: [0x61, 0xC3]))
        }
        #expect(error?.code == .invalidEncoding)
    }

    /// The source text a destination takes as it is (``ValueDecoder/keepsSourceText``) is
    /// checked for UTF-8 at every length (eight bytes at a time, then the rest).
    @Test func sourceTextIsCheckedForUTF8() throws {
        let decoder = ValueDecoder(keepsSourceText: true)
        for text in ["", "a", "1234567", "12345678", "123456789", "2024-01-12 13:46:40+00", "prix 12,50 €", "ünï 12345678", "12345678ü"] {
            let value = try decoder.decode(.text(ByteBuffer(string: text)), typeOID: TypeOID.text)
            #expect(value == .unknown(typeOID: TypeOID.text, text: text))
        }
        let invalid: [[UInt8]] = [[0xFF], Array("1234567".utf8) + [0xC3], Array("12345678".utf8) + [0x80] + Array("abc".utf8),
                                  Array("abcdefgh".utf8) + [0xED, 0xA0, 0x80]]
        for bytes in invalid {
            let error = #expect(throws: ValueDecodingError.self) {
                try decoder.decode(.text(ByteBuffer(bytes: bytes)), typeOID: TypeOID.text)
            }
            #expect(error?.code == .invalidEncoding, "\(bytes)")
        }
    }

    @Test func errorDescriptionLeavesValuesOut() throws {
        let error = #expect(throws: ValueDecodingError.self) { try decodeText(TypeOID.int4, "secret-42") }
        let description = try #require(error).description
        #expect(description.contains("OID 23"))
        #expect(!description.contains("secret"))
        let debug = String(reflecting: try #require(error))
        #expect(debug.contains("736563726574")) // hex of "secret"
        // Copies are bounded.
        let big = #expect(throws: ValueDecodingError.self) { try decodeBinary(TypeOID.int4, [UInt8](repeating: 7, count: 10_000)) }
        #expect(big?.bytes.count == ValueDecodingError.maximumCopiedBytes)
        #expect(big?.byteCount == 10_000)
    }

    /// Random bytes in both formats for every type: a value or a ValueDecodingError, never a trap.
    @Test func totalOverArbitraryBytes() {
        var generator = SplitMix(seed: 0xFE44)
        let oids: [UInt32] = [
            TypeOID.bool, TypeOID.int2, TypeOID.int4, TypeOID.int8, TypeOID.float4, TypeOID.float8, TypeOID.numeric,
            TypeOID.text, TypeOID.char, TypeOID.bytea, TypeOID.date, TypeOID.time, TypeOID.timetz, TypeOID.timestamp,
            TypeOID.timestamptz, TypeOID.interval, TypeOID.uuid, TypeOID.json, TypeOID.jsonb, TypeOID.inet, TypeOID.cidr,
            TypeOID.macaddr, TypeOID.macaddr8, TypeOID.money, TypeOID.bit, TypeOID.varbit, TypeOID.tsvector,
            TypeOID.int4range, TypeOID.tsrange, TypeOID.int4multirange, TypeOID.record, TypeOID.point, TypeOID.path,
            TypeOID.polygon, TypeOID.pgLSN, 1007, 1009, 1231, 1115, 1187, 1020, 2287, 3905,
        ]
        let alphabet = Array("{}[]:=,\"\\ NULLnul0123456789-+.eE:()ab'PTYMDHS\u{1}".utf8)
        for oid in oids {
            for round in 0..<300 {
                let count = Int(generator.next() % 48)
                var bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                // Make some inputs look structured: small lengths and counts.
                if round % 3 == 0 { bytes = bytes.map { $0 & 0x07 } }
                let text = (0..<count).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }
                for (format, input) in [(ValueFormat.binary, bytes), (.text, text)] {
                    do {
                        let value = try plainDecoder.decode(typeOID: oid, format: format, bytes: ByteBuffer(bytes: input))
                        _ = value.postgresText
                        _ = value.json()
                    } catch is ValueDecodingError {
                    } catch {
                        Issue.record("unexpected error \(error)")
                    }
                }
            }
        }
    }
}

extension ValueErrorTests {
    /// Valid values with random bytes changed, cut short or extended: a value or a
    /// ValueDecodingError, never a trap.
    @Test func totalOverMutatedValues() {
        var generator = SplitMix(seed: 0xBADC0DE)
        let int4 = Bytes().i32(7).bytes
        let seeds: [(UInt32, [UInt8])] = [
            (1007, Bytes().i32(2).i32(1).u32(TypeOID.int4).i32(2).i32(1).i32(2).i32(1)
                .field(int4).field(nil).field(int4).field(int4).bytes),
            (1009, Bytes().i32(1).i32(0).u32(TypeOID.text).i32(2).i32(1).field(Array("ab".utf8)).field([]).bytes),
            (TypeOID.numeric, Bytes().i16(3).i16(1).u16(0).i16(4).i16(1).i16(2345).i16(6789).bytes),
            (TypeOID.tsvector, Bytes().i32(2).raw("a").u8(0).u16(2).u16(0xC001).u16(2).raw("b").u8(0).u16(0).bytes),
            (TypeOID.int4range, Bytes().u8(0x02).field(int4).field(int4).bytes),
            (TypeOID.int4multirange, Bytes().i32(1).field(Bytes().u8(0x02).field(int4).field(int4).bytes).bytes),
            (TypeOID.record, Bytes().i32(2).u32(TypeOID.int4).field(int4).u32(1007)
                .field(Bytes().i32(1).i32(0).u32(TypeOID.int4).i32(1).i32(1).field(int4).bytes).bytes),
            (TypeOID.inet, [3, 64, 0, 16] + [UInt8](repeating: 1, count: 16)),
            (TypeOID.path, Bytes().u8(1).i32(1).f64(1).f64(2).bytes),
            (TypeOID.varbit, Bytes().i32(9).u8(0xAA).u8(0x80).bytes),
        ]
        let texts: [(UInt32, String)] = [
            (1007, "[1:2][3:4]={{1,2},{3,4}}"), (1009, #"{"a\"b",NULL,{}}"#), (TypeOID.interval, "1 year 2 mons -3 days +04:05:06.5"),
            (TypeOID.interval, "P1Y2M3DT4H5M6.5S"), (TypeOID.timestamptz, "2024-02-29 13:45:00.123456+05:30"),
            (TypeOID.date, "0044-03-15 BC"), (TypeOID.timetz, "12:00:00.5+05:30"), (TypeOID.bytea, "\\x00ff"),
            (TypeOID.float8, "1.5e+300"), (TypeOID.money, "-$1,234.56"), (TypeOID.numeric, "-123.4500"),
        ]
        func mutate(_ input: [UInt8]) -> [UInt8] {
            var bytes = input
            switch generator.next() % 4 {
            case 0 where !bytes.isEmpty:
                bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
            case 1 where !bytes.isEmpty:
                bytes.removeLast(Int(generator.next() % UInt64(bytes.count)))
            case 2:
                bytes.append(UInt8(truncatingIfNeeded: generator.next()))
            default:
                if !bytes.isEmpty { bytes[Int(generator.next() % UInt64(bytes.count))] ^= 1 << UInt8(generator.next() % 8) }
            }
            return bytes
        }
        for _ in 0..<2000 {
            for (oid, seed) in seeds {
                _ = try? decodeBinary(oid, mutate(mutate(seed)))
            }
            for (oid, seed) in texts {
                let input = mutate(mutate(Array(seed.utf8)))
                if let value = try? plainDecoder.decode(typeOID: oid, format: .text, bytes: ByteBuffer(bytes: input)) {
                    _ = value.postgresText
                    _ = value.json()
                }
            }
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct ValueJSONTests {
    @Test func mapping() {
        let micros: Int64 = 8825 * 86_400_000_000 + (13 * 3600 + 45 * 60) * 1_000_000 + 123_456
        let cases: [(Value, String)] = [
            (.null, "null"),
            (.unchangedToast, "\"__debezium_unavailable_value\""),
            (.bool(true), "true"),
            (.int16(-5), "-5"),
            (.int64(.min), "-9223372036854775808"),
            (.float64(0.1), "0.1"),
            (.float64(1.5e300), "1.5e+300"),
            (.float64(-0.0), "-0"),
            (.float64(.nan), "\"NaN\""),
            (.float32(-.infinity), "\"-Infinity\""),
            (.numeric("-12345678901234567890.50"), "\"-12345678901234567890.50\""),
            (.text("a\"b\\c\n\u{1}é"), #""a\"b\\c\n\u0001é""#),
            (.bytes([0, 1, 0xFF]), "\"AAH/\""),
            (.bytes([0xFF]), "\"/w==\""),
            (.date(.days(8825)), "\"2024-02-29\""),
            (.date(.days(-746_117)), "\"-0043-03-15\""),
            (.date(.days(2_145_031_948)), "\"+5874897-12-31\""),
            (.date(.infinity), "\"infinity\""),
            (.time(Value.Time(microseconds: 49_500_500_000)), "\"13:45:00.5\""),
            (.timetz(Value.TimeTZ(microseconds: 0, utcOffsetSeconds: 19_800)), "\"00:00:00+05:30\""),
            (.timetz(Value.TimeTZ(microseconds: 0, utcOffsetSeconds: -3600)), "\"00:00:00-01:00\""),
            (.timestamp(.microseconds(micros)), "\"2024-02-29T13:45:00.123456\""),
            (.timestamptz(.microseconds(micros)), "\"2024-02-29T13:45:00.123456Z\""),
            (.timestamptz(.negativeInfinity), "\"-infinity\""),
            (.interval(Value.Interval(months: 14, days: 3, microseconds: 14_706_500_000)), "\"P1Y2M3DT4H5M6.5S\""),
            (.interval(Value.Interval()), "\"PT0S\""),
            (.interval(Value.Interval(microseconds: -500_000)), "\"PT-0.5S\""),
            (.uuid(Value.UUID(high: 0xA0EEBC99_9C0B_4EF8, low: 0xBB6D_6BB9BD380A11)), "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""),
            (.json("{\"a\" : [1, 2]}"), "{\"a\" : [1, 2]}"),
            (.jsonb("[1, {\"b\": null}]"), "[1, {\"b\": null}]"),
            (.money(-123_456), "\"-1234.56\""),
            (.money(5), "\"0.05\""),
            (.bitString("0101"), "\"0101\""),
            (.inet("::1"), "\"::1\""),
            (.unknown(typeOID: TypeOID.int4range, text: "[1,5)"), "\"[1,5)\""),
            (.unknownBinary(typeOID: 99_999, bytes: [0, 0, 0, 1]), "\"AAAAAQ==\""),
            (.array(Value.ArrayValue(elementTypeOID: TypeOID.int4, dimensions: [.init(length: 2), .init(length: 2, lowerBound: 0)],
                                     elements: [.int32(1), .null, .int32(3), .int32(4)])), "[[1,null],[3,4]]"),
            (.array(Value.ArrayValue(elementTypeOID: TypeOID.text, elements: [])), "[]"),
        ]
        for (value, expected) in cases {
            #expect(value.json() == expected)
        }
        #expect(Value.unchangedToast.json(options: ValueJSONOptions(unchangedToastPlaceholder: nil)) == "null")
    }

    @Test func writerInsertsCommas() {
        var json = JSONWriter()
        json.beginObject()
        json.key("id"); json.value(.int64(7))
        json.key("tags"); json.beginArray(); json.string("a"); json.beginArray(); json.endArray(); json.null(); json.endArray()
        json.key("empty"); json.beginObject(); json.endObject()
        json.key("name"); json.string("Zoë \"Z\"")
        json.endObject()
        #expect(json.string == #"{"id":7,"tags":["a",[],null],"empty":{},"name":"Zoë \"Z\""}"#)
        json.reset()
        json.integer(1)
        #expect(json.string == "1")
    }
}
