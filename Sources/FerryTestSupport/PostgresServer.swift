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
    public let installation: PostgresInstallation
    /// Host name to use in connection strings (matches the TLS certificate).
    public let host = "localhost"
    public let port: Int
    /// The bootstrap superuser.
    public let superuser = "ferry"
    /// The superuser's password (ignored by `trust` servers, which accept any).
    public let password: String
    public let baseDirectory: String
    public let dataDirectory: String
    public let socketDirectory: String
    public let logPath: String
    /// The CA certificate that signed the server certificate (TLS variant only).
    public let caCertificatePath: String?
    let postmasterPID: Int32

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

    private init(variant: PostgresServerVariant, installation: PostgresInstallation, port: Int, password: String,
                 baseDirectory: String, caCertificatePath: String?, postmasterPID: Int32) {
        self.variant = variant
        self.installation = installation
        self.port = port
        self.password = password
        self.baseDirectory = baseDirectory
        self.dataDirectory = baseDirectory + "/data"
        self.socketDirectory = baseDirectory + "/socket"
        self.logPath = baseDirectory + "/postgres.log"
        self.caCertificatePath = caCertificatePath
        self.postmasterPID = postmasterPID
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

    /// Initialises and starts a server. Blocking: call it off the cooperative pool.
    static func start(_ variant: PostgresServerVariant, installation: PostgresInstallation) throws -> PostgresServer {
        let base = try makeBaseDirectory(variant)
        // Whatever happens to this process from here on, the reaper stops the postmaster (if
        // one runs) and removes the directory.
        try spawnReaper(baseDirectory: base)
        do {
            return try start(variant, installation: installation, base: base)
        } catch {
            let log = (try? String(contentsOfFile: base + "/postgres.log", encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: base)
            if log.isEmpty { throw error }
            throw HarnessError("\(error)\n--- postgres.log ---\n\(log.suffix(4000))")
        }
    }

    private static func start(_ variant: PostgresServerVariant, installation: PostgresInstallation, base: String) throws -> PostgresServer {
        let data = base + "/data", socket = base + "/socket", log = base + "/postgres.log"
        let password = "ferry-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try FileManager.default.createDirectory(atPath: socket, withIntermediateDirectories: true)

        var caCertificatePath: String?
        if variant == .tlsSCRAM {
            caCertificatePath = try TestCertificates.make(in: base + "/tls")
        }
        try Subprocess.handToServerUser(base)

        try Subprocess.run(installation.path("initdb"), [
            "-D", data, "-U", "ferry", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ], asServerUser: true, workingDirectory: base)

        var lines = settings.map { "\($0.0) = '\($0.1)'" }
        if variant == .walLevelReplica { lines.append("wal_level = 'replica'") }
        lines.append("listen_addresses = '127.0.0.1'")
        lines.append("unix_socket_directories = '\(socket)'")
        switch variant {
        case .md5: lines.append("password_encryption = 'md5'")
        case .trust, .scram, .tlsSCRAM, .walLevelReplica: lines.append("password_encryption = 'scram-sha-256'")
        }
        if variant == .tlsSCRAM {
            lines += ["ssl = on", "ssl_cert_file = '\(base)/tls/server.crt'", "ssl_key_file = '\(base)/tls/server.key'",
                      "ssl_ca_file = '\(base)/tls/ca.crt'"]
        }
        try appendFile(data + "/postgresql.conf", lines.joined(separator: "\n") + "\n")
        try writeFile(data + "/pg_hba.conf", hbaRules(variant))

        // A free port can be taken between finding and binding it: retry on that race.
        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try Subprocess.freeLoopbackPort()
            do {
                try Subprocess.run(installation.path("pg_ctl"), [
                    "-D", data, "-l", log, "-w", "-t", "60", "-o", "-p \(port)", "start",
                ], asServerUser: true, workingDirectory: base)
            } catch {
                lastError = error
                continue
            }
            let pidLine = try String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8)
                .split(separator: "\n").first.flatMap { Int32($0) }
            guard let pid = pidLine else { throw HarnessError("postmaster.pid in \(data) has no PID") }
            let server = PostgresServer(variant: variant, installation: installation, port: port, password: password,
                                        baseDirectory: base, caCertificatePath: caCertificatePath, postmasterPID: pid)
            LiveServers.register(server)
            return server
        }
        throw HarnessError("PostgreSQL did not start on a free loopback port after 5 tries: \(lastError.map { "\($0)" } ?? "")")
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
        LiveServers.unregister(self)
        Self.stopNow(pid: postmasterPID, baseDirectory: baseDirectory)
    }

    static func stopNow(pid: Int32, baseDirectory: String) {
        if kill(pid, SIGQUIT) == 0 {
            for _ in 0..<200 where kill(pid, 0) == 0 { usleep(25_000) }
        }
        try? FileManager.default.removeItem(atPath: baseDirectory)
    }

    /// A detached shell that waits for the test process to end, then stops the server and
    /// removes its directory: covers crashes, `kill -9` and interrupts of the test run.
    private static func spawnReaper(baseDirectory: String) throws {
        let script = """
        while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
        pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
        if [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null; then
          i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
        fi
        rm -rf "$2"
        """
        try Subprocess.spawnDetached("/bin/sh", ["-c", script, "ferry-pg-reaper", "\(getpid())", baseDirectory])
    }

    private static func makeBaseDirectory(_ variant: PostgresServerVariant) throws -> String {
        var template = Array("/tmp/ferry-pg-\(variant.rawValue)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw HarnessError("could not create a temporary directory under /tmp (errno \(errno))") }
        let path = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        chmod(path, 0o700)
        return path
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

func writeFile(_ path: String, _ text: String) throws {
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}

func appendFile(_ path: String, _ text: String) throws {
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(text.utf8))
}

/// Servers started by this process, stopped by an `atexit` handler on normal exit.
enum LiveServers {
    private static let servers = Mutex<[ObjectIdentifier: (pid: Int32, base: String)]>([:])
    private static let installExitHandler: Void = {
        atexit { LiveServers.stopAll() }
    }()

    static func register(_ server: PostgresServer) {
        _ = installExitHandler
        servers.withLock { $0[ObjectIdentifier(server)] = (server.postmasterPID, server.baseDirectory) }
    }

    static func unregister(_ server: PostgresServer) {
        _ = servers.withLock { $0.removeValue(forKey: ObjectIdentifier(server)) }
    }

    static func stopAll() {
        let all = servers.withLock { servers in
            defer { servers.removeAll() }
            return Array(servers.values)
        }
        for server in all { PostgresServer.stopNow(pid: server.pid, baseDirectory: server.base) }
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
