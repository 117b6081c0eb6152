import FerryCore
import NIOCore
import PGOutput
import Testing

/// Hand-written bytes for each type, in both formats, checked against the value and against
/// PostgreSQL's text output (layouts from each type's `*_send` function).
@Suite struct ValueDecoderTests {
    @Test func booleansAndIntegers() throws {
        try expectBoth(TypeOID.bool, text: "t", binary: [1], .bool(true))
        try expectBoth(TypeOID.bool, text: "f", binary: [0], .bool(false))
        try expectBoth(TypeOID.int2, text: "-32768", binary: Bytes().i16(.min), .int16(.min))
        try expectBoth(TypeOID.int4, text: "2147483647", binary: Bytes().i32(.max), .int32(.max))
        try expectBoth(TypeOID.int8, text: "-9223372036854775808", binary: Bytes().i64(.min), .int64(.min))
        try expectBoth(TypeOID.oid, text: "4294967295", binary: Bytes().u32(.max), .int64(4_294_967_295))
        #expect(try decodeText(TypeOID.bool, "true") == .bool(true))
    }

    @Test func floatsKeepSpecialValuesAndPrintLikePostgres() throws {
        try expectBoth(TypeOID.float8, text: "NaN", binary: Bytes().f64(.nan), .float64(.nan))
        try expectBoth(TypeOID.float8, text: "Infinity", binary: Bytes().f64(.infinity), .float64(.infinity))
        try expectBoth(TypeOID.float8, text: "-Infinity", binary: Bytes().f64(-.infinity), .float64(-.infinity))
        try expectBoth(TypeOID.float8, text: "-0", binary: Bytes().f64(-0.0), .float64(-0.0))
        try expectBoth(TypeOID.float8, text: "0.1", binary: Bytes().f64(0.1), .float64(0.1))
        try expectBoth(TypeOID.float8, text: "1e+15", binary: Bytes().f64(1e15), .float64(1e15))
        try expectBoth(TypeOID.float8, text: "123456789012345", binary: Bytes().f64(123456789012345), .float64(123456789012345))
        try expectBoth(TypeOID.float8, text: "1.2345678901234568e+17", binary: Bytes().f64(123456789012345680), .float64(123456789012345680))
        try expectBoth(TypeOID.float8, text: "1e-05", binary: Bytes().f64(1e-5), .float64(1e-5))
        try expectBoth(TypeOID.float8, text: "0.0001", binary: Bytes().f64(1e-4), .float64(1e-4))
        try expectBoth(TypeOID.float8, text: "5e-324", binary: Bytes().f64(.leastNonzeroMagnitude), .float64(.leastNonzeroMagnitude))
        try expectBoth(TypeOID.float8, text: "1.7976931348623157e+308", binary: Bytes().f64(.greatestFiniteMagnitude),
                       .float64(.greatestFiniteMagnitude))
        try expectBoth(TypeOID.float4, text: "1e+06", binary: Bytes().u32(Float(1e6).bitPattern), .float32(1e6))
        try expectBoth(TypeOID.float4, text: "100000", binary: Bytes().u32(Float(1e5).bitPattern), .float32(1e5))
        try expectBoth(TypeOID.float4, text: "3.4028235e+38", binary: Bytes().u32(Float.greatestFiniteMagnitude.bitPattern),
                       .float32(.greatestFiniteMagnitude))
        try expectBoth(TypeOID.float4, text: "0.1", binary: Bytes().u32(Float(0.1).bitPattern), .float32(0.1))
        // PostgreSQL never prints a decimal lying exactly halfway to the neighbouring float
        // (Swift's shortest form may): one more digit then.
        try expectBoth(TypeOID.float4, text: "-6.5297512e+07", binary: Bytes().u32(Float(-65_297_512).bitPattern), .float32(-65_297_512))
        try expectBoth(TypeOID.float4, text: "1.3672301e+08", binary: Bytes().u32(Float(136_723_008).bitPattern), .float32(136_723_008))
        #expect(Float(136_723_008).description == "1.36723e+08")
        // NaN equals NaN as a Value (PostgreSQL sorts NaNs together), -0 is not 0.
        #expect(Value.float64(.nan) == .float64(-.nan))
        #expect(Value.float64(-0.0) != .float64(0.0))
        #expect(Set([Value.float64(.nan), .float64(.nan)]).count == 1)
    }

