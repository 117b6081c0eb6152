/// Decoding PostgreSQL's text output format (`typoutput`).
extension ValueDecoder {
    func decodeText(_ oid: UInt32, _ t: UnsafeRawBufferPointer, depth: Int) throws -> Value {
        switch oid {
        case TypeOID.bool:
            if t.count == 1 {
                if t[0] == UInt8(ascii: "t") { return .bool(true) }
                if t[0] == UInt8(ascii: "f") { return .bool(false) }
            }
            if equalsIgnoringASCIICase(t, "true") { return .bool(true) }
            if equalsIgnoringASCIICase(t, "false") { return .bool(false) }
            throw error(.invalidSyntax, oid, .text, "expected t or f", t)
        case TypeOID.int2:
            return .int16(try textInteger(t, oid, min: Int64(Int16.min), max: Int64(Int16.max)).truncatedInt16)
        case TypeOID.int4:
            return .int32(Int32(truncatingIfNeeded: try textInteger(t, oid, min: Int64(Int32.min), max: Int64(Int32.max))))
        case TypeOID.int8:
            return .int64(try textInteger(t, oid, min: .min, max: .max))
        case TypeOID.oid, TypeOID.xid, TypeOID.cid:
            return .int64(try textInteger(t, oid, min: 0, max: Int64(UInt32.max)))
        case TypeOID.float4:
            if let fast = fastDecimal(t), fast.significand < 1 << 24, (-10...10).contains(fast.exponent) {
                let magnitude = fast.exponent < 0 ? Float(fast.significand) / Float(powersOfTen[-fast.exponent])
                                                  : Float(fast.significand) * Float(powersOfTen[fast.exponent])
                return .float32(fast.negative ? -magnitude : magnitude)
            }
            return .float32(try textFloat(t, oid, parse: { Float($0) }))
        case TypeOID.float8:
            if let fast = fastDecimal(t), fast.significand < 1 << 53, (-22...22).contains(fast.exponent) {
                let magnitude = fast.exponent < 0 ? Double(fast.significand) / powersOfTen[-fast.exponent]
                                                  : Double(fast.significand) * powersOfTen[fast.exponent]
                return .float64(fast.negative ? -magnitude : magnitude)
            }
            return .float64(try textFloat(t, oid, parse: { Double($0) }))
        case TypeOID.numeric:
            return .numeric(try textNumeric(t, oid))
        case TypeOID.text, TypeOID.varchar, TypeOID.bpchar, TypeOID.name, TypeOID.char, TypeOID.xml,
             TypeOID.unknown, TypeOID.refcursor:
            return .text(try text(t, oid))
        case TypeOID.bytea:
            return .bytes(try textBytea(t, oid))
        case TypeOID.date:
            return .date(try textDate(t, oid))
        case TypeOID.time:
            var i = 0
            guard let time = parseTime(t, &i), i == t.count else { throw error(.invalidSyntax, oid, .text, "expected HH:MM:SS[.ffffff]", t) }
            return .time(Value.Time(microseconds: time))
        case TypeOID.timetz:
            var i = 0
            guard let time = parseTime(t, &i), let zone = parseZone(t, &i), i == t.count else {
                throw error(.invalidSyntax, oid, .text, "expected HH:MM:SS[.ffffff]+HH[:MM[:SS]]", t)
            }
            return .timetz(Value.TimeTZ(microseconds: time, utcOffsetSeconds: zone))
        case TypeOID.timestamp:
            return .timestamp(try textTimestamp(t, oid, withZone: false))
        case TypeOID.timestamptz:
            return .timestamptz(try textTimestamp(t, oid, withZone: true))
        case TypeOID.interval:
            return .interval(try textInterval(t, oid))
        case TypeOID.uuid:
            return .uuid(try textUUID(t, oid))
        case TypeOID.json:
            return .json(try text(t, oid))
        case TypeOID.jsonb:
            return .jsonb(try text(t, oid))
        case TypeOID.inet:
            return .inet(try text(t, oid))
        case TypeOID.cidr:
            return .cidr(try text(t, oid))
        case TypeOID.macaddr:
            return .macaddr(try text(t, oid))
        case TypeOID.macaddr8:
            return .macaddr8(try text(t, oid))
        case TypeOID.money:
            return .money(try textMoney(t, oid))
        case TypeOID.bit, TypeOID.varbit:
            for byte in t where byte != UInt8(ascii: "0") && byte != UInt8(ascii: "1") {
                throw error(.invalidSyntax, oid, .text, "expected a string of 0 and 1", t)
            }
            return .bitString(try text(t, oid))
        case TypeOID.tsvector:
            return .tsvector(try text(t, oid))
        default:
            return try decodeTextResolved(oid, t, depth: depth)
        }
    }

