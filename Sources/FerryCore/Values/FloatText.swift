#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// PostgreSQL's `float4out`/`float8out` with `extra_float_digits > 0` (the default since
/// PostgreSQL 12): the shortest decimal that reads back as the same value (its Ryu port), in
/// fixed notation when the decimal exponent is in `-4..<15` (`-4..<6` for `float4`),
/// otherwise `d.ddde±XX`; `NaN`, `Infinity`, `-Infinity`, `-0`.
///
/// The shortest digits come from Swift's own shortest round-trip formatting. PostgreSQL's
/// Ryu is built without `STRICTLY_SHORTEST`: it never picks a decimal lying exactly on the
/// boundary between two floats (which only round-half-even readers map back), and then
/// prints one more digit. That rare case is detected exactly and the correctly rounded longer
/// form is taken from C's `printf`.
enum FloatText {
    static func append(_ value: Double, to out: inout [UInt8]) {
        if value.isNaN { out.append(contentsOf: "NaN".utf8); return }
        if value.isInfinite { out.append(contentsOf: (value < 0 ? "-Infinity" : "Infinity").utf8); return }
        if value == 0 { out.append(contentsOf: (value.sign == .minus ? "-0" : "0").utf8); return }
        if value < 0 { out.append(UInt8(ascii: "-")) }
        let magnitude = value.magnitude
        var decimal = Decimal(parsing: magnitude.description)
        let bits = magnitude.bitPattern
        let boundary = Boundary(ieeeMantissa: bits & (1 << 52 - 1), ieeeExponent: Int(bits >> 52), mantissaBits: 52, bias: 1023)
        var precision = decimal.digits.count
        while boundary.contains(decimal), precision < 17 {
            precision += 1
            decimal = Decimal(parsing: printf(magnitude, significantDigits: precision))
        }
        decimal.layout(fixedBelow: 15, to: &out)
    }

    static func append(_ value: Float, to out: inout [UInt8]) {
        if value.isNaN { out.append(contentsOf: "NaN".utf8); return }
        if value.isInfinite { out.append(contentsOf: (value < 0 ? "-Infinity" : "Infinity").utf8); return }
        if value == 0 { out.append(contentsOf: (value.sign == .minus ? "-0" : "0").utf8); return }
        if value < 0 { out.append(UInt8(ascii: "-")) }
        let magnitude = value.magnitude
        var decimal = Decimal(parsing: magnitude.description)
        let bits = UInt64(magnitude.bitPattern)
        let boundary = Boundary(ieeeMantissa: bits & (1 << 23 - 1), ieeeExponent: Int(bits >> 23), mantissaBits: 23, bias: 127)
        var precision = decimal.digits.count
        while boundary.contains(decimal), precision < 9 {
            precision += 1
            decimal = Decimal(parsing: printf(Double(magnitude), significantDigits: precision))
        }
        decimal.layout(fixedBelow: 6, to: &out)
    }

