/// The typed form of one column value, decoded from PostgreSQL's text or binary format by
/// ``ValueDecoder`` according to the column's type OID.
///
/// Every case keeps the full information of the value as PostgreSQL has it: exact decimal
/// text for `numeric`, microsecond precision and ±infinity for dates and times, NaN and
/// ±Infinity for floats, all bytes of `bytea`, and — never to be confused with NULL —
/// ``unchangedToast``, the pgoutput marker for "not sent, keep what you have".
///
/// Which case a type decodes to (``ValueDecoder`` applies the ``TypeRegistry`` first, so a
/// domain decodes as its base type):
///
/// | PostgreSQL type | case |
/// |---|---|
/// | `bool` | ``bool(_:)`` |
/// | `int2`, `int4`, `int8` | ``int16(_:)``, ``int32(_:)``, ``int64(_:)`` |
/// | `oid`, `xid`, `cid` (unsigned 32-bit) | ``int64(_:)`` |
/// | `float4`, `float8` | ``float32(_:)``, ``float64(_:)`` |
/// | `numeric` | ``numeric(_:)`` (exact text, `NaN`, `Infinity`, `-Infinity`) |
/// | `text`, `varchar`, `bpchar`, `name`, `"char"`, `xml`, `citext` and other string-category types, enums | ``text(_:)`` |
/// | `bytea` | ``bytes(_:)`` |
/// | `date` | ``date(_:)`` |
/// | `time`, `timetz` | ``time(_:)``, ``timetz(_:)`` |
/// | `timestamp`, `timestamptz` | ``timestamp(_:)``, ``timestamptz(_:)`` |
/// | `interval` | ``interval(_:)`` |
/// | `uuid` | ``uuid(_:)`` |
/// | `json`, `jsonb` | ``json(_:)``, ``jsonb(_:)`` |
/// | any array (`int4[]`, `text[][]`, arrays of enums or domains) | ``array(_:)`` |
/// | `inet`, `cidr`, `macaddr`, `macaddr8` | ``inet(_:)``, ``cidr(_:)``, ``macaddr(_:)``, ``macaddr8(_:)`` |
/// | `money` | ``money(_:)`` |
/// | `bit`, `varbit` | ``bitString(_:)`` |
/// | `tsvector` | ``tsvector(_:)`` |
/// | ranges, multiranges, composites, `hstore`, geometric types, `pg_lsn`, `tid`, `xid8`, `tsquery`, `reg*`, extension types | ``unknown(typeOID:text:)`` (binary forms Ferry can render as text too), else ``unknownBinary(typeOID:bytes:)`` |
///
/// Equality is value identity: two NaNs of the same width are equal (as in PostgreSQL's
/// own sort order), `-0.0` and `0.0` are not (PostgreSQL prints them differently).
public enum Value: Sendable {
    /// SQL NULL.
    case null
    /// pgoutput's `u`: an unchanged TOAST value that was **not sent**. It is not NULL — the
    /// destination must keep the value it already has.
    case unchangedToast
    case bool(Bool)
    case int16(Int16)
    case int32(Int32)
    case int64(Int64)
    /// `float4`; NaN and ±infinity are kept.
    case float32(Float)
    /// `float8`; NaN and ±infinity are kept.
    case float64(Double)
    /// `numeric`, as PostgreSQL prints it: `-123.4500` (scale kept), `NaN`, `Infinity`,
    /// `-Infinity`. Never passes through a binary floating point type.
    case numeric(String)
    /// String types (`text`, `varchar`, `bpchar` with its padding, `name`, `"char"`, `xml`,
    /// string-category extension types such as `citext`) and enum labels.
    case text(String)
    /// `bytea`.
    case bytes([UInt8])
    case date(Date)
    case time(Time)
    case timetz(TimeTZ)
    /// `timestamp without time zone`.
    case timestamp(Timestamp)
    /// `timestamp with time zone`, as an instant (microseconds since 2000-01-01 00:00:00 UTC).
    case timestamptz(Timestamp)
    case interval(Interval)
    case uuid(UUID)
    /// `json`: the document exactly as stored (whitespace and key order kept).
    case json(String)
    /// `jsonb`: the document in PostgreSQL's normalized text form.
    case jsonb(String)
    /// An array of any element type, any number of dimensions, NULL elements allowed.
    indirect case array(ArrayValue)
    /// `inet` in PostgreSQL's canonical text (`192.168.0.1/24`, `::1`).
    case inet(String)
    /// `cidr` in PostgreSQL's canonical text (always with `/bits`).
    case cidr(String)
    /// `macaddr`, canonical text `08:00:2b:01:02:03`.
    case macaddr(String)
    /// `macaddr8`, canonical text `08:00:2b:01:02:03:04:05`.
    case macaddr8(String)
    /// `money`, in the smallest unit of the server's `lc_monetary` (cents for 2 fraction
    /// digits): `$1,234.56` is `123456`.
    case money(Int64)
    /// `bit(n)` and `varbit`, as a string of `0` and `1`.
    case bitString(String)
    /// `tsvector`, in PostgreSQL's canonical text (`'a':1A 'cat':2`).
    case tsvector(String)
    /// A type Ferry has no typed form for, as PostgreSQL's text output: ranges, multiranges,
    /// composites, `hstore`, geometric types, extension types… ``typeOID`` is the column's type
    /// (the range, the composite), so a destination can tell what it is.
    case unknown(typeOID: UInt32, text: String)
    /// A value of such a type that arrived in a binary format Ferry cannot render as text
    /// (e.g. an extension type under pgoutput's `binary 'true'`). The bytes are the type's
    /// `send` output, unchanged.
    case unknownBinary(typeOID: UInt32, bytes: [UInt8])