    private func decodeTextResolved(_ oid: UInt32, _ t: UnsafeRawBufferPointer, depth: Int) throws -> Value {
        guard depth < Self.maximumNesting else { throw error(.tooDeep, oid, .text, "", t) }
        switch resolve(oid) {
        case .builtin(let base):
            if base != oid { return try decodeText(base, t, depth: depth + 1) }
            return .unknown(typeOID: oid, text: try text(t, oid))
        case .array(_, let element):
            return try textArray(t, arrayOID: oid, elementOID: element, depth: depth + 1)
        case .range(let range, _):
            return .unknown(typeOID: range, text: try text(t, oid))
        case .multirange(let multirange, _):
            return .unknown(typeOID: multirange, text: try text(t, oid))
        case .composite(let type), .hstore(let type), .unknown(let type):
            return .unknown(typeOID: type, text: try text(t, oid))
        case .string:
            return .text(try text(t, oid))
        }
    }

    // MARK: Scalars

    func text(_ t: UnsafeRawBufferPointer, _ oid: UInt32) throws -> String {
        guard let string = utf8String(t) else { throw error(.invalidEncoding, oid, .text, "", t) }
        return string
    }

    /// A decimal integer with optional sign, within `min...max`.
    func textInteger(_ t: UnsafeRawBufferPointer, _ oid: UInt32, min: Int64, max: Int64) throws -> Int64 {
        var i = 0
        guard let value = parseInteger(t, &i), i == t.count else {
            throw error(.invalidSyntax, oid, .text, "expected an integer", t)
        }
        guard value >= min && value <= max else { throw error(.outOfRange, oid, .text, "integer out of range", t) }
        return value
    }

