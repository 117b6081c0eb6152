/// How ``Value``s are written as JSON, in the style of Debezium's PostgreSQL connector with
/// `decimal.handling.mode=string`, ISO-8601 times and base64 binary, so existing consumers
/// work:
///
/// | PostgreSQL type (case) | JSON | example |
/// |---|---|---|
/// | NULL (``Value/null``) | `null` | `null` |
/// | unchanged TOAST (``Value/unchangedToast``) | the placeholder string, by default Debezium's | `"__debezium_unavailable_value"` |
/// | `bool` | boolean | `true` |
/// | `int2`, `int4`, `int8`, `oid` | number | `-42` |
/// | `float4`, `float8` | number, shortest exact form; NaN and ±Infinity as strings | `1.5e+300`, `"NaN"`, `"-Infinity"` |
/// | `numeric` | string, exact, scale kept | `"12345678901234567890.50"`, `"NaN"` |
/// | `text`, `varchar`, `char`, `name`, `xml`, enums, `citext` | string | `"hello"` |
/// | `bytea` | string, base64 | `"AAH/"` |
/// | `date` | string, ISO-8601 (year 0 = 1 BC, signed beyond 9999) | `"2024-02-29"`, `"-0043-03-15"`, `"infinity"` |
/// | `time` | string, ISO-8601 | `"13:45:00.5"` |
/// | `timetz` | string, ISO-8601 with offset | `"13:45:00+05:30"` |
/// | `timestamp` | string, ISO-8601 without zone | `"2024-02-29T13:45:00.123456"`, `"-infinity"` |
/// | `timestamptz` | string, ISO-8601 in UTC | `"2024-02-29T13:45:00.123456Z"` |
/// | `interval` | string, ISO-8601 duration | `"P1Y2M3DT4H5M6.5S"`, `"PT0S"` |
/// | `uuid` | string | `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"` |
/// | `json`, `jsonb` | the document itself, nested (with `jsonAsString`, a string holding it, as Debezium writes it) | `{"a": [1, 2]}` |
/// | arrays | array; several dimensions nest; NULL elements `null`; lower bounds are dropped | `[[1,2],[3,null]]` |
/// | `inet`, `cidr`, `macaddr`, `macaddr8` | string, PostgreSQL's text | `"192.168.0.0/24"` |
/// | `money` | string, exact decimal with 2 fraction digits | `"-1234.56"` |
/// | `bit`, `varbit` | string of 0 and 1 | `"0101"` |
/// | `tsvector` | string, PostgreSQL's text | `"'a':1 'cat':2"` |
/// | ranges, composites, `hstore`, geometric, other types (``Value/unknown(typeOID:text:)``) | string, PostgreSQL's text | `"[1,10)"` |
/// | binary-only unknown types (``Value/unknownBinary(typeOID:bytes:)``) | string, base64 of the send format | `"AAAAAQ=="` |
public struct ValueJSONOptions: Sendable, Hashable {
    /// Written for ``Value/unchangedToast``: a string no real value is expected to equal.
    /// With `nil` it is written as `null`: only for consumers that can tell it apart some
    /// other way, or never get it.
    public var unchangedToastPlaceholder: String?

    /// Debezium's placeholder for an unavailable (unchanged TOAST) value.
    public static let debeziumUnavailableValue = "__debezium_unavailable_value"

    /// `json`/`jsonb` as a string holding the document (Debezium's `io.debezium.data.Json`)
    /// rather than nested.
    public var jsonAsString: Bool

    public init(unchangedToastPlaceholder: String? = ValueJSONOptions.debeziumUnavailableValue, jsonAsString: Bool = false) {
        self.unchangedToastPlaceholder = unchangedToastPlaceholder
        self.jsonAsString = jsonAsString
    }
}

