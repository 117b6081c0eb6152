/// Decoding PostgreSQL's binary send format (`typsend`), big-endian throughout.
extension ValueDecoder {
    func decodeBinary(_ oid: UInt32, _ b: UnsafeRawBufferPointer, depth: Int) throws -> Value {
        var r = BinaryReader(bytes: b, oid: oid)
        switch oid {
        case TypeOID.bool:
            try r.expectSize(1)
            switch b[0] {
            case 0: return .bool(false)
            case 1: return .bool(true)
            default: throw r.failure(.outOfRange, "bool byte must be 0 or 1")
            }
        case TypeOID.int2:
            try r.expectSize(2)
            return .int16(try r.int16())
        case TypeOID.int4:
            try r.expectSize(4)
            return .int32(try r.int32())
        case TypeOID.int8:
            try r.expectSize(8)
            return .int64(try r.int64())
        case TypeOID.oid, TypeOID.xid, TypeOID.cid:
            try r.expectSize(4)
            return .int64(Int64(try r.uint32()))
        case TypeOID.float4:
            try r.expectSize(4)
            return .float32(Float(bitPattern: try r.uint32()))
        case TypeOID.float8:
            try r.expectSize(8)
            return .float64(Double(bitPattern: try r.uint64()))
        case TypeOID.numeric:
            return .numeric(try binaryNumeric(&r))
        case TypeOID.text, TypeOID.varchar, TypeOID.bpchar, TypeOID.name, TypeOID.xml, TypeOID.unknown,
             TypeOID.refcursor:
            return .text(try r.restAsString())
        case TypeOID.char:
            // `charsend` sends the byte; `charout` prints it, octal-escaped when the high bit is set.
            try r.expectSize(1)
            let byte = b[0]
            if byte == 0 { return .text("") }
            if byte < 0x80 { return .text(String(UnicodeScalar(byte))) }
            let digits: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "0") + (byte >> 6), UInt8(ascii: "0") + (byte >> 3 & 7),
                                   UInt8(ascii: "0") + (byte & 7)]
            return .text(String(decoding: digits, as: UTF8.self))
        case TypeOID.bytea:
            return .bytes(Array(b))
        case TypeOID.date:
            try r.expectSize(4)
            let date = Value.Date(postgresDays: try r.int32())
            if case .days(let days) = date, !Calendar.dateRange.contains(Int64(days)) {
                throw r.failure(.outOfRange, "date out of range")
            }
            return .date(date)
        case TypeOID.time:
            try r.expectSize(8)
            let time = try r.int64()
            guard (0...Calendar.microsecondsPerDay).contains(time) else { throw r.failure(.outOfRange, "time out of range") }
            return .time(Value.Time(microseconds: time))
        case TypeOID.timetz:
            try r.expectSize(12)
            let time = try r.int64()
            let zoneWest = try r.int32()
            guard (0...Calendar.microsecondsPerDay).contains(time), (-57_599...57_599).contains(zoneWest) else {
                throw r.failure(.outOfRange, "timetz out of range")
            }
            return .timetz(Value.TimeTZ(microseconds: time, utcOffsetSeconds: -zoneWest))
        case TypeOID.timestamp, TypeOID.timestamptz:
            try r.expectSize(8)
            let timestamp = Value.Timestamp(postgresMicroseconds: try r.int64())
            if case .microseconds(let value) = timestamp, !Calendar.timestampRange.contains(value) {
                throw r.failure(.outOfRange, "timestamp out of range")
            }
            return oid == TypeOID.timestamp ? .timestamp(timestamp) : .timestamptz(timestamp)
        case TypeOID.interval:
            // interval_send: time (µs), day, month.
            try r.expectSize(16)
            let micros = try r.int64()
            let days = try r.int32()
            let months = try r.int32()
            return .interval(Value.Interval(months: months, days: days, microseconds: micros))
        case TypeOID.uuid:
            try r.expectSize(16)
            return .uuid(Value.UUID(high: try r.uint64(), low: try r.uint64()))
        case TypeOID.json:
            return .json(try r.restAsString())
        case TypeOID.jsonb:
            guard b.count >= 1, b[0] == 1 else { throw r.failure(.outOfRange, "unsupported jsonb version (expected 1)") }
            r.offset = 1
            return .jsonb(try r.restAsString())
        case TypeOID.inet, TypeOID.cidr:
            let text = try binaryInet(&r, isCIDRType: oid == TypeOID.cidr)
            return oid == TypeOID.cidr ? .cidr(text) : .inet(text)
        case TypeOID.macaddr, TypeOID.macaddr8:
            let size = oid == TypeOID.macaddr ? 6 : 8
            try r.expectSize(size)
            var out = [UInt8]()
            out.reserveCapacity(size * 3)
            for index in 0..<size {
                if index > 0 { out.append(UInt8(ascii: ":")) }
                out.append(hexDigits[Int(b[index] >> 4)])
                out.append(hexDigits[Int(b[index] & 0xF)])
            }
            let text = String(decoding: out, as: UTF8.self)
            return oid == TypeOID.macaddr ? .macaddr(text) : .macaddr8(text)
        case TypeOID.money:
            try r.expectSize(8)
            return .money(try r.int64())
        case TypeOID.bit, TypeOID.varbit:
            return .bitString(try binaryBits(&r))
        case TypeOID.tsvector:
            return .tsvector(try binaryTSVector(&r))
        default:
            return try decodeBinaryResolved(oid, b, depth: depth)
        }
    }

    private func decodeBinaryResolved(_ oid: UInt32, _ b: UnsafeRawBufferPointer, depth: Int) throws -> Value {
        var r = BinaryReader(bytes: b, oid: oid)
        guard depth < Self.maximumNesting else { throw r.failure(.tooDeep, "") }
        switch resolve(oid) {
        case .builtin(let base):
            if base != oid { return try decodeBinary(base, b, depth: depth + 1) }
            guard let text = try binaryOtherBuiltin(&r) else { return .unknownBinary(typeOID: oid, bytes: Array(b)) }
            return .unknown(typeOID: oid, text: text)
        case .array:
            return try binaryArray(&r, depth: depth + 1)
        case .range(let range, let subtype):
            r.oid = range
            guard let text = try binaryRange(&r, subtypeOID: subtype, depth: depth + 1) else {
                return .unknownBinary(typeOID: range, bytes: Array(b))
            }
            return .unknown(typeOID: range, text: text)
        case .multirange(let multirange, let range):
            r.oid = multirange
            guard let text = try binaryMultirange(&r, rangeOID: range, depth: depth + 1) else {
                return .unknownBinary(typeOID: multirange, bytes: Array(b))
            }
            return .unknown(typeOID: multirange, text: text)
        case .composite(let type):
            r.oid = type
            guard let text = try binaryRecord(&r, depth: depth + 1) else { return .unknownBinary(typeOID: type, bytes: Array(b)) }
            return .unknown(typeOID: type, text: text)
        case .hstore(let type):
            r.oid = type
            return .unknown(typeOID: type, text: try binaryHstore(&r))
        case .string:
            return .text(try r.restAsString())
        case .unknown(let type):
            return .unknownBinary(typeOID: type, bytes: Array(b))
        }
    }

    // MARK: numeric

    /// `numeric_send`: Int16 ndigits, Int16 weight, UInt16 sign, Int16 dscale, then ndigits
    /// base-10000 digits. Printed like `get_str_from_var`: exactly dscale fraction digits.
    func binaryNumeric(_ r: inout BinaryReader) throws -> String {
        let ndigits = Int(try r.int16())
        let weight = Int(try r.int16())
        let sign = try r.uint16()
        let dscale = Int(try r.int16())
        switch sign {
        case 0xC000: try r.expectEnd(); return "NaN"
        case 0xD000: try r.expectEnd(); return "Infinity"
        case 0xF000: try r.expectEnd(); return "-Infinity"
        case 0x0000, 0x4000: break
        default: throw r.failure(.outOfRange, "invalid numeric sign")
        }
        guard ndigits >= 0, dscale >= 0, dscale <= 0x3FFF, r.remaining == ndigits * 2 else {
            throw r.failure(.invalidLength, "invalid numeric header")
        }
        // The base-10000 digits are read in place.
        let base = r.offset
        for index in 0..<ndigits {
            let digit = Int16(bigEndian: r.bytes.loadUnaligned(fromByteOffset: base + index * 2, as: Int16.self))
            guard digit >= 0 && digit < 10000 else { throw r.failure(.outOfRange, "numeric digit out of range") }
        }
        r.offset = r.bytes.count
        let bytes = r.bytes
        func digit(_ index: Int) -> Int {
            guard index >= 0 && index < ndigits else { return 0 }
            return Int(Int16(bigEndian: bytes.loadUnaligned(fromByteOffset: base + index * 2, as: Int16.self)))
        }
        var out = [UInt8]()
        out.reserveCapacity(max(weight + 1, 1) * 4 + dscale + 2)
        if sign == 0x4000 { out.append(UInt8(ascii: "-")) }
        var d: Int
        if weight < 0 {
            d = weight + 1
            out.append(UInt8(ascii: "0"))
        } else {
            // get_str_from_var: the first group without leading zeros, the others padded to 4.
            let first = digit(0)
            if first >= 1000 { out.append(UInt8(ascii: "0") + UInt8(first / 1000)) }
            if first >= 100 { out.append(UInt8(ascii: "0") + UInt8(first / 100 % 10)) }
            if first >= 10 { out.append(UInt8(ascii: "0") + UInt8(first / 10 % 10)) }
            out.append(UInt8(ascii: "0") + UInt8(first % 10))
            d = 1
            while d <= weight {
                let group = digit(d)
                out.append(UInt8(ascii: "0") + UInt8(group / 1000))
                out.append(UInt8(ascii: "0") + UInt8(group / 100 % 10))
                out.append(UInt8(ascii: "0") + UInt8(group / 10 % 10))
                out.append(UInt8(ascii: "0") + UInt8(group % 10))
                d += 1
            }
        }
        if dscale > 0 {
            out.append(UInt8(ascii: "."))
            var written = 0
            while written < dscale {
                let group = digit(d)
                var divisor = 1000
                while divisor > 0 && written < dscale {
                    out.append(UInt8(ascii: "0") + UInt8(group / divisor % 10))
                    divisor /= 10
                    written += 1
                }
                d += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: inet, bit, tsvector

    /// `network_send`: family (2 IPv4, 3 IPv6), bits, is_cidr, address length, address.
    /// Printed like `network_out` (`pg_inet_net_ntop`).
    func binaryInet(_ r: inout BinaryReader, isCIDRType: Bool) throws -> String {
        let family = try r.uint8()
        let bits = Int(try r.uint8())
        _ = try r.uint8() // is_cidr: the column type decides how it prints
        let count = Int(try r.uint8())
        let (size, maxBits) = family == 2 ? (4, 32) : family == 3 ? (16, 128) : (0, 0)
        guard size > 0 else { throw r.failure(.outOfRange, "unknown address family") }
        guard count == size, bits <= maxBits, r.remaining == size else { throw r.failure(.invalidLength, "invalid address length") }
        let address = r.bytes[r.offset..<(r.offset + size)]
        r.offset += size
        var out = [UInt8]()
        out.reserveCapacity(48)
        if family == 2 {
            for (index, byte) in address.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ".")) }
                out.appendDecimal(UInt64(byte))
            }
        } else {
            appendIPv6(Array(address), to: &out)
        }
        if bits != maxBits || isCIDRType {
            out.append(UInt8(ascii: "/"))
            out.appendDecimal(UInt64(bits))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `inet_net_ntop_ipv6`: the longest run (≥ 2) of zero words as `::`, an embedded IPv4
    /// address for `::a.b.c.d` and `::ffff:a.b.c.d`.
    private func appendIPv6(_ address: [UInt8], to out: inout [UInt8]) {
        var words = [Int](repeating: 0, count: 8)
        for index in 0..<16 { words[index / 2] |= Int(address[index]) << ((1 - index % 2) * 8) }
        var best = (base: -1, length: 0), current = (base: -1, length: 0)
        for index in 0..<8 {
            if words[index] == 0 {
                if current.base == -1 { current = (index, 1) } else { current.length += 1 }
            } else if current.base != -1 {
                if best.base == -1 || current.length > best.length { best = current }
                current.base = -1
            }
        }
        if current.base != -1 && (best.base == -1 || current.length > best.length) { best = current }
        if best.base != -1 && best.length < 2 { best.base = -1 }
        var index = 0
        while index < 8 {
            if best.base != -1 && index >= best.base && index < best.base + best.length {
                if index == best.base { out.append(UInt8(ascii: ":")) }
                index += 1
                continue
            }
            if index != 0 { out.append(UInt8(ascii: ":")) }
            if index == 6 && best.base == 0
                && (best.length == 6 || (best.length == 7 && words[7] != 0x0001) || (best.length == 5 && words[5] == 0xFFFF)) {
                for (k, byte) in address[12..<16].enumerated() {
                    if k > 0 { out.append(UInt8(ascii: ".")) }
                    out.appendDecimal(UInt64(byte))
                }
                break
            }
            let word = words[index]
            var started = false
            for shift in stride(from: 12, through: 0, by: -4) {
                let nibble = (word >> shift) & 0xF
                if nibble != 0 || started || shift == 0 {
                    out.append(hexDigits[nibble])
                    started = true
                }
            }
            index += 1
        }
        if best.base != -1 && best.base + best.length == 8 { out.append(UInt8(ascii: ":")) }
    }

    /// `bit_send`/`varbit_send`: Int32 bit length, then the bits, most significant first.
    func binaryBits(_ r: inout BinaryReader) throws -> String {
        let length = Int(try r.int32())
        guard length >= 0, r.remaining == (length + 7) / 8 else { throw r.failure(.invalidLength, "bit length does not match the bytes") }
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: length)
        for index in 0..<length where r.bytes[r.offset + index / 8] & (0x80 >> UInt8(index % 8)) != 0 {
            out[index] = UInt8(ascii: "1")
        }
        r.offset = r.bytes.count
        return String(decoding: out, as: UTF8.self)
    }

    /// `tsvectorsend`: Int32 lexeme count; per lexeme a zero-terminated string, UInt16
    /// position count, UInt16 positions (weight in the top two bits). Printed like
    /// `tsvectorout`: `'lexeme':1A,2`.
    func binaryTSVector(_ r: inout BinaryReader) throws -> String {
        let count = Int(try r.int32())
        guard count >= 0, count <= r.remaining / 3 else { throw r.failure(.invalidLength, "invalid lexeme count") }
        var out = [UInt8]()
        out.reserveCapacity(r.remaining + count * 4)
        for index in 0..<count {
            if index > 0 { out.append(UInt8(ascii: " ")) }
            let start = r.offset
            guard let end = r.bytes[start...].firstIndex(of: 0) else { throw r.failure(.truncated, "unterminated lexeme") }
            let lexeme = UnsafeRawBufferPointer(rebasing: r.bytes[start..<end])
            guard utf8String(lexeme) != nil else { throw r.failure(.invalidEncoding, "") }
            r.offset = end + 1
            out.append(UInt8(ascii: "'"))
            for byte in lexeme {
                if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\\") { out.append(byte) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "'"))
            let positions = Int(try r.uint16())
            if positions > 0 {
                out.append(UInt8(ascii: ":"))
                for p in 0..<positions {
                    if p > 0 { out.append(UInt8(ascii: ",")) }
                    let entry = try r.uint16()
                    out.appendDecimal(UInt64(entry & 0x3FFF))
                    switch entry >> 14 {
                    case 3: out.append(UInt8(ascii: "A"))
                    case 2: out.append(UInt8(ascii: "B"))
                    case 1: out.append(UInt8(ascii: "C"))
                    default: break
                    }
                }
            }
        }
        try r.expectEnd()
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Arrays

    /// `array_send`: Int32 ndim, Int32 has-null flag, UInt32 element type, ndim × (Int32
    /// length, Int32 lower bound), then each element as Int32 length (-1 for NULL) + bytes.
    func binaryArray(_ r: inout BinaryReader, depth: Int) throws -> Value {
        let ndim = Int(try r.int32())
        let flags = try r.int32()
        let elementOID = try r.uint32()
        guard (0...6).contains(ndim) else { throw r.failure(.outOfRange, "invalid number of array dimensions") }
        guard flags == 0 || flags == 1 else { throw r.failure(.outOfRange, "invalid array flags") }
        var dimensions: [Value.ArrayValue.Dimension] = []
        dimensions.reserveCapacity(ndim)
        var count = ndim == 0 ? 0 : 1
        for _ in 0..<ndim {
            let length = try r.int32()
            let lowerBound = try r.int32()
            guard length >= 0, Int64(lowerBound) + Int64(length) - 1 <= Int64(Int32.max) else {
                throw r.failure(.outOfRange, "invalid array dimension")
            }
            dimensions.append(.init(length: length, lowerBound: lowerBound))
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(length))
            guard !overflow else { throw r.failure(.invalidLength, "too many array elements") }
            count = product
        }
        // Every element takes at least its 4-byte length.
        guard count <= r.remaining / 4 else { throw r.failure(.invalidLength, "more array elements than bytes") }
        if count == 0 { dimensions = [] }
        var elements: [Value] = []
        elements.reserveCapacity(count)
        for _ in 0..<count {
            guard let element = try r.lengthPrefixed() else {
                elements.append(.null)
                continue
            }
            elements.append(try decodeBinary(elementOID, element, depth: depth))
        }
        try r.expectEnd()
        return .array(Value.ArrayValue(elementTypeOID: elementOID, dimensions: dimensions, elements: elements))
    }

    // MARK: Types rendered as text (Value.unknown)

    /// `range_send`: flags byte, then the bounds present as Int32 length + subtype bytes.
    /// Printed like `range_out`; nil when a bound has no text form.
    func binaryRange(_ r: inout BinaryReader, subtypeOID: UInt32, depth: Int) throws -> String? {
        let flags = try r.uint8()
        let empty: UInt8 = 0x01, lowerInclusive: UInt8 = 0x02, upperInclusive: UInt8 = 0x04
        let lowerInfinite: UInt8 = 0x08, upperInfinite: UInt8 = 0x10, lowerNull: UInt8 = 0x20, upperNull: UInt8 = 0x40
        guard flags & 0x80 == 0 else { throw r.failure(.outOfRange, "invalid range flags") }
        if flags & empty != 0 {
            try r.expectEnd()
            return "empty"
        }
        var out = [UInt8]()
        var bound = [UInt8]()
        out.append(flags & lowerInclusive != 0 ? UInt8(ascii: "[") : UInt8(ascii: "("))
        let isSpecial: (UInt8) -> Bool = {
            $0 == UInt8(ascii: "(") || $0 == UInt8(ascii: ")") || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]")
                || $0 == UInt8(ascii: ",")
        }
        for (absent, separator) in [(lowerInfinite | lowerNull, true), (upperInfinite | upperNull, false)] {
            if flags & absent == 0 {
                guard let bytes = try r.lengthPrefixed() else { throw r.failure(.invalidLength, "NULL range bound") }
                bound.removeAll(keepingCapacity: true)
                guard try decodeBinary(subtypeOID, bytes, depth: depth).appendPostgresText(to: &bound) else { return nil }
                appendCompositeQuoted(bound, special: isSpecial, to: &out)
            }
            if separator { out.append(UInt8(ascii: ",")) }
        }
        out.append(flags & upperInclusive != 0 ? UInt8(ascii: "]") : UInt8(ascii: ")"))
        try r.expectEnd()
        return String(decoding: out, as: UTF8.self)
    }

    /// `multirange_send`: Int32 range count, each range as Int32 length + `range_send`.
    /// Printed like `multirange_out`: `{[1,3),[5,7)}`.
    func binaryMultirange(_ r: inout BinaryReader, rangeOID: UInt32, depth: Int) throws -> String? {
        let count = Int(try r.int32())
        guard count >= 0, count <= r.remaining / 5 else { throw r.failure(.invalidLength, "invalid range count") }
        let subtype: UInt32
        switch resolve(rangeOID) {
        case .range(_, let s): subtype = s
        default: return nil
        }
        var out: [UInt8] = [UInt8(ascii: "{")]
        for index in 0..<count {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            guard let bytes = try r.lengthPrefixed() else { throw r.failure(.invalidLength, "NULL range") }
            var inner = BinaryReader(bytes: bytes, oid: rangeOID)
            guard let text = try binaryRange(&inner, subtypeOID: subtype, depth: depth + 1) else { return nil }
            out.append(contentsOf: text.utf8)
        }
        out.append(UInt8(ascii: "}"))
        try r.expectEnd()
        return String(decoding: out, as: UTF8.self)
    }

    /// `record_send`: Int32 column count; per column UInt32 type OID, Int32 length (-1
    /// NULL), bytes. Printed like `record_out`: `(1,"a b",,"")`.
    func binaryRecord(_ r: inout BinaryReader, depth: Int) throws -> String? {
        let count = Int(try r.int32())
        guard count >= 0, count <= r.remaining / 8 else { throw r.failure(.invalidLength, "invalid column count") }
        var out: [UInt8] = [UInt8(ascii: "(")]
        var field = [UInt8]()
        let isSpecial: (UInt8) -> Bool = { $0 == UInt8(ascii: "(") || $0 == UInt8(ascii: ")") || $0 == UInt8(ascii: ",") }
        for index in 0..<count {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            let fieldOID = try r.uint32()
            guard let bytes = try r.lengthPrefixed() else { continue }
            field.removeAll(keepingCapacity: true)
            guard try decodeBinary(fieldOID, bytes, depth: depth).appendPostgresText(to: &field) else { return nil }
            appendCompositeQuoted(field, special: isSpecial, to: &out)
        }
        out.append(UInt8(ascii: ")"))
        try r.expectEnd()
        return String(decoding: out, as: UTF8.self)
    }

    /// `hstore_send`: Int32 pair count; per pair key (Int32 length + text), value (Int32
    /// length, -1 NULL, + text). Printed like `hstore_out`: `"a"=>"1", "b"=>NULL`.
    func binaryHstore(_ r: inout BinaryReader) throws -> String {
        let count = Int(try r.int32())
        guard count >= 0, count <= r.remaining / 8 else { throw r.failure(.invalidLength, "invalid pair count") }
        var out = [UInt8]()
        out.reserveCapacity(r.remaining + count * 8)
        func quoted(_ bytes: UnsafeRawBufferPointer) throws {
            guard utf8String(bytes) != nil else { throw r.failure(.invalidEncoding, "") }
            out.append(UInt8(ascii: "\""))
            for byte in bytes {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "\""))
        }
        for index in 0..<count {
            if index > 0 { out.append(contentsOf: ", ".utf8) }
            guard let key = try r.lengthPrefixed() else { throw r.failure(.invalidLength, "NULL hstore key") }
            try quoted(key)
            out.append(contentsOf: "=>".utf8)
            if let value = try r.lengthPrefixed() { try quoted(value) } else { out.append(contentsOf: "NULL".utf8) }
        }
        try r.expectEnd()
        return String(decoding: out, as: UTF8.self)
    }

    /// Other built-in types whose binary form Ferry renders as PostgreSQL prints them:
    /// geometric types, `pg_lsn`, `tid`, `xid8`. Nil for the rest (`reg*` types send OIDs
    /// but print names; `tsquery`, `jsonpath`, … are not rendered).
    func binaryOtherBuiltin(_ r: inout BinaryReader) throws -> String? {
        var out = [UInt8]()
        func point() throws {
            out.append(UInt8(ascii: "("))
            FloatText.append(Double(bitPattern: try r.uint64()), to: &out)
            out.append(UInt8(ascii: ","))
            FloatText.append(Double(bitPattern: try r.uint64()), to: &out)
            out.append(UInt8(ascii: ")"))
        }
        func points(_ count: Int) throws {
            for index in 0..<count {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                try point()
            }
        }
        switch r.oid {
        case TypeOID.point:
            try r.expectSize(16)
            try point()
        case TypeOID.lseg:
            try r.expectSize(32)
            out.append(UInt8(ascii: "["))
            try points(2)
            out.append(UInt8(ascii: "]"))
        case TypeOID.box:
            try r.expectSize(32)
            try points(2)
        case TypeOID.line:
            try r.expectSize(24)
            out.append(UInt8(ascii: "{"))
            for index in 0..<3 {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                FloatText.append(Double(bitPattern: try r.uint64()), to: &out)
            }
            out.append(UInt8(ascii: "}"))
        case TypeOID.circle:
            try r.expectSize(24)
            out.append(UInt8(ascii: "<"))
            try point()
            out.append(UInt8(ascii: ","))
            FloatText.append(Double(bitPattern: try r.uint64()), to: &out)
            out.append(UInt8(ascii: ">"))
        case TypeOID.path:
            let closed = try r.uint8()
            let count = Int(try r.int32())
            guard closed <= 1, count >= 0, r.remaining == count * 16 else { throw r.failure(.invalidLength, "invalid path") }
            out.append(closed == 1 ? UInt8(ascii: "(") : UInt8(ascii: "["))
            try points(count)
            out.append(closed == 1 ? UInt8(ascii: ")") : UInt8(ascii: "]"))
        case TypeOID.polygon:
            let count = Int(try r.int32())
            guard count >= 0, r.remaining == count * 16 else { throw r.failure(.invalidLength, "invalid polygon") }
            out.append(UInt8(ascii: "("))
            try points(count)
            out.append(UInt8(ascii: ")"))
        case TypeOID.pgLSN:
            try r.expectSize(8)
            let lsn = try r.uint64()
            out.append(contentsOf: String(lsn >> 32, radix: 16, uppercase: true).utf8)
            out.append(UInt8(ascii: "/"))
            out.append(contentsOf: String(lsn & 0xFFFF_FFFF, radix: 16, uppercase: true).utf8)
        case TypeOID.tid:
            try r.expectSize(6)
            out.append(UInt8(ascii: "("))
            out.appendDecimal(UInt64(try r.uint32()))
            out.append(UInt8(ascii: ","))
            out.appendDecimal(UInt64(try r.uint16()))
            out.append(UInt8(ascii: ")"))
        case TypeOID.xid8:
            try r.expectSize(8)
            out.appendDecimal(try r.uint64())
        default:
            return nil
        }
        try r.expectEnd()
        return String(decoding: out, as: UTF8.self)
    }
}

