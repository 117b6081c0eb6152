import FerryLocalPostgres
import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a harness server authenticates clients that connect over TCP.
public enum PostgresServerVariant: String, Sendable, CaseIterable, Hashable {
    /// No password (`trust`).
    case trust
    /// Password with SCRAM-SHA-256; the role's password is stored as a SCRAM verifier.
    case scram
    /// Password with MD5; the role's password is stored as an MD5 hash.
    case md5
    /// TLS only (`hostssl`; plain connections are rejected) with SCRAM-SHA-256. The server
    /// certificate is issued for `localhost`, `127.0.0.1` and `::1` by a CA made at start, so
    /// clients can verify with `sslmode=verify-full` and `sslrootcert=<caCertificatePath>`.
    case tlsSCRAM = "tls-scram"
    /// `trust`, but with `wal_level = replica`: a server that cannot do logical decoding, for
    /// testing how that is reported.
    case walLevelReplica = "wal-level-replica"
}

/// A throwaway PostgreSQL server on loopback, configured for logical replication tests.
///
/// It runs as an unprivileged OS user when the tests run as root, in a temporary directory
/// that is removed when it stops. It is stopped when the test process exits, even when that
/// process crashes or is killed: a detached reaper watches the test process.
public final class PostgresServer: Sendable {
    public let variant: PostgresServerVariant
    /// The cluster itself: directories, port, postmaster.
    public let cluster: LocalPostgres
    /// Host name to use in connection strings (matches the TLS certificate).
    public let host = "localhost"
    /// The superuser's password (ignored by `trust` servers, which accept any).
    public let password: String
    /// The CA certificate that signed the server certificate (TLS variant only).
    public let caCertificatePath: String?

    public var installation: PostgresInstallation { cluster.installation }
    public var port: Int { cluster.port }
    /// The bootstrap superuser.
    public var superuser: String { cluster.superuser }
    public var baseDirectory: String { cluster.baseDirectory }
    public var dataDirectory: String { cluster.dataDirectory }
    public var socketDirectory: String { cluster.socketDirectory }
    public var logPath: String { cluster.logPath }
    var postmasterPID: Int32 { cluster.postmasterPID }

    /// Settings every harness server runs with.
    public static let settings: [(String, String)] = [
        ("wal_level", "logical"),
        ("max_replication_slots", "64"),
        ("max_wal_senders", "64"),
        ("max_connections", "300"),
        ("wal_sender_timeout", "10s"),
        ("logical_decoding_work_mem", "64kB"),
        ("max_prepared_transactions", "64"),
        ("shared_buffers", "64MB"),
        // Throwaway data: skip fsync for speed. A server crash is not what these tests study.
        ("fsync", "off"),
        ("full_page_writes", "off"),
        ("timezone", "UTC"),
        ("log_min_messages", "warning"),
    ]

    private init(variant: PostgresServerVariant, cluster: LocalPostgres, password: String, caCertificatePath: String?) {
        self.variant = variant
        self.cluster = cluster
        self.password = password
        self.caCertificatePath = caCertificatePath
    }

    // MARK: Connecting

    /// A libpq-style URI for this server, as a user of Ferry would write it.
    public func url(database: String = "postgres", user: String? = nil, password: String? = nil) -> String {
        let user = user ?? superuser
        let password = password ?? self.password
        var url = "postgres://\(user):\(password)@\(host):\(port)/\(database)"
        switch variant {
        case .tlsSCRAM:
            url += "?sslmode=verify-full&sslrootcert=\(caCertificatePath ?? "")"
        case .trust, .scram, .md5, .walLevelReplica:
            url += "?sslmode=disable"
        }
        return url
    }

    /// The TLS configuration a verifying client uses against this server (`verify-full`).
    public func clientTLSConfiguration() throws -> TLSConfiguration {
        guard let caCertificatePath else {
            throw HarnessError("the \(variant.rawValue) harness server has no TLS; ask for the .tlsSCRAM variant")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(caCertificatePath)
        tls.certificateVerification = .fullVerification
        return tls
    }

    /// postgres-nio configuration over TCP, authenticating the way this variant requires.
    public func clientConfiguration(database: String, user: String? = nil, password: String? = nil) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        if variant == .tlsSCRAM {
            tls = .require(try NIOSSLContext(configuration: clientTLSConfiguration()))
        } else {
            tls = .disable
        }
        return PostgresConnection.Configuration(
            host: host, port: port,
            username: user ?? superuser, password: password ?? self.password,
            database: database, tls: tls
        )
    }