    @Test func numericIsExactText() throws {
        // numeric_send: ndigits, weight, sign, dscale, base-10000 digits.
        try expectBoth(TypeOID.numeric, text: "12345.6789",
                       binary: Bytes().i16(3).i16(1).u16(0).i16(4).i16(1).i16(2345).i16(6789), .numeric("12345.6789"))
        try expectBoth(TypeOID.numeric, text: "0.0001", binary: Bytes().i16(1).i16(-1).u16(0).i16(4).i16(1), .numeric("0.0001"))
        try expectBoth(TypeOID.numeric, text: "1.50", binary: Bytes().i16(2).i16(0).u16(0).i16(2).i16(1).i16(5000), .numeric("1.50"))
        try expectBoth(TypeOID.numeric, text: "0.00", binary: Bytes().i16(0).i16(0).u16(0).i16(2), .numeric("0.00"))
        try expectBoth(TypeOID.numeric, text: "-100000000000000000000",
                       binary: Bytes().i16(1).i16(5).u16(0x4000).i16(0).i16(1), .numeric("-100000000000000000000"))
        try expectBoth(TypeOID.numeric, text: "NaN", binary: Bytes().i16(0).i16(0).u16(0xC000).i16(0), .numeric("NaN"))
        try expectBoth(TypeOID.numeric, text: "Infinity", binary: Bytes().i16(0).i16(0).u16(0xD000).i16(0), .numeric("Infinity"))
        try expectBoth(TypeOID.numeric, text: "-Infinity", binary: Bytes().i16(0).i16(0).u16(0xF000).i16(0), .numeric("-Infinity"))
        // 40+ significant digits survive exactly.
        let big = "1234567890123456789012345678901234567890.0123456789"
        let groups: [Int16] = [1234, 5678, 9012, 3456, 7890, 1234, 5678, 9012, 3456, 7890, 123, 4567, 8900]
        var bytes = Bytes().i16(Int16(groups.count)).i16(9).u16(0).i16(10)
        for group in groups { bytes = bytes.i16(group) }
        try expectBoth(TypeOID.numeric, text: big, binary: bytes, .numeric(big))
    }

    @Test func stringsAndBytes() throws {
        try expectBoth(TypeOID.text, text: "héllo, wörld ✓", binary: Bytes().raw("héllo, wörld ✓"), .text("héllo, wörld ✓"))
        try expectBoth(TypeOID.bpchar, text: "ab   ", binary: Bytes().raw("ab   "), .text("ab   "))
        try expectBoth(TypeOID.varchar, text: "", binary: Bytes(), .text(""))
        try expectBoth(TypeOID.char, text: "x", binary: [UInt8(ascii: "x")], .text("x"))
        try expectBoth(TypeOID.char, text: "\\351", binary: [0xE9], .text("\\351"))
        try expectBoth(TypeOID.bytea, text: "\\x00ff10", binary: [0x00, 0xFF, 0x10], .bytes([0x00, 0xFF, 0x10]))
        try expectBoth(TypeOID.bytea, text: "\\x", binary: Bytes(), .bytes([]))
        // bytea_output = escape is read too.
        #expect(try decodeText(TypeOID.bytea, "a\\000\\\\b\\377") == .bytes([0x61, 0, 0x5C, 0x62, 0xFF]))
        try expectBoth(TypeOID.json, text: "{\"a\" : [1, 2]}", binary: Bytes().raw("{\"a\" : [1, 2]}"), .json("{\"a\" : [1, 2]}"))
        try expectBoth(TypeOID.jsonb, text: "{\"a\": 1}", binary: Bytes().u8(1).raw("{\"a\": 1}"), .jsonb("{\"a\": 1}"))
        try expectBoth(TypeOID.xml, text: "<a>b</a>", binary: Bytes().raw("<a>b</a>"), .text("<a>b</a>"))
        try expectBoth(TypeOID.uuid, text: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                       binary: Bytes().u64(0xA0EEBC99_9C0B_4EF8).u64(0xBB6D_6BB9BD380A11),
                       .uuid(Value.UUID(high: 0xA0EEBC99_9C0B_4EF8, low: 0xBB6D_6BB9BD380A11)))
        #expect(Value.UUID(bytes: Value.UUID(high: 1, low: 2).bytes) == Value.UUID(high: 1, low: 2))
    }

