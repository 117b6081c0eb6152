import PostgresWire

/// A failure of a connection to PostgreSQL: what went wrong, and what to do about it.
///
/// `code` says which kind of problem it is (for retry policies and exit codes), `message`
/// names the problem, `fix` says what to change. A server error keeps every field the
/// server sent in `serverError`. Passwords never appear in any of these texts.
public struct PGConnectionError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case invalidConfiguration, hostUnreachable, connectTimeout, tlsNotSupportedByServer,
                 tlsHandshakeFailed, authenticationFailed, connectionRejected, unsupportedAuthentication,
                 channelBindingRequired, passwordRequired, notReplicationCapable, server,
                 protocolViolation, connectionClosed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The connection string or options are wrong (nothing was sent).
        public static let invalidConfiguration = Self(.invalidConfiguration)
        /// DNS failed, the connection was refused, or the network is unreachable.
        public static let hostUnreachable = Self(.hostUnreachable)
        /// No answer within `connect_timeout`.
        public static let connectTimeout = Self(.connectTimeout)
        /// TLS was required but the server does not offer it.
        public static let tlsNotSupportedByServer = Self(.tlsNotSupportedByServer)
        /// The TLS handshake failed (often: the certificate could not be verified).
        public static let tlsHandshakeFailed = Self(.tlsHandshakeFailed)
        /// The server rejected the password (SQLSTATE 28P01).
        public static let authenticationFailed = Self(.authenticationFailed)
        /// The server refused the connection before authentication (SQLSTATE 28000, pg_hba.conf),
        /// or the database does not exist, or the server is out of connection slots.
        public static let connectionRejected = Self(.connectionRejected)
        /// The server asked for an authentication method Ferry does not speak (Kerberos, GSSAPI, SSPI).
        public static let unsupportedAuthentication = Self(.unsupportedAuthentication)
        /// `channel_binding=require` could not be honoured.
        public static let channelBindingRequired = Self(.channelBindingRequired)
        /// The server asked for a password and none was given.
        public static let passwordRequired = Self(.passwordRequired)
        /// The server cannot do logical replication for this role (wal_level, REPLICATION privilege, walsenders).
        public static let notReplicationCapable = Self(.notReplicationCapable)
        /// Any other error reported by the server.
        public static let server = Self(.server)
        /// The server sent bytes that break the protocol.
        public static let protocolViolation = Self(.protocolViolation)
        /// The connection closed unexpectedly.
        public static let connectionClosed = Self(.connectionClosed)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// What went wrong, naming the host, user or database concerned.
    public var message: String
    /// What to change so that it works.
    public var fix: String?
    /// Every field of the server's ErrorResponse, when the server reported the error.
    public var serverError: PostgresServerError?
    /// The underlying error (socket, TLS, decoding), when there is one.
    public var underlying: String?

    public init(_ code: Code, _ message: String, fix: String? = nil, serverError: PostgresServerError? = nil,
                underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.fix = fix
        self.serverError = serverError
        self.underlying = underlying.map { "\($0)" }
    }

    /// The SQLSTATE of a server error.
    public var sqlState: String? { serverError?.sqlState }

    public var description: String {
        var text = message
        if let serverError {
            if let detail = serverError.detail { text += "\nDETAIL: \(detail)" }
            if let hint = serverError.hint { text += "\nHINT: \(hint)" }
        }
        if let underlying, serverError == nil { text += " (\(underlying))" }
        if let fix { text += "\nFix: \(fix)" }
        return text
    }
}

extension PGConnectionError {
    /// Classifies a server ErrorResponse, adding the fix a user needs.
    static func fromServer(_ error: PostgresServerError, user: String, database: String, endpoint: String,
                           replication: Bool) -> PGConnectionError {
        let state = error.sqlState
        let text = error.message.isEmpty ? "unknown error" : error.message
        switch state {
        case "28P01":
            return PGConnectionError(.authenticationFailed,
                "password authentication failed for user \"\(user)\" at \(endpoint)",
                fix: "check the password in the connection string, PGPASSWORD or the password file (~/.pgpass)",
                serverError: error)
        case "28000":
            if replication && text.contains("replication") {
                return PGConnectionError(.notReplicationCapable,
                    "the server refused a replication connection for user \"\(user)\" at \(endpoint): \(text)",
                    fix: "grant the role REPLICATION (ALTER ROLE \(user) WITH REPLICATION) and allow it in pg_hba.conf",
                    serverError: error)
            }
            return PGConnectionError(.connectionRejected,
                "the server at \(endpoint) rejected the connection for user \"\(user)\": \(text)",
                fix: "allow this client in pg_hba.conf, or use the sslmode the server expects (e.g. sslmode=require)",
                serverError: error)
        case "3D000":
            return PGConnectionError(.connectionRejected, "database \"\(database)\" does not exist at \(endpoint)",
                fix: "create it, or name an existing database in the connection string (dbname)", serverError: error)
        case "53300":
            return PGConnectionError(.connectionRejected, "the server at \(endpoint) has no free connection slots: \(text)",
                fix: replication ? "raise max_wal_senders / max_connections, or stop unused replication clients"
                                 : "raise max_connections or close idle clients",
                serverError: error)
        case "42501" where replication:
            return PGConnectionError(.notReplicationCapable,
                "user \"\(user)\" may not start a replication connection at \(endpoint): \(text)",
                fix: "ALTER ROLE \(user) WITH REPLICATION (on Neon, use a role created in the console; on RDS, grant rds_replication)",
                serverError: error)
        case "55000" where text.contains("wal_level"):
            return PGConnectionError(.notReplicationCapable, "logical replication is not enabled at \(endpoint): \(text)",
                fix: "set wal_level = logical and restart PostgreSQL (on Neon: enable logical replication in the project settings; on RDS: rds.logical_replication = 1)",
                serverError: error)
        default:
            return PGConnectionError(.server, "\(error.severity): \(text) (SQLSTATE \(state))",
                serverError: error)
        }
    }
}