    func textFloat<F: BinaryFloatingPoint>(_ t: UnsafeRawBufferPointer, _ oid: UInt32, parse: (String) -> F?) throws -> F {
        if equalsIgnoringASCIICase(t, "nan") { return .nan }
        if equalsIgnoringASCIICase(t, "infinity") || equalsIgnoringASCIICase(t, "inf") { return .infinity }
        if equalsIgnoringASCIICase(t, "-infinity") || equalsIgnoringASCIICase(t, "-inf") { return -.infinity }
        guard !t.isEmpty, t.count <= 64 else { throw error(.invalidSyntax, oid, .text, "expected a number", t) }
        for byte in t {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "+"),
                 UInt8(ascii: "e"), UInt8(ascii: "E"):
                continue
            default:
                throw error(.invalidSyntax, oid, .text, "expected a number", t)
            }
        }
        // At most 64 ASCII bytes: a small string, usually without heap allocation.
        guard let value = parse(String(decoding: t, as: UTF8.self)) else {
            throw error(.invalidSyntax, oid, .text, "expected a number", t)
        }
        guard value.isFinite else { throw error(.outOfRange, oid, .text, "number out of range", t) }
        return value
    }

    /// `numeric_out`: `-?digits(.digits)?`, `NaN`, `Infinity`, `-Infinity`. Kept as text.
    func textNumeric(_ t: UnsafeRawBufferPointer, _ oid: UInt32) throws -> String {
        if equalsIgnoringASCIICase(t, "nan") { return "NaN" }
        if equalsIgnoringASCIICase(t, "infinity") { return "Infinity" }
        if equalsIgnoringASCIICase(t, "-infinity") { return "-Infinity" }
        var i = 0
        if i < t.count && t[i] == UInt8(ascii: "-") { i += 1 }
        var digits = 0, points = 0
        while i < t.count {
            let byte = t[i]
            if byte == UInt8(ascii: ".") {
                points += 1
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                digits += 1
            } else {
                break
            }
            i += 1
        }
        guard i == t.count, digits > 0, points <= 1 else { throw error(.invalidSyntax, oid, .text, "expected a decimal number", t) }
        return String(decoding: t, as: UTF8.self)
    }

    /// `byteaout`: `\x` + hex (`bytea_output=hex`), or the `escape` format.
    func textBytea(_ t: UnsafeRawBufferPointer, _ oid: UInt32) throws -> [UInt8] {
        if t.count >= 2 && t[0] == UInt8(ascii: "\\") && t[1] == UInt8(ascii: "x") {
            guard t.count % 2 == 0 else { throw error(.invalidSyntax, oid, .text, "odd number of hex digits", t) }
            var bytes = [UInt8](repeating: 0, count: (t.count - 2) / 2)
            var i = 2, j = 0
            while i < t.count {
                guard let high = hexValue(t[i]), let low = hexValue(t[i + 1]) else {
                    throw error(.invalidSyntax, oid, .text, "invalid hex digit", t)
                }
                bytes[j] = high << 4 | low
                i += 2
                j += 1
            }
            return bytes
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(t.count)
        var i = 0
        while i < t.count {
            let byte = t[i]
            if byte != UInt8(ascii: "\\") {
                bytes.append(byte)
                i += 1
            } else if i + 1 < t.count && t[i + 1] == UInt8(ascii: "\\") {
                bytes.append(byte)
                i += 2
            } else if i + 3 < t.count, let a = octalValue(t[i + 1]), a <= 3, let b = octalValue(t[i + 2]), let c = octalValue(t[i + 3]) {
                bytes.append(a << 6 | b << 3 | c)
                i += 4
            } else {
                throw error(.invalidSyntax, oid, .text, "invalid escape in bytea", t)
            }
        }
        return bytes
    }

    func textDate(_ t: UnsafeRawBufferPointer, _ oid: UInt32) throws -> Value.Date {
        if equalsIgnoringASCIICase(t, "infinity") { return .infinity }
        if equalsIgnoringASCIICase(t, "-infinity") { return .negativeInfinity }
        var i = 0
        guard let (year, month, day) = parseYMD(t, &i) else {
            throw error(.invalidSyntax, oid, .text, "expected YYYY-MM-DD (DateStyle ISO)", t)
        }
        var astronomicalYear = year
        if parseBC(t, &i) { astronomicalYear = 1 - year }
        guard i == t.count else { throw error(.invalidSyntax, oid, .text, "expected YYYY-MM-DD (DateStyle ISO)", t) }
        guard let date = Value.Date(year: astronomicalYear, month: month, day: day) else {
            throw error(.outOfRange, oid, .text, "date out of range", t)
        }
        return date
    }

    func textTimestamp(_ t: UnsafeRawBufferPointer, _ oid: UInt32, withZone: Bool) throws -> Value.Timestamp {
        if equalsIgnoringASCIICase(t, "infinity") { return .infinity }
        if equalsIgnoringASCIICase(t, "-infinity") { return .negativeInfinity }
        var i = 0
        let syntax = withZone ? "expected YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM] [BC] (DateStyle ISO)"
                              : "expected YYYY-MM-DD HH:MM:SS[.ffffff] [BC] (DateStyle ISO)"
        guard let (year, month, day) = parseYMD(t, &i), i < t.count, t[i] == UInt8(ascii: " ") || t[i] == UInt8(ascii: "T") else {
            throw error(.invalidSyntax, oid, .text, syntax, t)
        }
        i += 1
        guard let time = parseTime(t, &i) else { throw error(.invalidSyntax, oid, .text, syntax, t) }
        var offset: Int32 = 0
        if withZone {
            guard let zone = parseZone(t, &i) else { throw error(.invalidSyntax, oid, .text, syntax, t) }
            offset = zone
        }
        var astronomicalYear = year
        if parseBC(t, &i) { astronomicalYear = 1 - year }
        guard i == t.count else { throw error(.invalidSyntax, oid, .text, syntax, t) }
        guard (1...Calendar.daysInMonth(year: astronomicalYear, month: month)).contains(day),
              let days = Calendar.postgresDays(year: astronomicalYear, month: month, day: day) else {
            throw error(.outOfRange, oid, .text, "timestamp out of range", t)
        }
        // Days beyond the timestamp range would overflow the multiplication: refuse them first.
        guard abs(days) < 200_000_000 else { throw error(.outOfRange, oid, .text, "timestamp out of range", t) }
        let value = days * Calendar.microsecondsPerDay + time - Int64(offset) * Calendar.microsecondsPerSecond
        guard Calendar.timestampRange.contains(value) else { throw error(.outOfRange, oid, .text, "timestamp out of range", t) }
        return .microseconds(value)
    }

    func textUUID(_ t: UnsafeRawBufferPointer, _ oid: UInt32) throws -> Value.UUID {
        var high: UInt64 = 0, low: UInt64 = 0, digits = 0
        for byte in t {
            if byte == UInt8(ascii: "-") { continue }
            guard let value = hexValue(byte), digits < 32 else { throw error(.invalidSyntax, oid, .text, "expected 32 hex digits", t) }
            if digits < 16 { high = high << 4 | UInt64(value) } else { low = low << 4 | UInt64(value) }
            digits += 1
        }
        guard digits == 32 else { throw error(.invalidSyntax, oid, .text, "expected 32 hex digits", t) }
        return Value.UUID(high: high, low: low)
    }

    /// `cash_out` in any locale: the digits, negative when there is a `-` or `(`. The
    /// result is in the locale's smallest unit, as the binary form is.
    func textMoney(_ t: UnsafeRawBufferPointer, _ oid: UInt32) throws -> Int64 {
        var magnitude: UInt64 = 0
        var negative = false, digits = 0
        for byte in t {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
                guard !o1, !o2 else { throw error(.outOfRange, oid, .text, "money out of range", t) }
                magnitude = sum
                digits += 1
            } else if byte == UInt8(ascii: "-") || byte == UInt8(ascii: "(") {
                negative = true
            }
        }
        guard digits > 0 else { throw error(.invalidSyntax, oid, .text, "expected an amount", t) }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw error(.outOfRange, oid, .text, "money out of range", t) }
            return magnitude == UInt64(Int64.max) + 1 ? .min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { throw error(.outOfRange, oid, .text, "money out of range", t) }
        return Int64(magnitude)
    }

    // MARK: Interval

    /// `IntervalStyle=postgres` (`1 year 2 mons -3 days +04:05:06.5`), `iso_8601`
    /// (`P1Y2M-3DT4H5M6.5S`), and PostgreSQL 17's `infinity`/`-infinity`.
    func textInterval(_ t: UnsafeRawBufferPointer, _ oid: UInt32) throws -> Value.Interval {
        if equalsIgnoringASCIICase(t, "infinity") { return .infinity }
        if equalsIgnoringASCIICase(t, "-infinity") { return .negativeInfinity }
        var months: Int64 = 0, days: Int64 = 0, micros: Int64 = 0
        let parsed = t.first == UInt8(ascii: "P")
            ? parseISOInterval(t, months: &months, days: &days, micros: &micros)
            : parsePostgresInterval(t, months: &months, days: &days, micros: &micros)
        guard parsed else {
            throw error(.invalidSyntax, oid, .text, "expected IntervalStyle postgres or iso_8601", t)
        }
        guard let m = Int32(exactly: months), let d = Int32(exactly: days) else {
            throw error(.outOfRange, oid, .text, "interval out of range", t)
        }
        return Value.Interval(months: m, days: d, microseconds: micros)
    }

    private func parsePostgresInterval(_ t: UnsafeRawBufferPointer, months: inout Int64, days: inout Int64, micros: inout Int64) -> Bool {
        var i = 0
        var any = false
        while i < t.count {
            while i < t.count && t[i] == UInt8(ascii: " ") { i += 1 }
            guard i < t.count else { break }
            // A time part `[+-]H+:MM:SS[.f]`, or `number unit`.
            var j = i
            if t[j] == UInt8(ascii: "+") || t[j] == UInt8(ascii: "-") { j += 1 }
            while j < t.count && isDigit(t[j]) { j += 1 }
            if j < t.count && t[j] == UInt8(ascii: ":") {
                var negative = false
                if t[i] == UInt8(ascii: "-") { negative = true; i += 1 } else if t[i] == UInt8(ascii: "+") { i += 1 }
                guard let hours = parseUnsigned(t, &i), i < t.count, t[i] == UInt8(ascii: ":") else { return false }
                i += 1
                guard let minutes = parseFixedDigits(t, &i, count: 2), minutes < 60,
                      i < t.count, t[i] == UInt8(ascii: ":") else { return false }
                i += 1
                guard let seconds = parseFixedDigits(t, &i, count: 2), seconds < 60 else { return false }
                var fraction: Int64 = 0
                if i < t.count && t[i] == UInt8(ascii: ".") {
                    i += 1
                    guard let f = parseFraction(t, &i) else { return false }
                    fraction = f
                }
                guard hours <= UInt64(Int64.max / Calendar.microsecondsPerHour) else { return false }
                var total: Int64 = 0
                guard accumulate(&total, Int64(hours), Calendar.microsecondsPerHour, 0),
                      accumulate(&total, Int64(minutes), Calendar.microsecondsPerMinute, 0),
                      accumulate(&total, Int64(seconds), Calendar.microsecondsPerSecond, fraction),
                      accumulate(&micros, negative ? -total : total, 1, 0) else { return false }
            } else {
                guard let number = parseInteger(t, &i), number.magnitude <= UInt64(UInt32.max),
                      i < t.count, t[i] == UInt8(ascii: " ") else { return false }
                i += 1
                let start = i
                while i < t.count && t[i] != UInt8(ascii: " ") { i += 1 }
                let unit = UnsafeRawBufferPointer(rebasing: t[start..<i])
                if equalsIgnoringASCIICase(unit, "year") || equalsIgnoringASCIICase(unit, "years") {
                    let (product, overflow) = number.multipliedReportingOverflow(by: 12)
                    guard !overflow else { return false }
                    months += product
                } else if equalsIgnoringASCIICase(unit, "mon") || equalsIgnoringASCIICase(unit, "mons") {
                    months += number
                } else if equalsIgnoringASCIICase(unit, "day") || equalsIgnoringASCIICase(unit, "days") {
                    days += number
                } else {
                    return false
                }
                guard abs(months) <= Int64(UInt32.max), abs(days) <= Int64(UInt32.max) else { return false }
            }
            any = true
        }
        return any
    }

    private func parseISOInterval(_ t: UnsafeRawBufferPointer, months: inout Int64, days: inout Int64, micros: inout Int64) -> Bool {
        var i = 1
        var inTime = false
        var any = false
        while i < t.count {
            if t[i] == UInt8(ascii: "T") {
                guard !inTime else { return false }
                inTime = true
                i += 1
                continue
            }
            var negative = false
            if t[i] == UInt8(ascii: "-") { negative = true; i += 1 } else if t[i] == UInt8(ascii: "+") { i += 1 }
            guard let whole = parseUnsigned(t, &i), whole <= UInt64(Int32.max) * 1_000 else { return false }
            var fraction: Int64 = 0
            if i < t.count && (t[i] == UInt8(ascii: ".") || t[i] == UInt8(ascii: ",")) {
                i += 1
                guard let f = parseFraction(t, &i) else { return false }
                fraction = f
            }
            guard i < t.count else { return false }
            let designator = t[i]
            i += 1
            let number = negative ? -Int64(whole) : Int64(whole)
            let signedFraction = negative ? -fraction : fraction
            switch (inTime, designator) {
            case (false, UInt8(ascii: "Y")): months += number * 12
            case (false, UInt8(ascii: "M")): months += number
            case (false, UInt8(ascii: "W")): days += number * 7
            case (false, UInt8(ascii: "D")): days += number
            case (true, UInt8(ascii: "H")):
                guard accumulate(&micros, number, Calendar.microsecondsPerHour, 0) else { return false }
            case (true, UInt8(ascii: "M")):
                guard accumulate(&micros, number, Calendar.microsecondsPerMinute, 0) else { return false }
            case (true, UInt8(ascii: "S")):
                guard accumulate(&micros, number, Calendar.microsecondsPerSecond, signedFraction) else { return false }
            default: return false
            }
            guard abs(months) <= Int64(UInt32.max), abs(days) <= Int64(UInt32.max) else { return false }
            guard designator == UInt8(ascii: "S") || fraction == 0 else { return false }
            any = true
        }
        return any
    }

    // MARK: Arrays

    /// `array_in`'s syntax: optional `[lb:ub]…=` prefix, nested braces, elements separated
    /// by the element type's delimiter, double-quoted elements with backslash escapes,
    /// unquoted `NULL`.
    func textArray(_ t: UnsafeRawBufferPointer, arrayOID: UInt32, elementOID: UInt32, depth: Int) throws -> Value {
        let delimiter = registry.arrayDelimiter(elementTypeOID: elementOID)
        let n = t.count
        var i = 0
        func fail(_ detail: String) -> ValueDecodingError {
            ValueDecodingError(.invalidSyntax, typeOID: arrayOID, format: .text, detail: "array: " + detail, bytes: t)
        }
        func skipSpace() { while i < n && isArraySpace(t[i]) { i += 1 } }

        skipSpace()
        var explicit: [(lowerBound: Int64, upperBound: Int64)] = []
        while i < n && t[i] == UInt8(ascii: "[") {
            i += 1
            skipSpace()
            guard let first = parseInteger(t, &i) else { throw fail("expected a dimension bound") }
            skipSpace()
            var bounds = (lowerBound: Int64(1), upperBound: first)
            if i < n && t[i] == UInt8(ascii: ":") {
                i += 1
                skipSpace()
                guard let second = parseInteger(t, &i) else { throw fail("expected an upper bound") }
                skipSpace()
                bounds = (first, second)
            }
            guard i < n && t[i] == UInt8(ascii: "]") else { throw fail("expected ]") }
            i += 1
            guard bounds.upperBound >= bounds.lowerBound, Int32(exactly: bounds.lowerBound) != nil,
                  Int32(exactly: bounds.upperBound) != nil, explicit.count < 6 else {
                throw fail("invalid dimensions")
            }
            explicit.append(bounds)
            skipSpace()
        }
        if !explicit.isEmpty {
            guard i < n && t[i] == UInt8(ascii: "=") else { throw fail("expected = after dimensions") }
            i += 1
            skipSpace()
        }
        guard i < n && t[i] == UInt8(ascii: "{") else { throw fail("expected {") }

        // At most one element per delimiter, plus one.
        var elements: [Value] = []
        var delimiters = 0
        for byte in t where byte == delimiter { delimiters += 1 }
        elements.reserveCapacity(delimiters + 1)
        var ndim = 0
        var lengths = SmallCounters(repeating: -1)
        var counts = SmallCounters(repeating: 0)
        var level = 0
        var expectingValue = true
        var justOpened = false
        var scratch: [UInt8] = []
        while true {
            skipSpace()
            guard i < n else { throw fail("unterminated") }
            let c = t[i]
            if c == UInt8(ascii: "{") {
                guard expectingValue, level < 6, ndim == 0 || level < ndim else { throw fail("unexpected {") }
                level += 1
                counts[level] = 0
                i += 1
                justOpened = true
                continue
            }
            if c == UInt8(ascii: "}") {
                guard level > 0 else { throw fail("unexpected }") }
                if justOpened {
                    // Only `{}` — the empty array — may have empty braces.
                    guard level == 1, ndim == 0, elements.isEmpty else { throw fail("empty sub-array") }
                } else {
                    guard !expectingValue else { throw fail("expected an element after the delimiter") }
                    if lengths[level] == -1 {
                        lengths[level] = counts[level]
                    } else if lengths[level] != counts[level] {
                        throw fail("sub-arrays must have matching dimensions")
                    }
                }
                i += 1
                level -= 1
                justOpened = false
                if level == 0 { break }
                counts[level] += 1
                expectingValue = false
                continue
            }
            if c == delimiter && !expectingValue {
                i += 1
                expectingValue = true
                continue
            }
            guard expectingValue else { throw fail("expected a delimiter or }") }
            if ndim == 0 { ndim = level } else if level != ndim { throw fail("elements at different depths") }
            justOpened = false
            expectingValue = false
            counts[level] += 1
            // One element.
            if c == UInt8(ascii: "\"") {
                i += 1
                let start = i
                var escaped = false
                while i < n && t[i] != UInt8(ascii: "\"") {
                    if t[i] == UInt8(ascii: "\\") {
                        escaped = true
                        i += 1
                    }
                    i += 1
                }
                guard i < n else { throw fail("unterminated quoted element") }
                let end = i
                i += 1
                if escaped {
                    unescape(t, start, end, into: &scratch)
                    elements.append(try scratch.withUnsafeBytes { try decodeText(elementOID, $0, depth: depth) })
                } else {
                    elements.append(try decodeText(elementOID, UnsafeRawBufferPointer(rebasing: t[start..<end]), depth: depth))
                }
            } else {
                let start = i
                var end = i
                var escaped = false
                while i < n {
                    let byte = t[i]
                    if byte == UInt8(ascii: "\\") {
                        escaped = true
                        i += 2
                        end = i
                        continue
                    }
                    if byte == delimiter || byte == UInt8(ascii: "}") { break }
                    if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "\"") { throw fail("unexpected character in unquoted element") }
                    i += 1
                    if !isArraySpace(byte) { end = i }
                }
                guard i <= n else { throw fail("unterminated escape") }
                guard end > start else { throw fail("empty element") }
                if !escaped && equalsIgnoringASCIICase(UnsafeRawBufferPointer(rebasing: t[start..<end]), "null") {
                    elements.append(.null)
                } else if escaped {
                    unescape(t, start, Swift.min(end, n), into: &scratch)
                    elements.append(try scratch.withUnsafeBytes { try decodeText(elementOID, $0, depth: depth) })
                } else {
                    elements.append(try decodeText(elementOID, UnsafeRawBufferPointer(rebasing: t[start..<end]), depth: depth))
                }
            }
        }
        skipSpace()
        guard i == n else { throw fail("junk after the closing brace") }
        var dimensions: [Value.ArrayValue.Dimension] = []
        if !elements.isEmpty {
            dimensions.reserveCapacity(ndim)
            for d in 1...ndim { dimensions.append(.init(length: Int32(clamping: lengths[d]))) }
            if !explicit.isEmpty {
                guard explicit.count == ndim else { throw fail("dimensions do not match the contents") }
                for d in 0..<ndim {
                    guard explicit[d].upperBound - explicit[d].lowerBound + 1 == Int64(dimensions[d].length) else {
                        throw fail("dimensions do not match the contents")
                    }
                    dimensions[d].lowerBound = Int32(explicit[d].lowerBound)
                }
            }
        }
        return .array(Value.ArrayValue(elementTypeOID: elementOID, dimensions: dimensions, elements: elements))
    }

    /// Removes backslash escapes from `t[start..<end]`.
    private func unescape(_ t: UnsafeRawBufferPointer, _ start: Int, _ end: Int, into scratch: inout [UInt8]) {
        scratch.removeAll(keepingCapacity: true)
        var i = start
        while i < end {
            if t[i] == UInt8(ascii: "\\") && i + 1 < end { i += 1 }
            scratch.append(t[i])
            i += 1
        }
    }
}

