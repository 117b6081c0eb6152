/// Quoting for SQL text Ferry builds itself (names of tables, slots, publications; values in
/// commands that take no parameters). The one place every module quotes with.
public enum SQLQuoting {
    /// A string literal (`'it''s'`), for connections with `standard_conforming_strings = on`
    /// (the default since PostgreSQL 9.1; Ferry's connections set it).
    public static func literal(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// A quoted identifier (`"Order Items"`).
    public static func identifier(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