    @Test func datesAndTimes() throws {
        try expectBoth(TypeOID.date, text: "2000-01-01", binary: Bytes().i32(0), .date(.days(0)))
        try expectBoth(TypeOID.date, text: "2024-02-29", binary: Bytes().i32(8825), .date(.days(8825)))
        try expectBoth(TypeOID.date, text: "0044-03-15 BC", binary: Bytes().i32(-746_117), .date(.days(-746_117)))
        try expectBoth(TypeOID.date, text: "4713-11-24 BC", binary: Bytes().i32(-2_451_179), .date(.days(-2_451_179)))
        try expectBoth(TypeOID.date, text: "4714-11-24 BC", binary: Bytes().i32(-2_451_545), .date(.days(-2_451_545)))
        try expectBoth(TypeOID.date, text: "5874897-12-31", binary: Bytes().i32(2_145_031_948), .date(.days(2_145_031_948)))
        try expectBoth(TypeOID.date, text: "infinity", binary: Bytes().i32(.max), .date(.infinity))
        try expectBoth(TypeOID.date, text: "-infinity", binary: Bytes().i32(.min), .date(.negativeInfinity))
        #expect(Value.Date.days(8825).components! == (2024, 2, 29))
        #expect(Value.Date(year: -43, month: 3, day: 15) == .days(-746_117))

        try expectBoth(TypeOID.time, text: "13:45:00.5", binary: Bytes().i64(49_500_500_000), .time(Value.Time(microseconds: 49_500_500_000)))
        try expectBoth(TypeOID.time, text: "24:00:00", binary: Bytes().i64(86_400_000_000), .time(Value.Time(microseconds: 86_400_000_000)))
        try expectBoth(TypeOID.time, text: "00:00:00.000001", binary: Bytes().i64(1), .time(Value.Time(microseconds: 1)))
        // timetz_send: time, then the zone in seconds *west* of UTC.
        try expectBoth(TypeOID.timetz, text: "12:00:00.5+05:30", binary: Bytes().i64(43_200_500_000).i32(-19_800),
                       .timetz(Value.TimeTZ(microseconds: 43_200_500_000, utcOffsetSeconds: 19_800)))
        try expectBoth(TypeOID.timetz, text: "23:59:59-08", binary: Bytes().i64(86_399_000_000).i32(28_800),
                       .timetz(Value.TimeTZ(microseconds: 86_399_000_000, utcOffsetSeconds: -28_800)))

        let micros: Int64 = 8825 * 86_400_000_000 + (13 * 3600 + 45 * 60) * 1_000_000 + 123_456
        try expectBoth(TypeOID.timestamp, text: "2024-02-29 13:45:00.123456", binary: Bytes().i64(micros), .timestamp(.microseconds(micros)))
        try expectBoth(TypeOID.timestamptz, text: "2024-02-29 13:45:00.123456+00", binary: Bytes().i64(micros), .timestamptz(.microseconds(micros)))
        try expectBoth(TypeOID.timestamp, text: "infinity", binary: Bytes().i64(.max), .timestamp(.infinity))
        try expectBoth(TypeOID.timestamptz, text: "-infinity", binary: Bytes().i64(.min), .timestamptz(.negativeInfinity))
        let bc: Int64 = -746_117 * 86_400_000_000 + 12 * 3_600_000_000
        try expectBoth(TypeOID.timestamptz, text: "0044-03-15 12:00:00+00 BC", binary: Bytes().i64(bc), .timestamptz(.microseconds(bc)))
        try expectBoth(TypeOID.timestamp, text: "1999-12-31 23:59:59.999999", binary: Bytes().i64(-1), .timestamp(.microseconds(-1)))
        // Other offsets are converted to UTC.
        #expect(try decodeText(TypeOID.timestamptz, "2024-02-29 19:15:00.123456+05:30") == .timestamptz(.microseconds(micros)))
        #expect(Value.Timestamp.microseconds(0).microsecondsSince1970 == 946_684_800_000_000)
    }