extension JSONWriter {
    /// Writes `value` as the table on ``ValueJSONOptions`` describes.
    public mutating func value(_ value: Value, options: ValueJSONOptions = ValueJSONOptions()) {
        switch value {
        case .null: null()
        case .unchangedToast:
            if let placeholder = options.unchangedToastPlaceholder { string(placeholder) } else { null() }
        case .bool(let v): bool(v)
        case .int16(let v): integer(Int64(v))
        case .int32(let v): integer(Int64(v))
        case .int64(let v): integer(v)
        case .float32(let v): number(v)
        case .float64(let v): number(v)
        case .numeric(let v), .text(let v), .inet(let v), .cidr(let v), .macaddr(let v), .macaddr8(let v),
             .bitString(let v), .tsvector(let v), .unknown(_, let v):
            string(v)
        case .json(let v), .jsonb(let v):
            if options.jsonAsString { string(v) } else if v.isEmpty { null() } else { raw(v) }
        case .bytes(let v): base64(v)
        case .unknownBinary(_, let v): base64(v)
        // Texts that never need escaping go straight into the output, quoted.
        case .uuid(let v):
            quotedASCII { v.append(to: &$0) }
        case .money(let v):
            quotedASCII { text in
                if v < 0 { text.append(UInt8(ascii: "-")) }
                text.appendDecimal(v.magnitude / 100)
                text.append(UInt8(ascii: "."))
                text.appendPadded(Int64(v.magnitude % 100), width: 2)
            }
        case .date(let v):
            quotedASCII { ISOText.appendDate(v, to: &$0) }
        case .time(let v):
            quotedASCII { DateTimeText.appendTime(v.microseconds, to: &$0) }
        case .timetz(let v):
            quotedASCII { text in
                DateTimeText.appendTime(v.microseconds, to: &text)
                DateTimeText.appendZone(offsetSeconds: Int(v.utcOffsetSeconds), alwaysMinutes: true, to: &text)
            }
        case .timestamp(let v):
            quotedASCII { ISOText.appendTimestamp(v, utc: false, to: &$0) }
        case .timestamptz(let v):
            quotedASCII { ISOText.appendTimestamp(v, utc: true, to: &$0) }
        case .interval(let v):
            quotedASCII { DateTimeText.appendISOInterval(v, to: &$0) }
        case .array(let array):
            arrayValue(array, options: options)
        }
    }

    /// A string whose text `body` appends and which needs no escaping (digits, letters, `-:.+`).
    private mutating func quotedASCII(_ body: (inout [UInt8]) -> Void) {
        rawValue { bytes in
            bytes.append(UInt8(ascii: "\""))
            body(&bytes)
            bytes.append(UInt8(ascii: "\""))
        }
    }

    private mutating func arrayValue(_ array: Value.ArrayValue, options: ValueJSONOptions) {
        guard !array.dimensions.isEmpty, array.hasConsistentShape, !array.elements.isEmpty else {
            beginArray()
            if !array.hasConsistentShape { for element in array.elements { value(element, options: options) } }
            endArray()
            return
        }
        var index = 0
        func level(_ dimension: Int) {
            beginArray()
            for _ in 0..<array.dimensions[dimension].length {
                if dimension == array.dimensions.count - 1 {
                    value(array.elements[index], options: options)
                    index += 1
                } else {
                    level(dimension + 1)
                }
            }
            endArray()
        }
        level(0)
    }
}

extension Value {
    /// This value as JSON (see ``ValueJSONOptions`` for the mapping).
    public func json(options: ValueJSONOptions = ValueJSONOptions()) -> String {
        var writer = JSONWriter(reservingCapacity: 32)
        writer.value(self, options: options)
        return writer.string
    }
}

/// ISO-8601 renderings for JSON.
enum ISOText {
    /// `YYYY-MM-DD`; astronomical years (`0000` = 1 BC, `-0043` = 44 BC), `+YYYYY` past 9999.
    static func appendYMD(year: Int, month: Int, day: Int, to out: inout [UInt8]) {
        if year < 0 {
            out.append(UInt8(ascii: "-"))
        } else if year > 9999 {
            out.append(UInt8(ascii: "+"))
        }
        out.appendPadded(Int64(year.magnitude), width: 4)
        out.append(UInt8(ascii: "-"))
        out.appendPadded(Int64(month), width: 2)
        out.append(UInt8(ascii: "-"))
        out.appendPadded(Int64(day), width: 2)
    }

    static func appendDate(_ date: Value.Date, to out: inout [UInt8]) {
        switch date {
        case .infinity: out.append("infinity")
        case .negativeInfinity: out.append("-infinity")
        case .days(let days):
            let (year, month, day) = Calendar.civil(fromPostgresDays: Int64(days))
            appendYMD(year: year, month: month, day: day, to: &out)
        }
    }

    static func appendTimestamp(_ timestamp: Value.Timestamp, utc: Bool, to out: inout [UInt8]) {
        switch timestamp {
        case .infinity: out.append("infinity")
        case .negativeInfinity: out.append("-infinity")
        case .microseconds(let value):
            let (days, time) = Calendar.split(timestamp: value)
            let (year, month, day) = Calendar.civil(fromPostgresDays: days)
            appendYMD(year: year, month: month, day: day, to: &out)
            out.append(UInt8(ascii: "T"))
            DateTimeText.appendTime(time, to: &out)
            if utc { out.append(UInt8(ascii: "Z")) }
        }
    }
}