    /// True for ``null`` only (``unchangedToast`` is not NULL).
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

// MARK: - Date and time

extension Value {
    /// A `date`: days since 2000-01-01 (PostgreSQL's epoch), or ±infinity.
    ///
    /// Dates are in the proleptic Gregorian calendar; year 0 is 1 BC (PostgreSQL prints
    /// `0001-01-01 BC`).
    public enum Date: Sendable, Hashable, Comparable {
        case negativeInfinity
        /// Days since 2000-01-01.
        case days(Int32)
        case infinity

        /// From PostgreSQL's binary representation (`Int32.min`/`Int32.max` are ∓infinity).
        public init(postgresDays value: Int32) {
            switch value {
            case .max: self = .infinity
            case .min: self = .negativeInfinity
            default: self = .days(value)
            }
        }

        /// PostgreSQL's binary representation.
        public var postgresDays: Int32 {
            switch self {
            case .negativeInfinity: .min
            case .days(let days): days
            case .infinity: .max
            }
        }

        /// The finite date for a calendar day (year 0 = 1 BC, -1 = 2 BC…), nil if out of
        /// PostgreSQL's range (4714-11-24 BC to 5874897-12-31).
        public init?(year: Int, month: Int, day: Int) {
            guard (1...12).contains(month), (1...Calendar.daysInMonth(year: year, month: month)).contains(day),
                  let days = Calendar.postgresDays(year: year, month: month, day: day),
                  Calendar.dateRange.contains(days) else { return nil }
            self = .days(Int32(days))
        }

        /// Year (0 = 1 BC), month and day; nil for ±infinity.
        public var components: (year: Int, month: Int, day: Int)? {
            guard case .days(let days) = self else { return nil }
            return Calendar.civil(fromPostgresDays: Int64(days))
        }
    }

    /// A `time` (without time zone): microseconds since midnight, `0...86_400_000_000`
    /// (PostgreSQL accepts `24:00:00`).
    public struct Time: Sendable, Hashable, Comparable {
        public var microseconds: Int64

        public init(microseconds: Int64) { self.microseconds = microseconds }

        public init?(hour: Int, minute: Int, second: Int, microsecond: Int = 0) {
            guard (0...24).contains(hour), (0...59).contains(minute), (0...60).contains(second),
                  (0..<1_000_000).contains(microsecond) else { return nil }
            let total = ((Int64(hour) * 60 + Int64(minute)) * 60 + Int64(second)) * 1_000_000 + Int64(microsecond)
            guard total <= Calendar.microsecondsPerDay else { return nil }
            self.microseconds = total
        }

        public static func < (lhs: Time, rhs: Time) -> Bool { lhs.microseconds < rhs.microseconds }
    }

    /// A `timetz`: local time of day and its UTC offset.
    public struct TimeTZ: Sendable, Hashable {
        /// Microseconds since midnight, local time.
        public var microseconds: Int64
        /// Seconds **east** of UTC (`+05:30` is 19800). PostgreSQL's binary form stores the
        /// negation (seconds west).
        public var utcOffsetSeconds: Int32

        public init(microseconds: Int64, utcOffsetSeconds: Int32) {
            self.microseconds = microseconds
            self.utcOffsetSeconds = utcOffsetSeconds
        }
    }

    /// A `timestamp` or `timestamptz`: microseconds since 2000-01-01 00:00:00 (UTC for
    /// `timestamptz`), or ±infinity.
    public enum Timestamp: Sendable, Hashable, Comparable {
        case negativeInfinity
        /// Microseconds since 2000-01-01 00:00:00.
        case microseconds(Int64)
        case infinity

        /// From PostgreSQL's binary representation (`Int64.min`/`Int64.max` are ∓infinity).
        public init(postgresMicroseconds value: Int64) {
            switch value {
            case .max: self = .infinity
            case .min: self = .negativeInfinity
            default: self = .microseconds(value)
            }
        }