/// Seven counters (array levels 0…6) without a heap allocation.
struct SmallCounters {
    private var storage: (Int, Int, Int, Int, Int, Int, Int)

    init(repeating value: Int) {
        storage = (value, value, value, value, value, value, value)
    }

    subscript(index: Int) -> Int {
        get {
            switch index {
            case 0: storage.0
            case 1: storage.1
            case 2: storage.2
            case 3: storage.3
            case 4: storage.4
            case 5: storage.5
            default: storage.6
            }
        }
        set {
            switch index {
            case 0: storage.0 = newValue
            case 1: storage.1 = newValue
            case 2: storage.2 = newValue
            case 3: storage.3 = newValue
            case 4: storage.4 = newValue
            case 5: storage.5 = newValue
            default: storage.6 = newValue
            }
        }
    }
}

// MARK: - Lexical helpers

/// 10^0 … 10^22, all exact in a Double.
let powersOfTen: [Double] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
                             1e17, 1e18, 1e19, 1e20, 1e21, 1e22]

/// `[-]digits[.digits][e[+-]digits]` with at most 18 significant digits, as an integer
/// significand and a power of ten — for Clinger's fast path: when both are exact in the
/// floating point type, one multiplication or division rounds correctly. Nil otherwise
/// (the caller falls back to the full parser).
func fastDecimal(_ t: UnsafeRawBufferPointer) -> (negative: Bool, significand: UInt64, exponent: Int)? {
    var i = 0
    let n = t.count
    var negative = false
    if i < n && t[i] == UInt8(ascii: "-") {
        negative = true
        i += 1
    }
    var significand: UInt64 = 0
    var significant = 0, exponent = 0, digits = 0
    var sawPoint = false
    while i < n {
        let byte = t[i]
        if isDigit(byte) {
            digits += 1
            if significand == 0 && byte == UInt8(ascii: "0") {
                if sawPoint { exponent -= 1 }
            } else {
                significant += 1
                guard significant <= 18 else { return nil }
                significand = significand * 10 + UInt64(byte - UInt8(ascii: "0"))
                if sawPoint { exponent -= 1 }
            }
        } else if byte == UInt8(ascii: ".") && !sawPoint {
            sawPoint = true
        } else {
            break
        }
        i += 1
    }
    guard digits > 0 else { return nil }
    if i < n && (t[i] == UInt8(ascii: "e") || t[i] == UInt8(ascii: "E")) {
        i += 1
        var exponentNegative = false
        if i < n && (t[i] == UInt8(ascii: "+") || t[i] == UInt8(ascii: "-")) {
            exponentNegative = t[i] == UInt8(ascii: "-")
            i += 1
        }
        guard let value = parseFixedDigitsUpTo(t, &i, max: 4) else { return nil }
        exponent += exponentNegative ? -value : value
    }
    guard i == n else { return nil }
    if significand == 0 { return (negative, 0, 0) }
    return (negative, significand, exponent)
}

