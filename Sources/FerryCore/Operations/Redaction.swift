/// Removes secrets from text bound for logs, errors, status and metrics: the password of a
/// connection URI (`postgres://user:secret@host` → `postgres://user:***@host`), `password=`
/// in key=value strings and URI query strings (quoted or not), and `sslpassword=`.
public enum Redaction {
    public static func redact(_ text: String) -> String {
        guard text.contains("@") || text.lowercased().contains("password") else { return text }
        return redactKeyValues(redactURIPasswords(text))
    }

    /// `scheme://user:password@` → `scheme://user:***@`.
    static func redactURIPasswords(_ text: String) -> String {
        var result = ""
        var rest = Substring(text)
        while let schemeEnd = rest.range(of: "://") {
            result += rest[..<schemeEnd.upperBound]
            rest = rest[schemeEnd.upperBound...]
            // The authority ends at the first '/', '?', '#' or whitespace; its userinfo at the last '@'.
            let authorityEnd = rest.firstIndex { "/?# \n\t\"'".contains($0) } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                result += authority[...colon] + "***" + authority[at...]
            } else {
                result += authority
            }
            rest = rest[authorityEnd...]
        }
        return result + rest
    }

    /// `password=secret`, `password='se cret'`, `&password=secret` → `password=***`.
    static func redactKeyValues(_ text: String) -> String {
        var result = ""
        var rest = Substring(text)
        while let key = rest.range(of: "password=", options: .caseInsensitive) {
            result += rest[..<key.upperBound] + "***"
            var valueEnd = key.upperBound
            if valueEnd < rest.endIndex, rest[valueEnd] == "'" {
                // Quoted: up to the closing quote, skipping \' escapes.
                var index = rest.index(after: valueEnd)
                while index < rest.endIndex {
                    if rest[index] == "\\" { index = rest.index(index, offsetBy: 2, limitedBy: rest.endIndex) ?? rest.endIndex; continue }
                    if rest[index] == "'" { index = rest.index(after: index); break }
                    index = rest.index(after: index)
                }
                valueEnd = index
            } else {
                valueEnd = rest[valueEnd...].firstIndex { " &\n\t\"',;)".contains($0) } ?? rest.endIndex
            }
            rest = rest[valueEnd...]
        }
        return result + rest
    }
}