    @Test func intervals() throws {
        // interval_send: microseconds, days, months.
        let value = Value.Interval(months: 14, days: -3, microseconds: 14_706_500_000)
        try expectBoth(TypeOID.interval, text: "1 year 2 mons -3 days +04:05:06.5",
                       binary: Bytes().i64(14_706_500_000).i32(-3).i32(14), .interval(value))
        try expectBoth(TypeOID.interval, text: "00:00:00", binary: Bytes().i64(0).i32(0).i32(0), .interval(Value.Interval()))
        try expectBoth(TypeOID.interval, text: "-1 years -2 mons +3 days -04:05:06",
                       binary: Bytes().i64(-14_706_000_000).i32(3).i32(-14),
                       .interval(Value.Interval(months: -14, days: 3, microseconds: -14_706_000_000)))
        try expectBoth(TypeOID.interval, text: "1 mon -1 days", binary: Bytes().i64(0).i32(-1).i32(1),
                       .interval(Value.Interval(months: 1, days: -1)))
        try expectBoth(TypeOID.interval, text: "-00:00:01", binary: Bytes().i64(-1_000_000).i32(0).i32(0),
                       .interval(Value.Interval(microseconds: -1_000_000)))
        try expectBoth(TypeOID.interval, text: "1 day 1000:00:00", binary: Bytes().i64(3_600_000_000_000).i32(1).i32(0),
                       .interval(Value.Interval(days: 1, microseconds: 3_600_000_000_000)))
        try expectBoth(TypeOID.interval, text: "infinity", binary: Bytes().i64(.max).i32(.max).i32(.max), .interval(.infinity))
        // IntervalStyle = iso_8601 is read too.
        #expect(try decodeText(TypeOID.interval, "P1Y2M-3DT4H5M6.5S") == .interval(value))
        #expect(try decodeText(TypeOID.interval, "PT0S") == .interval(Value.Interval()))
        #expect(try decodeText(TypeOID.interval, "P-1Y-2M3DT-4H-5M-6S") == .interval(Value.Interval(months: -14, days: 3, microseconds: -14_706_000_000)))
    }