/// 1 to `max` digits.
func parseFixedDigitsUpTo(_ t: UnsafeRawBufferPointer, _ i: inout Int, max: Int) -> Int? {
    var value = 0, count = 0
    while i < t.count && isDigit(t[i]) && count < max {
        value = value * 10 + Int(t[i] - UInt8(ascii: "0"))
        count += 1
        i += 1
    }
    return count > 0 && !(i < t.count && isDigit(t[i])) ? value : nil
}

@inline(__always) func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

@inline(__always) func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

@inline(__always) func octalValue(_ byte: UInt8) -> UInt8? {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "7") ? byte - UInt8(ascii: "0") : nil
}

/// Unsigned decimal digits (at least one) at `i`; nil on overflow or no digit.
func parseUnsigned(_ t: UnsafeRawBufferPointer, _ i: inout Int) -> UInt64? {
    var value: UInt64 = 0
    let start = i
    while i < t.count && isDigit(t[i]) {
        let (times10, o1) = value.multipliedReportingOverflow(by: 10)
        let (sum, o2) = times10.addingReportingOverflow(UInt64(t[i] - UInt8(ascii: "0")))
        if o1 || o2 { return nil }
        value = sum
        i += 1
    }
    return i > start ? value : nil
}

/// `[+-]digits` within Int64.
func parseInteger(_ t: UnsafeRawBufferPointer, _ i: inout Int) -> Int64? {
    var negative = false
    if i < t.count && (t[i] == UInt8(ascii: "-") || t[i] == UInt8(ascii: "+")) {
        negative = t[i] == UInt8(ascii: "-")
        i += 1
    }
    guard let magnitude = parseUnsigned(t, &i) else { return nil }
    if negative {
        if magnitude == UInt64(Int64.max) + 1 { return .min }
        return magnitude <= UInt64(Int64.max) ? -Int64(magnitude) : nil
    }
    return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
}

