/// Quoting for SQL text Ferry builds itself (names of tables, slots, publications; values in
/// commands that take no parameters). The one place every module quotes with.
public enum SQLQuoting {
    /// A string literal (`'it''s'`), for connections with `standard_conforming_strings = on`
    /// (the default since PostgreSQL 9.1; Ferry's connections set it).
    public static func literal(_ value: String) -> String {
        quoted(value, by: UInt8(ascii: "'"))
    }

    /// A quoted identifier (`"Order Items"`).
    public static func identifier(_ value: String) -> String {
        quoted(value, by: UInt8(ascii: "\""))
    }

    /// `value` between two `quote`s, each `quote` in it doubled (in bytes: both quotes are
    /// ASCII, which never occurs inside a multi-byte UTF-8 sequence).
    static func quoted(_ value: String, by quote: UInt8) -> String {
        var bytes: [UInt8] = [quote]
        bytes.reserveCapacity(value.utf8.count + 2)
        for byte in value.utf8 {
            bytes.append(byte)
            if byte == quote { bytes.append(quote) }
        }
        bytes.append(quote)
        return String(decoding: bytes, as: UTF8.self)
    }
}