    /// postgres-nio configuration over the server's Unix socket as the superuser (`trust`):
    /// what the harness itself uses to create databases and roles.
    public func adminConfiguration(database: String = "postgres") -> PostgresConnection.Configuration {
        PostgresConnection.Configuration(
            unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)",
            username: superuser, password: nil, database: database
        )
    }

    /// Opens a TCP connection with this variant's authentication.
    public func connect(database: String, user: String? = nil, password: String? = nil,
                        logger: Logger = PostgresServer.quietLogger) async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            configuration: clientConfiguration(database: database, user: user, password: password),
            id: Self.connectionIDs.next(), logger: logger
        )
    }

    /// Runs `body` on an admin connection (Unix socket, superuser) and closes it.
    public func withAdminConnection<T: Sendable>(database: String = "postgres",
                                                 _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await PostgresConnection.connect(
            configuration: adminConfiguration(database: database),
            id: Self.connectionIDs.next(), logger: Self.quietLogger
        )
        do {
            let result = try await body(connection)
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    public static let quietLogger: Logger = {
        var logger = Logger(label: "ferry.test.postgres")
        logger.logLevel = .critical
        return logger
    }()

    static let connectionIDs = Counter()

    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        func next() -> Int { value.add(1, ordering: .relaxed).newValue }
    }

    // MARK: Lifecycle

    /// TLS files, relative to the data directory (the certificates are made in `<base>/tls`).
    static let tlsSettings = ["ssl = on", "ssl_cert_file = '../tls/server.crt'", "ssl_key_file = '../tls/server.key'",
                              "ssl_ca_file = '../tls/ca.crt'"]

    /// Initialises and starts a server. Blocking: call it off the cooperative pool.
    static func start(_ variant: PostgresServerVariant, installation: PostgresInstallation) throws -> PostgresServer {
        let password = "ferry-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        var lines = settings.map { "\($0.0) = '\($0.1)'" }
        if variant == .walLevelReplica { lines.append("wal_level = 'replica'") }
        switch variant {
        case .md5: lines.append("password_encryption = 'md5'")
        case .trust, .scram, .tlsSCRAM, .walLevelReplica: lines.append("password_encryption = 'scram-sha-256'")
        }
        var caCertificatePath: String?
        let cluster = try LocalPostgres.start(name: variant.rawValue, installation: installation, superuser: "ferry",
                                              settings: variant == .tlsSCRAM ? lines + tlsSettings : lines,
                                              hba: hbaRules(variant)) { base in
            guard variant == .tlsSCRAM else { return }
            caCertificatePath = try TestCertificates.make(in: base + "/tls")
        }
        return PostgresServer(variant: variant, cluster: cluster, password: password, caCertificatePath: caCertificatePath)
    }

    /// A server of this test's own (not shared): for tests that restart or stop the server.
    /// Stop it with ``stop()`` when done (it is also stopped at process exit).
    public static func startDedicated(_ variant: PostgresServerVariant = .trust) async throws -> PostgresServer {
        let installation = try PostgresInstallation.locate()
        let server = try await offCooperativePool { try start(variant, installation: installation) }
        try await server.setSuperuserPassword()
        return server
    }

    /// Restarts the server on the same port (fast shutdown: every session and walsender ends).
    public func restart() async throws {
        let cluster = self.cluster
        try await offCooperativePool { try cluster.restart() }
    }

    /// Sets the superuser's password (hashed by the variant's `password_encryption`).
    func setSuperuserPassword() async throws {
        try await withAdminConnection { connection in
            try await connection.execute(sql: "ALTER ROLE ferry PASSWORD \(sqlLiteral(password))")
        }
    }

    static func hbaRules(_ variant: PostgresServerVariant) -> String {
        var rules = ["# TYPE  DATABASE  USER  ADDRESS  METHOD", "local all all trust", "local replication all trust"]
        let method: String
        switch variant {
        case .trust, .walLevelReplica: method = "trust"
        case .scram, .tlsSCRAM: method = "scram-sha-256"
        case .md5: method = "md5"
        }
        let connection = variant == .tlsSCRAM ? "hostssl" : "host"
        for address in ["127.0.0.1/32", "::1/128"] {
            rules.append("\(connection) all all \(address) \(method)")
            rules.append("\(connection) replication all \(address) \(method)")
            if variant == .tlsSCRAM {
                rules.append("hostnossl all all \(address) reject")
                rules.append("hostnossl replication all \(address) reject")
            }
        }
        return rules.joined(separator: "\n") + "\n"
    }

    /// Stops the server at once (immediate shutdown) and removes its directory.
    public func stop() {
        cluster.stop()
    }
}

/// A SQL string literal: `'` doubled, wrapped in quotes (standard_conforming_strings is on).
public func sqlLiteral(_ value: String) -> String {
    "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
}

/// A SQL identifier: `"` doubled, wrapped in double quotes.
public func sqlIdentifier(_ value: String) -> String {
    "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

extension PostgresConnection {
    /// Runs SQL text that takes no parameters (DDL, role and database commands).
    public func execute(sql: String) async throws {
        _ = try await query(PostgresQuery(unsafeSQL: sql), logger: PostgresServer.quietLogger)
    }

    /// Runs a query and returns every row's columns as text (NULL as nil).
    public func rows(sql: String) async throws -> [[String?]] {
        var result: [[String?]] = []
        let rows = try await query(PostgresQuery(unsafeSQL: sql), logger: PostgresServer.quietLogger)
        for try await row in rows {
            result.append(row.map { $0.text })
        }
        return result
    }

    /// The first column of the first row as text (NULL as nil).
    public func scalar(sql: String) async throws -> String? {
        try await rows(sql: sql).first?.first ?? nil
    }
}

extension PostgresCell {
    /// The value as PostgreSQL would print it, for the types tests compare (postgres-nio
    /// returns binary results for the extended protocol).
    var text: String? {
        guard bytes != nil else { return nil }
        if format == .text { return bytes.map { String(buffer: $0) } }
        switch dataType {
        case .bool: return (try? decode(Bool.self)).map { $0 ? "t" : "f" }
        case .int2, .int4, .int8, .oid: return (try? decode(Int64.self)).map(String.init)
        case .float4, .float8: return (try? decode(Double.self)).map { "\($0)" }
        default: return (try? decode(String.self)) ?? bytes.map { "\\x" + $0.readableBytesView.map { String(format: "%02x", $0) }.joined() }
        }
    }
}
