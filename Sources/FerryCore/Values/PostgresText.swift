extension Value {
    /// The value exactly as PostgreSQL's output function prints it, under the session
    /// settings Ferry uses on its connections: `DateStyle=ISO`, `TimeZone=UTC`,
    /// `IntervalStyle=postgres`, `extra_float_digits` ≥ 1 (the default), `bytea_output=hex`
    /// (the default), `lc_monetary=C` (for `money`). Nil for ``null``, ``unchangedToast`` and
    /// ``unknownBinary(typeOID:bytes:)``.
    ///
    /// Round trip: for any value the server prints as `s` (with those settings),
    /// `ValueDecoder().decode(…, format: .text, bytes: s).postgresText == s`, and the binary
    /// form decodes to the same `Value`.
    public var postgresText: String? {
        switch self {
        case .null, .unchangedToast, .unknownBinary: return nil
        case .text(let string), .numeric(let string), .json(let string), .jsonb(let string),
             .inet(let string), .cidr(let string), .macaddr(let string), .macaddr8(let string),
             .bitString(let string), .tsvector(let string), .unknown(_, let string):
            return string
        case .bool(let value): return value ? "t" : "f"
        case .int16(let value): return String(value)
        case .int32(let value): return String(value)
        case .int64(let value): return String(value)
        default:
            var out = [UInt8]()
            guard appendPostgresText(to: &out) else { return nil }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Appends ``postgresText`` as UTF-8; false (nothing appended) when there is none.
    @discardableResult
    public func appendPostgresText(to out: inout [UInt8]) -> Bool {
        switch self {
        case .null, .unchangedToast, .unknownBinary: return false
        case .text(let string), .numeric(let string), .json(let string), .jsonb(let string),
             .inet(let string), .cidr(let string), .macaddr(let string), .macaddr8(let string),
             .bitString(let string), .tsvector(let string), .unknown(_, let string):
            // From the string's storage in place: appending the UTF8View itself copies the
            // string (a retain and release per value, the hot path of every COPY).
            if string.utf8.withContiguousStorageIfAvailable({ out.append(contentsOf: $0) }) == nil {
                out.append(contentsOf: string.utf8)
            }
        case .bool(let value): out.append(value ? UInt8(ascii: "t") : UInt8(ascii: "f"))
        case .int16(let value): out.appendDecimal(Int64(value))
        case .int32(let value): out.appendDecimal(Int64(value))
        case .int64(let value): out.appendDecimal(value)
        case .float32(let value): FloatText.append(value, to: &out)
        case .float64(let value): FloatText.append(value, to: &out)
        case .bytes(let bytes):
            out.append("\\x")
            for byte in bytes {
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            }
        case .date(let date): DateTimeText.appendDate(date, to: &out)
        case .time(let time): DateTimeText.appendTime(time.microseconds, to: &out)
        case .timetz(let time):
            DateTimeText.appendTime(time.microseconds, to: &out)
            DateTimeText.appendZone(offsetSeconds: Int(time.utcOffsetSeconds), to: &out)
        case .timestamp(let timestamp): DateTimeText.appendTimestamp(timestamp, withZone: false, to: &out)
        case .timestamptz(let timestamp): DateTimeText.appendTimestamp(timestamp, withZone: true, to: &out)
        case .interval(let interval): DateTimeText.appendInterval(interval, to: &out)
        case .uuid(let uuid): uuid.append(to: &out)
        case .money(let cents): appendMoney(cents, to: &out)
        case .array(let array):
            let start = out.count
            guard ArrayText.append(array, to: &out) else {
                out.removeSubrange(start...)
                return false
            }
        }
        return true
    }
}

/// `cash_out` under `lc_monetary=C`: `$1,234.56`, `-$0.05`.
func appendMoney(_ value: Int64, to out: inout [UInt8]) {
    if value < 0 { out.append(UInt8(ascii: "-")) }
    out.append(UInt8(ascii: "$"))
    var digits = [UInt8]()
    digits.appendPadded(Int64(clamping: value.magnitude / 100), width: 1)
    // value.magnitude / 100 fits in Int64 (≤ 92233720368547758).
    for (index, digit) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { out.append(UInt8(ascii: ",")) }
        out.append(digit)
    }
    out.append(UInt8(ascii: "."))
    out.appendPadded(Int64(value.magnitude % 100), width: 2)
}

/// `array_out`: `{1,2}`, `{{"a b",NULL},{"c\"d",""}}`, `[0:1]={7,8}`.
enum ArrayText {
    static func append(_ array: Value.ArrayValue, to out: inout [UInt8]) -> Bool {
        let dimensions = array.dimensions
        if dimensions.isEmpty || array.elements.isEmpty {
            out.append("{}")
            return true
        }
        guard array.hasConsistentShape, dimensions.count <= 6 else { return false }
        if dimensions.contains(where: { $0.lowerBound != 1 }) {
            for dimension in dimensions {
                out.append(UInt8(ascii: "["))
                out.appendDecimal(Int64(dimension.lowerBound))
                out.append(UInt8(ascii: ":"))
                out.appendDecimal(Int64(dimension.lowerBound) + Int64(dimension.length) - 1)
                out.append(UInt8(ascii: "]"))
            }
            out.append(UInt8(ascii: "="))
        }
        let delimiter = array.elementTypeOID == TypeOID.box ? UInt8(ascii: ";") : UInt8(ascii: ",")
        var element = [UInt8]()
        var index = 0
        // Counters per dimension (at most 6 in PostgreSQL), odometer style.
        var counters = SmallCounters(repeating: 0)
        for _ in dimensions { out.append(UInt8(ascii: "{")) }
        while true {
            let value = array.elements[index]
            switch value {
            case .null:
                out.append("NULL")
            case .bool, .int16, .int32, .int64, .float32, .float64, .numeric, .uuid:
                // Never quoted: no spaces, braces, quotes, commas or semicolons.
                value.appendPostgresText(to: &out)
            default:
                element.removeAll(keepingCapacity: true)
                guard value.appendPostgresText(to: &element) else { return false }
                appendQuotedIfNeeded(element, delimiter: delimiter, to: &out)
            }
            index += 1
            // Advance the odometer, closing and reopening braces as dimensions roll over.
            var level = dimensions.count - 1
            var closed = 0
            while level >= 0 {
                counters[level] += 1
                if counters[level] < Int(dimensions[level].length) { break }
                counters[level] = 0
                out.append(UInt8(ascii: "}"))
                closed += 1
                level -= 1
            }
            if level < 0 || index >= array.elements.count { break }
            out.append(delimiter)
            for _ in 0..<closed { out.append(UInt8(ascii: "{")) }
        }
        return true
    }

    /// `array_out`'s quoting: quote empty strings, `NULL` in any case, and anything with
    /// `"`, `\`, `{`, `}`, the delimiter or whitespace; backslash-escape `"` and `\`.
    static func appendQuotedIfNeeded(_ text: [UInt8], delimiter: UInt8, to out: inout [UInt8]) {
        var needsQuotes = text.isEmpty
        if !needsQuotes {
            for byte in text {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "{")
                    || byte == UInt8(ascii: "}") || byte == delimiter || isArraySpace(byte) {
                    needsQuotes = true
                    break
                }
            }
        }
        if !needsQuotes, text.count == 4, equalsIgnoringASCIICase(text[...], "null") { needsQuotes = true }
        guard needsQuotes else {
            out.append(contentsOf: text)
            return
        }
        out.append(UInt8(ascii: "\""))
        for byte in text {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
            out.append(byte)
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// `array_isspace`, and C's `isspace` in the C locale.
@inline(__always)
func isArraySpace(_ byte: UInt8) -> Bool {
    byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
}

func equalsIgnoringASCIICase(_ bytes: some Collection<UInt8>, _ word: StaticString) -> Bool {
    guard bytes.count == word.utf8CodeUnitCount else { return false }
    return word.withUTF8Buffer { expected in
        var index = 0
        for byte in bytes {
            let lower = (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
            if lower != expected[index] { return false }
            index += 1
        }
        return true
    }
}

/// `record_out` and `range_out` quoting: quote empty strings and anything with `"`, `\`,
/// the structure's own punctuation or whitespace; double `"` and `\` inside quotes.
func appendCompositeQuoted(_ text: [UInt8], special: (UInt8) -> Bool, to out: inout [UInt8]) {
    var needsQuotes = text.isEmpty
    if !needsQuotes {
        for byte in text where byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || special(byte) || isArraySpace(byte) {
            needsQuotes = true
            break
        }
    }
    if needsQuotes { out.append(UInt8(ascii: "\"")) }
    for byte in text {
        if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(byte) }
        out.append(byte)
    }
    if needsQuotes { out.append(UInt8(ascii: "\"")) }
}

/// `EncodeDateOnly`, `EncodeTimeOnly`, `EncodeDateTime`, `EncodeInterval` with
/// `DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=postgres`.
enum DateTimeText {
    static func appendDate(_ date: Value.Date, to out: inout [UInt8]) {
        switch date {
        case .infinity: out.append("infinity")
        case .negativeInfinity: out.append("-infinity")
        case .days(let days):
            let (year, month, day) = Calendar.civil(fromPostgresDays: Int64(days))
            appendYMD(year: year, month: month, day: day, to: &out)
            if year <= 0 { out.append(" BC") }
        }
    }

    static func appendYMD(year: Int, month: Int, day: Int, to out: inout [UInt8]) {
        out.appendPadded(Int64(year > 0 ? year : -(year - 1)), width: 4)
        out.append(UInt8(ascii: "-"))
        out.appendPadded(Int64(month), width: 2)
        out.append(UInt8(ascii: "-"))
        out.appendPadded(Int64(day), width: 2)
    }

    /// `HH:MM:SS[.ffffff]` with trailing zeros of the fraction dropped.
    static func appendTime(_ microseconds: Int64, to out: inout [UInt8]) {
        let time = microseconds.magnitude
        let hours = time / UInt64(Calendar.microsecondsPerHour)
        let minutes = time / UInt64(Calendar.microsecondsPerMinute) % 60
        let seconds = time / UInt64(Calendar.microsecondsPerSecond) % 60
        let fraction = time % UInt64(Calendar.microsecondsPerSecond)
        if microseconds < 0 { out.append(UInt8(ascii: "-")) }
        out.appendPadded(Int64(hours), width: 2)
        out.append(UInt8(ascii: ":"))
        out.appendPadded(Int64(minutes), width: 2)
        out.append(UInt8(ascii: ":"))
        out.appendPadded(Int64(seconds), width: 2)
        appendFraction(fraction, to: &out)
    }

    /// `.ffffff` without trailing zeros; nothing for 0.
    static func appendFraction(_ microseconds: UInt64, to out: inout [UInt8]) {
        guard microseconds != 0 else { return }
        var digits = 6
        var value = microseconds
        while value % 10 == 0 {
            value /= 10
            digits -= 1
        }
        out.append(UInt8(ascii: "."))
        out.appendPadded(Int64(value), width: digits)
    }

    /// `EncodeTimezone`: `+HH`, `+HH:MM` or `+HH:MM:SS`, for an offset east of UTC.
    static func appendZone(offsetSeconds: Int, separator: Bool = true, alwaysMinutes: Bool = false, to out: inout [UInt8]) {
        let magnitude = offsetSeconds.magnitude
        let hours = magnitude / 3600, minutes = magnitude / 60 % 60, seconds = magnitude % 60
        out.append(offsetSeconds >= 0 ? UInt8(ascii: "+") : UInt8(ascii: "-"))
        out.appendPadded(Int64(hours), width: 2)
        if minutes != 0 || seconds != 0 || alwaysMinutes {
            if separator { out.append(UInt8(ascii: ":")) }
            out.appendPadded(Int64(minutes), width: 2)
        }
        if seconds != 0 {
            if separator { out.append(UInt8(ascii: ":")) }
            out.appendPadded(Int64(seconds), width: 2)
        }
    }

    static func appendTimestamp(_ timestamp: Value.Timestamp, withZone: Bool, to out: inout [UInt8]) {
        switch timestamp {
        case .infinity: out.append("infinity")
        case .negativeInfinity: out.append("-infinity")
        case .microseconds(let value):
            let (days, time) = Calendar.split(timestamp: value)
            let (year, month, day) = Calendar.civil(fromPostgresDays: days)
            appendYMD(year: year, month: month, day: day, to: &out)
            out.append(UInt8(ascii: " "))
            appendTime(time, to: &out)
            if withZone { out.append("+00") }
            if year <= 0 { out.append(" BC") }
        }
    }

    /// The fields `interval2itm` splits an interval into (all with the sign of their source).
    struct IntervalFields {
        var years: Int64, months: Int64, days: Int64
        var hours: Int64, minutes: Int64, seconds: Int64, microseconds: Int64

        init(_ interval: Value.Interval) {
            years = Int64(interval.months) / 12
            months = Int64(interval.months) % 12
            days = Int64(interval.days)
            var time = interval.microseconds
            hours = time / Calendar.microsecondsPerHour
            time -= hours * Calendar.microsecondsPerHour
            minutes = time / Calendar.microsecondsPerMinute
            time -= minutes * Calendar.microsecondsPerMinute
            seconds = time / Calendar.microsecondsPerSecond
            microseconds = time - seconds * Calendar.microsecondsPerSecond
        }
    }

    /// `IntervalStyle=postgres`: `1 year 2 mons -3 days +04:05:06.5`.
    static func appendInterval(_ interval: Value.Interval, to out: inout [UInt8]) {
        if interval == .infinity { out.append("infinity"); return }
        if interval == .negativeInfinity { out.append("-infinity"); return }
        let fields = IntervalFields(interval)
        var isZero = true, isBefore = false
        func part(_ value: Int64, _ unit: StaticString) {
            guard value != 0 else { return }
            if !isZero { out.append(UInt8(ascii: " ")) }
            if isBefore && value > 0 { out.append(UInt8(ascii: "+")) }
            out.appendDecimal(value)
            out.append(UInt8(ascii: " "))
            out.append(unit)
            if value != 1 { out.append(UInt8(ascii: "s")) }
            isBefore = value < 0
            isZero = false
        }
        part(fields.years, "year")
        part(fields.months, "mon")
        part(fields.days, "day")
        if isZero || fields.hours != 0 || fields.minutes != 0 || fields.seconds != 0 || fields.microseconds != 0 {
            let minus = fields.hours < 0 || fields.minutes < 0 || fields.seconds < 0 || fields.microseconds < 0
            if !isZero { out.append(UInt8(ascii: " ")) }
            if minus { out.append(UInt8(ascii: "-")) } else if isBefore { out.append(UInt8(ascii: "+")) }
            out.appendPadded(Int64(fields.hours.magnitude), width: 2)
            out.append(UInt8(ascii: ":"))
            out.appendPadded(Int64(fields.minutes.magnitude), width: 2)
            out.append(UInt8(ascii: ":"))
            out.appendPadded(Int64(fields.seconds.magnitude), width: 2)
            appendFraction(fields.microseconds.magnitude, to: &out)
        }
    }

    /// ISO 8601 duration, as `IntervalStyle=iso_8601` prints it: `P1Y2M-3DT4H5M6.5S`, `PT0S`.
    static func appendISOInterval(_ interval: Value.Interval, to out: inout [UInt8]) {
        if interval == .infinity { out.append("infinity"); return }
        if interval == .negativeInfinity { out.append("-infinity"); return }
        let fields = IntervalFields(interval)
        if fields.years == 0 && fields.months == 0 && fields.days == 0 && fields.hours == 0
            && fields.minutes == 0 && fields.seconds == 0 && fields.microseconds == 0 {
            out.append("PT0S")
            return
        }
        func part(_ value: Int64, _ unit: UInt8) {
            guard value != 0 else { return }
            out.appendDecimal(value)
            out.append(unit)
        }
        out.append(UInt8(ascii: "P"))
        part(fields.years, UInt8(ascii: "Y"))
        part(fields.months, UInt8(ascii: "M"))
        part(fields.days, UInt8(ascii: "D"))
        if fields.hours != 0 || fields.minutes != 0 || fields.seconds != 0 || fields.microseconds != 0 {
            out.append(UInt8(ascii: "T"))
        }
        part(fields.hours, UInt8(ascii: "H"))
        part(fields.minutes, UInt8(ascii: "M"))
        if fields.seconds != 0 || fields.microseconds != 0 {
            if fields.seconds < 0 || fields.microseconds < 0 { out.append(UInt8(ascii: "-")) }
            out.appendDecimal(fields.seconds.magnitude)
            appendFraction(fields.microseconds.magnitude, to: &out)
            out.append(UInt8(ascii: "S"))
        }
    }
}