/// Exactly `count` digits.
func parseFixedDigits(_ t: UnsafeRawBufferPointer, _ i: inout Int, count: Int) -> Int? {
    guard i + count <= t.count else { return nil }
    var value = 0
    for k in 0..<count {
        let byte = t[i + k]
        guard isDigit(byte) else { return nil }
        value = value * 10 + Int(byte - UInt8(ascii: "0"))
    }
    i += count
    return value
}

/// Fraction digits after the point, as microseconds (1 to 6 digits; more are refused —
/// PostgreSQL keeps microseconds).
func parseFraction(_ t: UnsafeRawBufferPointer, _ i: inout Int) -> Int64? {
    var value: Int64 = 0
    var digits = 0
    while i < t.count && isDigit(t[i]) {
        guard digits < 6 else { return nil }
        value = value * 10 + Int64(t[i] - UInt8(ascii: "0"))
        digits += 1
        i += 1
    }
    guard digits > 0 else { return nil }
    for _ in digits..<6 { value *= 10 }
    return value
}

/// `YYYY-MM-DD` with a year of 4 or more digits.
func parseYMD(_ t: UnsafeRawBufferPointer, _ i: inout Int) -> (Int, Int, Int)? {
    let start = i
    guard let year = parseUnsigned(t, &i), i - start >= 4, year <= 10_000_000,
          i < t.count, t[i] == UInt8(ascii: "-") else { return nil }
    i += 1
    guard let month = parseFixedDigits(t, &i, count: 2), i < t.count, t[i] == UInt8(ascii: "-") else { return nil }
    i += 1
    guard let day = parseFixedDigits(t, &i, count: 2) else { return nil }
    return (Int(year), month, day)
}