        /// PostgreSQL's binary representation.
        public var postgresMicroseconds: Int64 {
            switch self {
            case .negativeInfinity: .min
            case .microseconds(let value): value
            case .infinity: .max
            }
        }

        /// Microseconds since 1970-01-01 00:00:00; nil for ±infinity.
        public var microsecondsSince1970: Int64? {
            guard case .microseconds(let value) = self else { return nil }
            let (result, overflow) = value.addingReportingOverflow(Calendar.unixEpochOffsetMicroseconds)
            return overflow ? nil : result
        }

        /// From microseconds since 1970-01-01 00:00:00.
        public init(microsecondsSince1970 value: Int64) {
            let (result, overflow) = value.subtractingReportingOverflow(Calendar.unixEpochOffsetMicroseconds)
            self = overflow ? .negativeInfinity : .microseconds(result)
        }
    }

    /// An `interval`: months, days and microseconds, kept apart as PostgreSQL keeps them
    /// (a month is not a fixed number of days, nor a day of seconds across DST changes).
    ///
    /// PostgreSQL 17 adds infinite intervals: all three fields at `Int32.max`/`Int64.max`
    /// (``infinity``) or at the minimums (``negativeInfinity``).
    public struct Interval: Sendable, Hashable {
        public var months: Int32
        public var days: Int32
        public var microseconds: Int64

        public init(months: Int32 = 0, days: Int32 = 0, microseconds: Int64 = 0) {
            self.months = months
            self.days = days
            self.microseconds = microseconds
        }

        public static let infinity = Interval(months: .max, days: .max, microseconds: .max)
        public static let negativeInfinity = Interval(months: .min, days: .min, microseconds: .min)

        public var isInfinite: Bool { self == .infinity || self == .negativeInfinity }
    }
}

// MARK: - UUID and arrays

extension Value {
    /// A `uuid`: its 16 bytes in network order, stored inline (no allocation).
    public struct UUID: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// Bytes 0-7, big-endian.
        public var high: UInt64
        /// Bytes 8-15, big-endian.
        public var low: UInt64

        public init(high: UInt64, low: UInt64) {
            self.high = high
            self.low = low
        }

        /// From exactly 16 bytes; nil otherwise.
        public init?(bytes: some Collection<UInt8>) {
            guard bytes.count == 16 else { return nil }
            var high: UInt64 = 0, low: UInt64 = 0
            for (index, byte) in bytes.enumerated() {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self.init(high: high, low: low)
        }

        public var bytes: [UInt8] {
            (0..<16).map { index in
                let word = index < 8 ? high : low
                return UInt8(truncatingIfNeeded: word >> (UInt64(7 - index % 8) * 8))
            }
        }

        /// Lowercase, hyphenated: `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`.
        public var description: String {
            var out = [UInt8]()
            out.reserveCapacity(36)
            append(to: &out)
            return String(decoding: out, as: UTF8.self)
        }

        /// Appends ``description`` as UTF-8.
        public func append(to out: inout [UInt8]) {
            for index in 0..<16 {
                if index == 4 || index == 6 || index == 8 || index == 10 { out.append(UInt8(ascii: "-")) }
                let word = index < 8 ? high : low
                let byte = UInt8(truncatingIfNeeded: word >> (UInt64(7 - index % 8) * 8))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            }
        }

        public static func < (lhs: UUID, rhs: UUID) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }
    }

    /// An array value: element type, dimensions, and the elements in row-major order.
    ///
    /// `{{1,2,3},{4,5,6}}` has dimensions `[(2, 1), (3, 1)]` and six elements;
    /// `'[0:1]={7,8}'` has dimensions `[(2, 0)]`. An empty array (`{}`) has no dimensions.
    public struct ArrayValue: Sendable, Hashable {
        /// The element type as PostgreSQL reports it (for an array over a domain, the domain).
        public var elementTypeOID: UInt32
        public var dimensions: [Dimension]
        /// All elements in row-major order; ``Value/null`` for NULL elements.
        public var elements: [Value]

        /// One dimension: its length and lower bound (1 unless set explicitly).
        public struct Dimension: Sendable, Hashable {
            public var length: Int32
            public var lowerBound: Int32

            public init(length: Int32, lowerBound: Int32 = 1) {
                self.length = length
                self.lowerBound = lowerBound
            }
        }

        public init(elementTypeOID: UInt32, dimensions: [Dimension], elements: [Value]) {
            self.elementTypeOID = elementTypeOID
            self.dimensions = dimensions
            self.elements = elements
        }