    static func string(_ value: Double) -> String {
        var out = [UInt8]()
        out.reserveCapacity(24)
        append(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func string(_ value: Float) -> String {
        var out = [UInt8]()
        out.reserveCapacity(16)
        append(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `%.{n-1}e`: the exact value correctly rounded to `n` significant digits.
    private static func printf(_ value: Double, significantDigits: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let format = "%.\(significantDigits - 1)e"
        _ = buffer.withUnsafeMutableBufferPointer { pointer in
            withVaList([value]) { arguments in
                vsnprintf(pointer.baseAddress, pointer.count, format, arguments)
            }
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A positive decimal `0.d1d2d3… × 10^pointPosition`, without leading or trailing zeros.
    struct Decimal {
        var digits: [UInt8] = []
        var pointPosition = 0

        /// From `123.456`, `1e-05`, `1.5e+20`, `100.0`, `1.2340e+03`.
        init(parsing text: String) {
            digits.reserveCapacity(20)
            var sawPoint = false, inExponent = false
            var exponent = 0, exponentSign = 1
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    if inExponent {
                        exponent = exponent * 10 + Int(byte - UInt8(ascii: "0"))
                    } else {
                        digits.append(byte)
                        if !sawPoint { pointPosition += 1 }
                    }
                case UInt8(ascii: "."): sawPoint = true
                case UInt8(ascii: "e"), UInt8(ascii: "E"): inExponent = true
                case UInt8(ascii: "-"): exponentSign = -1
                default: break
                }
            }
            pointPosition += exponentSign * exponent
            var start = 0
            while start < digits.count - 1, digits[start] == UInt8(ascii: "0") {
                start += 1
                pointPosition -= 1
            }
            var end = digits.count
            while end > start + 1, digits[end - 1] == UInt8(ascii: "0") { end -= 1 }
            digits = Array(digits[start..<end])
        }

        /// The significand as an integer and the power of ten: `digits × 10^exponent`.
        var integer: (significand: UInt64, exponent: Int) {
            var value: UInt64 = 0
            for digit in digits { value = value &* 10 &+ UInt64(digit - UInt8(ascii: "0")) }
            return (value, pointPosition - digits.count)
        }

        func layout(fixedBelow limit: Int, to out: inout [UInt8]) {
            guard !digits.isEmpty else {
                out.append(UInt8(ascii: "0"))
                return
            }
            let displayExponent = pointPosition - 1
            if displayExponent >= -4 && displayExponent < limit {
                if pointPosition <= 0 {
                    out.append(contentsOf: "0.".utf8)
                    for _ in 0..<(-pointPosition) { out.append(UInt8(ascii: "0")) }
                    out.append(contentsOf: digits)
                } else if pointPosition >= digits.count {
                    out.append(contentsOf: digits)
                    for _ in 0..<(pointPosition - digits.count) { out.append(UInt8(ascii: "0")) }
                } else {
                    out.append(contentsOf: digits.prefix(pointPosition))
                    out.append(UInt8(ascii: "."))
                    out.append(contentsOf: digits.dropFirst(pointPosition))
                }
            } else {
                out.append(digits[0])
                if digits.count > 1 {
                    out.append(UInt8(ascii: "."))
                    out.append(contentsOf: digits.dropFirst())
                }
                out.append(UInt8(ascii: "e"))
                out.append(displayExponent < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
                let magnitude = abs(displayExponent)
                if magnitude < 10 { out.append(UInt8(ascii: "0")) }
                out.appendDecimal(UInt64(magnitude))
            }
        }
    }

    /// The two points halfway to the neighbouring floats, as Ryu computes them:
    /// `(4·m2 + 2)·2^e2` above and `(4·m2 − 1 − mmShift)·2^e2` below.
    struct Boundary {
        var upper: UInt64
        var lower: UInt64
        var exponent: Int

        init(ieeeMantissa: UInt64, ieeeExponent: Int, mantissaBits: Int, bias: Int) {
            let m2: UInt64
            if ieeeExponent == 0 {
                m2 = ieeeMantissa
                exponent = 1 - bias - mantissaBits - 2
            } else {
                m2 = 1 << UInt64(mantissaBits) | ieeeMantissa
                exponent = ieeeExponent - bias - mantissaBits - 2
            }
            let mmShift: UInt64 = ieeeMantissa != 0 || ieeeExponent <= 1 ? 1 : 0
            upper = 4 * m2 + 2
            lower = 4 * m2 - 1 - mmShift
        }

        /// Whether `decimal` is exactly one of the two boundaries.
        func contains(_ decimal: Decimal) -> Bool {
            guard decimal.digits.count <= 19, let x = Self.dyadic(decimal) else { return false }
            return x == Self.normalized(upper, exponent) || x == Self.normalized(lower, exponent)
        }

        /// `value·2^exponent` as (odd part, power of two).
        static func normalized(_ value: UInt64, _ exponent: Int) -> (UInt64, Int) {
            let zeros = value.trailingZeroBitCount
            return (value >> UInt64(zeros), exponent + zeros)
        }

        /// `digits × 10^e` as (odd part, power of two) when it is a dyadic rational whose odd
        /// part fits in 64 bits; nil otherwise (then it cannot equal a boundary, whose odd
        /// part has at most 56 bits).
        static func dyadic(_ decimal: Decimal) -> (UInt64, Int)? {
            let (significand, e) = decimal.integer
            let zeros = significand.trailingZeroBitCount
            var odd = significand >> UInt64(zeros)
            if e >= 0 {
                for _ in 0..<e {
                    let (product, overflow) = odd.multipliedReportingOverflow(by: 5)
                    if overflow { return nil }
                    odd = product
                }
            } else {
                for _ in 0..<(-e) {
                    guard odd % 5 == 0 else { return nil }
                    odd /= 5
                }
            }
            return (odd, zeros + e)
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends the decimal digits of `value`.
    mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        // Digits from the right into a small stack buffer, then one append.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var index = 20
            var rest = value
            while rest > 0 {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            }
            append(contentsOf: UnsafeBufferPointer(rebasing: buffer[index..<20]))
        }
    }

    mutating func appendDecimal(_ value: Int64) {
        if value < 0 { append(UInt8(ascii: "-")) }
        appendDecimal(value.magnitude)
    }

    mutating func appendDecimal(_ value: Int) { appendDecimal(Int64(value)) }

    /// Appends `value` (non-negative) with at least `width` digits, zero-padded.
    mutating func appendPadded(_ value: Int64, width: Int) {
        let magnitude = value.magnitude
        if width == 2 && magnitude < 100 {
            append(UInt8(ascii: "0") + UInt8(magnitude / 10))
            append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            return
        }
        var digits = 1
        var probe = magnitude
        while probe >= 10 {
            probe /= 10
            digits += 1
        }
        if digits < width { for _ in 0..<(width - digits) { append(UInt8(ascii: "0")) } }
        appendDecimal(magnitude)
    }

    mutating func append(_ string: StaticString) {
        string.withUTF8Buffer { append(contentsOf: $0) }
    }
}