    @Test func arraysInBothFormats() throws {
        // array_send: ndim, has-null, element OID, (length, lower bound)…, elements.
        let matrix = Bytes().i32(2).i32(1).u32(TypeOID.int4).i32(2).i32(1).i32(2).i32(1)
            .field(Bytes().i32(1).bytes).field(nil).field(Bytes().i32(3).bytes).field(Bytes().i32(4).bytes)
        try expectBoth(1007, text: "{{1,NULL},{3,4}}", binary: matrix,
                       .array(Value.ArrayValue(elementTypeOID: TypeOID.int4,
                                               dimensions: [.init(length: 2), .init(length: 2)],
                                               elements: [.int32(1), .null, .int32(3), .int32(4)])))
        let strings = Bytes().i32(1).i32(1).u32(TypeOID.text).i32(7).i32(1)
            .field(Array("a b".utf8)).field(nil).field(Array("NULL".utf8)).field(Array("c\"d".utf8))
            .field([]).field(Array("e".utf8)).field(Array("x\\y".utf8))
        try expectBoth(1009, text: #"{"a b",NULL,"NULL","c\"d","",e,"x\\y"}"#, binary: strings,
                       .array(Value.ArrayValue(elementTypeOID: TypeOID.text, elements: [
                           .text("a b"), .null, .text("NULL"), .text("c\"d"), .text(""), .text("e"), .text("x\\y"),
                       ])))
        let bounded = Bytes().i32(1).i32(0).u32(TypeOID.int4).i32(2).i32(0).field(Bytes().i32(7).bytes).field(Bytes().i32(8).bytes)
        try expectBoth(1007, text: "[0:1]={7,8}", binary: bounded,
                       .array(Value.ArrayValue(elementTypeOID: TypeOID.int4, dimensions: [.init(length: 2, lowerBound: 0)],
                                               elements: [.int32(7), .int32(8)])))
        try expectBoth(1007, text: "{}", binary: Bytes().i32(0).i32(0).u32(TypeOID.int4),
                       .array(Value.ArrayValue(elementTypeOID: TypeOID.int4, elements: [])))
        // box[] uses `;` between elements.
        let box = Bytes().f64(1).f64(1).f64(0).f64(0).bytes
        try expectBoth(1020, text: "{(1,1),(0,0);(1,1),(0,0)}",
                       binary: Bytes().i32(1).i32(0).u32(TypeOID.box).i32(2).i32(1).field(box).field(box),
                       .array(Value.ArrayValue(elementTypeOID: TypeOID.box, elements: [
                           .unknown(typeOID: TypeOID.box, text: "(1,1),(0,0)"), .unknown(typeOID: TypeOID.box, text: "(1,1),(0,0)"),
                       ])))
        // Whitespace, escapes outside quotes and explicit bounds are accepted as array_in does.
        #expect(try decodeText(1009, #" { a\ b , "c" } "#)
            == .array(Value.ArrayValue(elementTypeOID: TypeOID.text, elements: [.text("a b"), .text("c")])))
        #expect(try decodeText(1007, "[1:2][3:3]={{1},{2}}")
            == .array(Value.ArrayValue(elementTypeOID: TypeOID.int4, dimensions: [.init(length: 2), .init(length: 1, lowerBound: 3)],
                                       elements: [.int32(1), .int32(2)])))
    }

    @Test func networkMoneyBitsAndTextSearch() throws {
        // network_send: family, bits, is_cidr, address length, address.
        try expectBoth(TypeOID.inet, text: "192.168.0.1/24", binary: [2, 24, 0, 4, 192, 168, 0, 1], .inet("192.168.0.1/24"))
        try expectBoth(TypeOID.inet, text: "10.1.2.3", binary: [2, 32, 0, 4, 10, 1, 2, 3], .inet("10.1.2.3"))
        try expectBoth(TypeOID.cidr, text: "10.0.0.0/8", binary: [2, 8, 1, 4, 10, 0, 0, 0], .cidr("10.0.0.0/8"))
        try expectBoth(TypeOID.cidr, text: "10.1.2.3/32", binary: [2, 32, 1, 4, 10, 1, 2, 3], .cidr("10.1.2.3/32"))
        let v6: [UInt8] = [3, 128, 0, 16] + [UInt8](repeating: 0, count: 15) + [1]
        try expectBoth(TypeOID.inet, text: "::1", binary: Bytes(v6), .inet("::1"))
        let mapped: [UInt8] = [3, 128, 0, 16] + [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 1, 2, 3, 4]
        try expectBoth(TypeOID.inet, text: "::ffff:1.2.3.4", binary: Bytes(mapped), .inet("::ffff:1.2.3.4"))
        let net: [UInt8] = [3, 32, 1, 16, 0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 12)
        try expectBoth(TypeOID.cidr, text: "2001:db8::/32", binary: Bytes(net), .cidr("2001:db8::/32"))
        let middle: [UInt8] = [3, 64, 0, 16, 0x20, 0x01, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x0A]
        try expectBoth(TypeOID.inet, text: "2001:0:0:1::a/64", binary: Bytes(middle), .inet("2001:0:0:1::a/64"))
        try expectBoth(TypeOID.macaddr, text: "08:00:2b:01:02:03", binary: [8, 0, 0x2B, 1, 2, 3], .macaddr("08:00:2b:01:02:03"))
        try expectBoth(TypeOID.macaddr8, text: "08:00:2b:01:02:03:04:05", binary: [8, 0, 0x2B, 1, 2, 3, 4, 5],
                       .macaddr8("08:00:2b:01:02:03:04:05"))
        try expectBoth(TypeOID.money, text: "-$12,345.67", binary: Bytes().i64(-1_234_567), .money(-1_234_567))
        try expectBoth(TypeOID.money, text: "$0.05", binary: Bytes().i64(5), .money(5))
        try expectBoth(TypeOID.money, text: "-$92,233,720,368,547,758.08", binary: Bytes().i64(.min), .money(.min))
        try expectBoth(TypeOID.bit, text: "0101", binary: Bytes().i32(4).u8(0x50), .bitString("0101"))
        try expectBoth(TypeOID.varbit, text: "101010101", binary: Bytes().i32(9).u8(0xAA).u8(0x80), .bitString("101010101"))
        try expectBoth(TypeOID.varbit, text: "", binary: Bytes().i32(0), .bitString(""))
        // tsvectorsend: count; lexeme\0, position count, positions (weight in the top 2 bits).
        let vector = Bytes().i32(3).raw("a").u8(0).u16(2).u16(0xC001).u16(2).raw("cat's").u8(0).u16(1).u16(3)
            .raw("x\\y").u8(0).u16(0)
        try expectBoth(TypeOID.tsvector, text: #"'a':1A,2 'cat''s':3 'x\\y'"#, binary: vector, .tsvector(#"'a':1A,2 'cat''s':3 'x\\y'"#))
    }

    @Test func typesRenderedAsText() throws {
        let range = Bytes().u8(0x02).field(Bytes().i32(1).bytes).field(Bytes().i32(5).bytes)
        try expectBoth(TypeOID.int4range, text: "[1,5)", binary: range, .unknown(typeOID: TypeOID.int4range, text: "[1,5)"))
        try expectBoth(TypeOID.int4range, text: "empty", binary: [0x01], .unknown(typeOID: TypeOID.int4range, text: "empty"))
        let lowerOnly = Bytes().u8(0x02 | 0x10).field(Bytes().i64(0).bytes)
        try expectBoth(TypeOID.tsrange, text: #"["2000-01-01 00:00:00",)"#, binary: lowerOnly,
                       .unknown(typeOID: TypeOID.tsrange, text: #"["2000-01-01 00:00:00",)"#))
        let multi = Bytes().i32(2).field(range.bytes).field(Bytes().u8(0x02).field(Bytes().i32(7).bytes).field(Bytes().i32(9).bytes).bytes)
        try expectBoth(TypeOID.int4multirange, text: "{[1,5),[7,9)}", binary: multi,
                       .unknown(typeOID: TypeOID.int4multirange, text: "{[1,5),[7,9)}"))
        let record = Bytes().i32(4).u32(TypeOID.int4).field(Bytes().i32(1).bytes).u32(TypeOID.text).field(Array("a b".utf8))
            .u32(TypeOID.text).field(nil).u32(TypeOID.text).field([])
        try expectBoth(TypeOID.record, text: #"(1,"a b",,"")"#, binary: record, .unknown(typeOID: TypeOID.record, text: #"(1,"a b",,"")"#))
        try expectBoth(TypeOID.point, text: "(1.5,-2)", binary: Bytes().f64(1.5).f64(-2), .unknown(typeOID: TypeOID.point, text: "(1.5,-2)"))
        try expectBoth(TypeOID.circle, text: "<(1,2),3>", binary: Bytes().f64(1).f64(2).f64(3), .unknown(typeOID: TypeOID.circle, text: "<(1,2),3>"))
        try expectBoth(TypeOID.path, text: "[(1,2),(3,4)]", binary: Bytes().u8(0).i32(2).f64(1).f64(2).f64(3).f64(4),
                       .unknown(typeOID: TypeOID.path, text: "[(1,2),(3,4)]"))
        try expectBoth(TypeOID.pgLSN, text: "16/B374D848", binary: Bytes().u64(0x16_B374_D848), .unknown(typeOID: TypeOID.pgLSN, text: "16/B374D848"))
        // A type Ferry cannot render keeps its bytes.
        #expect(try decodeBinary(TypeOID.regproc, Bytes().u32(42)) == .unknownBinary(typeOID: TypeOID.regproc, bytes: [0, 0, 0, 42]))
        #expect(try decodeText(TypeOID.regproc, "now") == .unknown(typeOID: TypeOID.regproc, text: "now"))
        #expect(try decodeText(99_999, "whatever") == .unknown(typeOID: 99_999, text: "whatever"))
    }

    @Test func registryDecodesDomainsEnumsAndCustomTypes() throws {
        let rows: [[String?]] = [
            ["16400", "public", "positive", "d", "23", "0", "N", ",", "0", "0"],
            ["16401", "public", "mood", "e", "0", "0", "E", ",", "0", "0"],
            ["16402", "public", "_mood", "b", "0", "16401", "A", ",", "0", "0"],
            ["16403", "public", "label", "d", "16404", "0", "S", ",", "0", "0"],
            ["16404", "public", "short_text", "d", "25", "0", "S", ",", "0", "0"],
            ["16410", "public", "hstore", "b", "0", "0", "U", ",", "0", "0"],
            ["16420", "public", "citext", "b", "0", "0", "S", ",", "0", "0"],
            ["16430", "public", "floatrange", "r", "0", "0", "R", ",", "701", "0"],
            ["16431", "public", "floatmultirange", "m", "0", "0", "R", ",", "0", "16430"],
            ["16440", "public", "pair", "c", "0", "0", "C", ",", "0", "0"],
            ["16441", "public", "_positive", "b", "0", "16400", "A", ",", "0", "0"],
        ]
        let registry = try TypeRegistry(rows: rows)
        #expect(registry.count == rows.count)
        #expect(registry[16400]?.kind == .domain(baseTypeOID: 23))
        let decoder = ValueDecoder(registry: registry)
        try expectBoth(16400, text: "42", binary: Bytes().i32(42), .int32(42), decoder: decoder)
        try expectBoth(16401, text: "happy", binary: Bytes().raw("happy"), .text("happy"), decoder: decoder)
        try expectBoth(16403, text: "domain over domain", binary: Bytes().raw("domain over domain"), .text("domain over domain"), decoder: decoder)
        try expectBoth(16420, text: "MiXeD", binary: Bytes().raw("MiXeD"), .text("MiXeD"), decoder: decoder)
        let moods = Bytes().i32(1).i32(1).u32(16401).i32(2).i32(1).field(Array("sad".utf8)).field(nil)
        try expectBoth(16402, text: "{sad,NULL}", binary: moods,
                       .array(Value.ArrayValue(elementTypeOID: 16401, elements: [.text("sad"), .null])), decoder: decoder)
        let positives = Bytes().i32(1).i32(0).u32(16400).i32(1).i32(1).field(Bytes().i32(5).bytes)
        try expectBoth(16441, text: "{5}", binary: positives,
                       .array(Value.ArrayValue(elementTypeOID: 16400, elements: [.int32(5)])), decoder: decoder)
        let hstore = Bytes().i32(2).field(Array("a".utf8)).field(Array("1".utf8)).field(Array("c d".utf8)).field(nil)
        try expectBoth(16410, text: #""a"=>"1", "c d"=>NULL"#, binary: hstore,
                       .unknown(typeOID: 16410, text: #""a"=>"1", "c d"=>NULL"#), decoder: decoder)
        let range = Bytes().u8(0x06).field(Bytes().f64(0.5).bytes).field(Bytes().f64(1).bytes)
        try expectBoth(16430, text: "[0.5,1]", binary: range, .unknown(typeOID: 16430, text: "[0.5,1]"), decoder: decoder)
        try expectBoth(16431, text: "{[0.5,1]}", binary: Bytes().i32(1).field(range.bytes),
                       .unknown(typeOID: 16431, text: "{[0.5,1]}"), decoder: decoder)
        let pair = Bytes().i32(2).u32(TypeOID.int4).field(Bytes().i32(1).bytes).u32(TypeOID.text).field(Array("x)".utf8))
        try expectBoth(16440, text: #"(1,"x)")"#, binary: pair, .unknown(typeOID: 16440, text: #"(1,"x)")"#), decoder: decoder)
        // Unknown without a registry entry: text kept, binary kept as bytes.
        #expect(try decodeBinary(16410, Bytes().i32(0)) == .unknownBinary(typeOID: 16410, bytes: [0, 0, 0, 0]))
        #expect(TypeRegistry.query.contains("pg_catalog.pg_type"))
        #expect(!TypeRegistry.query(serverVersionNumber: 130_000).contains("rngmultitypid"))
        #expect(throws: TypeRegistry.RowError.self) { try TypeRegistry(rows: [["x", "public", "t", "b", "0", "0", "U", ","]]) }
    }

    @Test func tupleValuesKeepNullAndUnchangedToastApart() throws {
        #expect(try plainDecoder.decode(TupleValue.null, typeOID: TypeOID.text) == .null)
        #expect(try plainDecoder.decode(TupleValue.unchangedToast, typeOID: TypeOID.text) == .unchangedToast)
        #expect(try plainDecoder.decode(TupleValue.text(ByteBuffer(string: "7")), typeOID: TypeOID.int4) == .int32(7))
        #expect(try plainDecoder.decode(TupleValue.binary(ByteBuffer(bytes: [0, 7])), typeOID: TypeOID.int2) == .int16(7))
        #expect(Value.unchangedToast != .null)
        #expect(!Value.unchangedToast.isNull)
        #expect(Value.unchangedToast.postgresText == nil)
        #expect(try plainDecoder.decode(typeOID: TypeOID.int8, text: nil) == .null)
        #expect(try plainDecoder.decode(typeOID: TypeOID.int8, text: "12") == .int64(12))
        #expect(try plainDecoder.decode(typeOID: TypeOID.int8, binary: [0, 0, 0, 0, 0, 0, 0, 12]) == .int64(12))
    }
}