        /// True when the dimensions' lengths multiply to the number of elements (always so
        /// for decoded values; a hand-built value may break it).
        public var hasConsistentShape: Bool {
            if dimensions.isEmpty { return elements.isEmpty }
            var product = 1
            for dimension in dimensions {
                guard dimension.length >= 0 else { return false }
                let (next, overflow) = product.multipliedReportingOverflow(by: Int(dimension.length))
                guard !overflow else { return false }
                product = next
            }
            return product == elements.count
        }

        /// A one-dimensional array with lower bound 1 (empty when `elements` is).
        public init(elementTypeOID: UInt32, elements: [Value]) {
            self.init(elementTypeOID: elementTypeOID,
                      dimensions: elements.isEmpty ? [] : [Dimension(length: Int32(clamping: elements.count))],
                      elements: elements)
        }
    }
}

let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

// MARK: - Equality

extension Value: Hashable {
    public static func == (lhs: Value, rhs: Value) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null), (.unchangedToast, .unchangedToast): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int16(a), .int16(b)): return a == b
        case let (.int32(a), .int32(b)): return a == b
        case let (.int64(a), .int64(b)): return a == b
        case let (.float32(a), .float32(b)): return (a.isNaN && b.isNaN) || a.bitPattern == b.bitPattern
        case let (.float64(a), .float64(b)): return (a.isNaN && b.isNaN) || a.bitPattern == b.bitPattern
        case let (.numeric(a), .numeric(b)): return a == b
        case let (.text(a), .text(b)): return a == b
        case let (.bytes(a), .bytes(b)): return a == b
        case let (.date(a), .date(b)): return a == b
        case let (.time(a), .time(b)): return a == b
        case let (.timetz(a), .timetz(b)): return a == b
        case let (.timestamp(a), .timestamp(b)): return a == b
        case let (.timestamptz(a), .timestamptz(b)): return a == b
        case let (.interval(a), .interval(b)): return a == b
        case let (.uuid(a), .uuid(b)): return a == b
        case let (.json(a), .json(b)): return a == b
        case let (.jsonb(a), .jsonb(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.inet(a), .inet(b)): return a == b
        case let (.cidr(a), .cidr(b)): return a == b
        case let (.macaddr(a), .macaddr(b)): return a == b
        case let (.macaddr8(a), .macaddr8(b)): return a == b
        case let (.money(a), .money(b)): return a == b
        case let (.bitString(a), .bitString(b)): return a == b
        case let (.tsvector(a), .tsvector(b)): return a == b
        case let (.unknown(oidA, a), .unknown(oidB, b)): return oidA == oidB && a == b
        case let (.unknownBinary(oidA, a), .unknownBinary(oidB, b)): return oidA == oidB && a == b
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .unchangedToast: hasher.combine(1)
        case .bool(let v): hasher.combine(2); hasher.combine(v)
        case .int16(let v): hasher.combine(3); hasher.combine(v)
        case .int32(let v): hasher.combine(4); hasher.combine(v)
        case .int64(let v): hasher.combine(5); hasher.combine(v)
        case .float32(let v): hasher.combine(6); hasher.combine(v.isNaN ? Float.nan.bitPattern : v.bitPattern)
        case .float64(let v): hasher.combine(7); hasher.combine(v.isNaN ? Double.nan.bitPattern : v.bitPattern)
        case .numeric(let v): hasher.combine(8); hasher.combine(v)
        case .text(let v): hasher.combine(9); hasher.combine(v)
        case .bytes(let v): hasher.combine(10); hasher.combine(v)
        case .date(let v): hasher.combine(11); hasher.combine(v)
        case .time(let v): hasher.combine(12); hasher.combine(v)
        case .timetz(let v): hasher.combine(13); hasher.combine(v)
        case .timestamp(let v): hasher.combine(14); hasher.combine(v)
        case .timestamptz(let v): hasher.combine(15); hasher.combine(v)
        case .interval(let v): hasher.combine(16); hasher.combine(v)
        case .uuid(let v): hasher.combine(17); hasher.combine(v)
        case .json(let v): hasher.combine(18); hasher.combine(v)
        case .jsonb(let v): hasher.combine(19); hasher.combine(v)
        case .array(let v): hasher.combine(20); hasher.combine(v)
        case .inet(let v): hasher.combine(21); hasher.combine(v)
        case .cidr(let v): hasher.combine(22); hasher.combine(v)
        case .macaddr(let v): hasher.combine(23); hasher.combine(v)
        case .macaddr8(let v): hasher.combine(24); hasher.combine(v)
        case .money(let v): hasher.combine(25); hasher.combine(v)
        case .bitString(let v): hasher.combine(26); hasher.combine(v)
        case .tsvector(let v): hasher.combine(27); hasher.combine(v)
        case .unknown(let oid, let v): hasher.combine(28); hasher.combine(oid); hasher.combine(v)
        case .unknownBinary(let oid, let v): hasher.combine(29); hasher.combine(oid); hasher.combine(v)
        }
    }
}
