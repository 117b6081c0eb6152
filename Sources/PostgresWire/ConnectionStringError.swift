/// A connection string (or `PG*` environment variable) that cannot be used.
///
/// Names the offending field and says how to fix it. Never contains a password.
public struct ConnectionStringError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: Sendable, Hashable {
            case syntax, unknownParameter, unsupportedParameter, invalidValue, conflictingValues, missingValue
        }

        let base: Base
        private init(_ base: Base) { self.base = base }

        /// Malformed URI or key=value text (unterminated quote, missing `=`, bad `%` escape…).
        public static let syntax = Self(.syntax)
        /// A key libpq does not know (probably a typo).
        public static let unknownParameter = Self(.unknownParameter)
        /// A libpq key Ferry does not implement (`service`, `requiressl`).
        public static let unsupportedParameter = Self(.unsupportedParameter)
        /// A value outside what the key accepts (`sslmode=strict`, `port=abc`).
        public static let invalidValue = Self(.invalidValue)
        /// Two values that cannot go together (`channel_binding=require` with `sslmode=disable`).
        public static let conflictingValues = Self(.conflictingValues)
        /// A value that is needed and has no default (no user name anywhere).
        public static let missingValue = Self(.missingValue)

        public var description: String {
            switch base {
            case .syntax: "syntax"
            case .unknownParameter: "unknownParameter"
            case .unsupportedParameter: "unsupportedParameter"
            case .invalidValue: "invalidValue"
            case .conflictingValues: "conflictingValues"
            case .missingValue: "missingValue"
            }
        }
    }

    public var code: Code
    /// The connection parameter at fault (`sslmode`, `port`, …), or the URI part.
    public var field: String
    /// What is wrong.
    public var message: String
    /// How to fix it.
    public var fix: String

    public init(code: Code, field: String, message: String, fix: String) {
        self.code = code
        self.field = field
        self.message = message
        self.fix = fix
    }

    public var description: String { "invalid connection string: \(field): \(message). Fix: \(fix)" }
}
