import Foundation

/// SASLprep (RFC 4013) for SCRAM passwords, the way PostgreSQL applies it (`pg_saslprep`):
///
/// - A pure-ASCII password passes through unchanged — byte for byte, whatever it contains.
/// - Otherwise: non-ASCII spaces (RFC 3454 C.1.2) map to U+0020; "commonly mapped to nothing"
///   characters (B.1) are removed; the result is NFKC-normalised; then prohibited output
///   (C.1.2, C.2.1, C.2.2, C.3–C.9), unassigned code points and the bidirectional rule are checked.
/// - If any check fails, or the result is empty, the raw UTF-8 bytes of the password are used
///   instead of failing — exactly PostgreSQL's fallback, so a password that the server stored
///   un-normalised still works.
///
/// Approximations, documented: "unassigned" is judged against the Swift runtime's Unicode version
/// rather than Unicode 3.2 (RFC 3454 A.1), and the bidi categories (D.1 RandALCat, D.2 LCat) use
/// the RFC's RandALCat ranges and "any other letter" for LCat. Both only matter for passwords
/// that mix scripts in unusual ways; such a password may then fail to authenticate, but never
/// authenticates wrongly.
public enum SASLprep {
    /// The bytes SCRAM hashes for `password`.
    public static func prepare(_ password: String) -> [UInt8] {
        let raw = Array(password.utf8)
        if raw.allSatisfy({ $0 < 0x80 }) { return raw }
        return normalize(password).map { Array($0.utf8) } ?? raw
    }

    /// The SASLprep'ed string, or nil when SASLprep rejects the input.
    public static func normalize(_ input: String) -> String? {
        var mapped = String.UnicodeScalarView()
        for scalar in input.unicodeScalars {
            if isNonASCIISpace(scalar.value) {
                mapped.append(" ")
            } else if !isMappedToNothing(scalar.value) {
                mapped.append(scalar)
            }
        }
        let normalized = String(mapped).precomposedStringWithCompatibilityMapping
        if normalized.isEmpty { return nil }

        var hasRandAL = false
        var hasL = false
        for scalar in normalized.unicodeScalars {
            let value = scalar.value
            if isProhibited(value) || scalar.properties.generalCategory == .unassigned { return nil }
            if isRandAL(value) {
                hasRandAL = true
            } else {
                switch scalar.properties.generalCategory {
                case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .spacingMark:
                    hasL = true
                default:
                    break
                }
            }
        }
        if hasRandAL {
            // RFC 3454 §6: no LCat at all, and RandALCat first and last.
            guard !hasL,
                  let first = normalized.unicodeScalars.first, isRandAL(first.value),
                  let last = normalized.unicodeScalars.last, isRandAL(last.value)
            else { return nil }
        }
        return normalized
    }

    /// C.1.2 non-ASCII space characters.
    static func isNonASCIISpace(_ v: UInt32) -> Bool {
        switch v {
        case 0x00A0, 0x1680, 0x2000...0x200B, 0x202F, 0x205F, 0x3000: true
        default: false
        }
    }

    /// B.1 commonly mapped to nothing.
    static func isMappedToNothing(_ v: UInt32) -> Bool {
        switch v {
        case 0x00AD, 0x034F, 0x1806, 0x180B...0x180D, 0x200B...0x200D, 0x2060, 0xFE00...0xFE0F, 0xFEFF: true
        default: false
        }
    }

    /// C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9.
    static func isProhibited(_ v: UInt32) -> Bool {
        if isNonASCIISpace(v) { return true }
        if v & 0xFFFE == 0xFFFE { return true }                                 // C.4 (U+xxFFFE/F)
        switch v {
        case 0x0000...0x001F, 0x007F: return true                              // C.2.1
        case 0x0080...0x009F, 0x06DD, 0x070F, 0x180E, 0x200C, 0x200D, 0x2028, 0x2029,
             0x2060...0x2063, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC, 0x1D173...0x1D17A:
            return true                                                         // C.2.2
        case 0xE000...0xF8FF, 0xF0000...0xFFFFD, 0x100000...0x10FFFD: return true  // C.3
        case 0xFDD0...0xFDEF: return true                                       // C.4
        case 0xD800...0xDFFF: return true                                       // C.5
        case 0xFFF9...0xFFFD: return true                                       // C.6
        case 0x2FF0...0x2FFB: return true                                       // C.7
        case 0x0340, 0x0341, 0x200E, 0x200F, 0x202A...0x202E: return true       // C.8
        case 0xE0001, 0xE0020...0xE007F: return true                            // C.9
        default: return false
        }
    }

    /// D.1 characters with bidirectional property "R" or "AL".
    static func isRandAL(_ v: UInt32) -> Bool {
        switch v {
        case 0x05BE, 0x05C0, 0x05C3, 0x05D0...0x05EA, 0x05F0...0x05F4, 0x061B, 0x061F,
             0x0621...0x063A, 0x0640...0x064A, 0x066D...0x066F, 0x0671...0x06D5, 0x06DD,
             0x06E5...0x06E6, 0x06FA...0x06FE, 0x0700...0x070D, 0x0710, 0x0712...0x072C,
             0x0780...0x07A5, 0x07B1, 0x200F, 0xFB1D, 0xFB1F...0xFB28, 0xFB2A...0xFB36,
             0xFB38...0xFB3C, 0xFB3E, 0xFB40...0xFB41, 0xFB43...0xFB44, 0xFB46...0xFBB1,
             0xFBD3...0xFD3D, 0xFD50...0xFD8F, 0xFD92...0xFDC7, 0xFDF0...0xFDFC,
             0xFE70...0xFE74, 0xFE76...0xFEFC:
            true
        default:
            false
        }
    }
}