/// `HH:MM:SS[.ffffff]` as microseconds since midnight (up to `24:00:00`).
func parseTime(_ t: UnsafeRawBufferPointer, _ i: inout Int) -> Int64? {
    guard let hour = parseFixedDigits(t, &i, count: 2), i < t.count, t[i] == UInt8(ascii: ":") else { return nil }
    i += 1
    guard let minute = parseFixedDigits(t, &i, count: 2), i < t.count, t[i] == UInt8(ascii: ":") else { return nil }
    i += 1
    guard let second = parseFixedDigits(t, &i, count: 2) else { return nil }
    var fraction: Int64 = 0
    if i < t.count && t[i] == UInt8(ascii: ".") {
        i += 1
        guard let f = parseFraction(t, &i) else { return nil }
        fraction = f
    }
    guard hour <= 24, minute < 60, second <= 60 else { return nil }
    let value = Int64(hour) * Calendar.microsecondsPerHour + Int64(minute) * Calendar.microsecondsPerMinute
        + Int64(second) * Calendar.microsecondsPerSecond + fraction
    return value <= Calendar.microsecondsPerDay ? value : nil
}

/// `+HH`, `+HH:MM`, `+HH:MM:SS` (or without colons) as seconds east of UTC.
func parseZone(_ t: UnsafeRawBufferPointer, _ i: inout Int) -> Int32? {
    guard i < t.count, t[i] == UInt8(ascii: "+") || t[i] == UInt8(ascii: "-") else { return nil }
    let negative = t[i] == UInt8(ascii: "-")
    i += 1
    guard let hours = parseFixedDigits(t, &i, count: 2), hours <= 15 else { return nil }
    var minutes = 0, seconds = 0
    if i < t.count && (t[i] == UInt8(ascii: ":") || isDigit(t[i])) {
        if t[i] == UInt8(ascii: ":") { i += 1 }
        guard let m = parseFixedDigits(t, &i, count: 2), m < 60 else { return nil }
        minutes = m
        if i < t.count && (t[i] == UInt8(ascii: ":") || isDigit(t[i])) {
            if t[i] == UInt8(ascii: ":") { i += 1 }
            guard let s = parseFixedDigits(t, &i, count: 2), s < 60 else { return nil }
            seconds = s
        }
    }
    let total = Int32(hours * 3600 + minutes * 60 + seconds)
    return negative ? -total : total
}

/// ` BC` suffix.
func parseBC(_ t: UnsafeRawBufferPointer, _ i: inout Int) -> Bool {
    guard i + 3 <= t.count, t[i] == UInt8(ascii: " "),
          equalsIgnoringASCIICase(UnsafeRawBufferPointer(rebasing: t[(i + 1)..<(i + 3)]), "bc") else { return false }
    i += 3
    return true
}

/// `total += value * unit + extra`, false on overflow.
func accumulate(_ total: inout Int64, _ value: Int64, _ unit: Int64, _ extra: Int64) -> Bool {
    let (product, o1) = value.multipliedReportingOverflow(by: unit)
    let (withExtra, o2) = product.addingReportingOverflow(extra)
    let (sum, o3) = total.addingReportingOverflow(withExtra)
    guard !o1, !o2, !o3 else { return false }
    total = sum
    return true
}

extension Int64 {
    var truncatedInt16: Int16 { Int16(truncatingIfNeeded: self) }
}