/// A bounds-checked big-endian reader over one value's bytes. Every failure is a
/// ``ValueDecodingError`` naming the type and carrying the value's bytes.
struct BinaryReader {
    let bytes: UnsafeRawBufferPointer
    var oid: UInt32
    var offset = 0

    init(bytes: UnsafeRawBufferPointer, oid: UInt32) {
        self.bytes = bytes
        self.oid = oid
    }

    var remaining: Int { bytes.count - offset }

    func failure(_ code: ValueDecodingError.Code, _ detail: String) -> ValueDecodingError {
        ValueDecodingError(code, typeOID: oid, format: .binary, detail: detail, bytes: bytes)
    }

    func expectSize(_ size: Int) throws {
        guard bytes.count == size else { throw failure(.invalidLength, "expected \(size) bytes") }
    }

    func expectEnd() throws {
        guard remaining == 0 else { throw failure(.trailingBytes, "") }
    }

    @inline(__always)
    private mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw failure(.truncated, "") }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(bigEndian: value)
    }

    mutating func uint8() throws -> UInt8 { try load(UInt8.self) }
    mutating func uint16() throws -> UInt16 { try load(UInt16.self) }
    mutating func int16() throws -> Int16 { try load(Int16.self) }
    mutating func uint32() throws -> UInt32 { try load(UInt32.self) }
    mutating func int32() throws -> Int32 { try load(Int32.self) }
    mutating func uint64() throws -> UInt64 { try load(UInt64.self) }
    mutating func int64() throws -> Int64 { try load(Int64.self) }

    /// Int32 length (-1 → nil, NULL) and that many bytes.
    mutating func lengthPrefixed() throws -> UnsafeRawBufferPointer? {
        let length = Int(try int32())
        if length == -1 { return nil }
        guard length >= 0, length <= remaining else { throw failure(.invalidLength, "length \(length) exceeds the value") }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
        offset += length
        return slice
    }

    mutating func restAsString() throws -> String {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        offset = bytes.count
        guard let string = utf8String(rest) else { throw failure(.invalidEncoding, "") }
        return string
    }
}
