/// A position in the PostgreSQL write-ahead log (`pg_lsn`).
///
/// Printed and parsed the way PostgreSQL does it: two hexadecimal halves separated by a
/// slash, e.g. `16/B374D848`. Ordering follows the numeric value.
public struct LSN: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }

    /// The invalid position `0/0`.
    public static let invalid = LSN(0)

    /// Parses `X/X` with one to eight hexadecimal digits on each side.
    /// Returns nil for anything else (no trimming, no sign, no prefix).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2,
              (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
              parts[0].allSatisfy(\.isHexDigit), parts[1].allSatisfy(\.isHexDigit),
              let high = UInt32(parts[0], radix: 16), let low = UInt32(parts[1], radix: 16)
        else { return nil }
        self.rawValue = UInt64(high) << 32 | UInt64(low)
    }

    public var description: String {
        let high = String(UInt32(truncatingIfNeeded: rawValue >> 32), radix: 16, uppercase: true)
        let low = String(UInt32(truncatingIfNeeded: rawValue), radix: 16, uppercase: true)
        return "\(high)/\(low)"
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Bytes of WAL between two positions (`pg_wal_lsn_diff`), saturating at zero.
    public func bytes(since earlier: LSN) -> UInt64 {
        rawValue >= earlier.rawValue ? rawValue - earlier.rawValue : 0
    }
}
