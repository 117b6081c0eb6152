import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL cluster on this machine: `initdb` into a temporary directory, start
/// on a free loopback port, stop and remove everything afterwards. Used by `ferry demo` and
/// by the test harness.
///
/// It runs as an unprivileged OS user when this process is root (PostgreSQL refuses to run as
/// root). It is stopped when this process exits, even when it crashes or is killed: a detached
/// reaper watches this process, and an `atexit` handler stops it on a normal exit.
public final class LocalPostgres: Sendable {
    public let installation: PostgresInstallation
    public let port: Int
    /// The bootstrap superuser (authenticated by `trust` over the Unix socket).
    public let superuser: String
    public let baseDirectory: String
    public let dataDirectory: String
    public let socketDirectory: String
    public let logPath: String
    public let postmasterPID: Int32

    private init(installation: PostgresInstallation, port: Int, superuser: String, baseDirectory: String, postmasterPID: Int32) {
        self.installation = installation
        self.port = port
        self.superuser = superuser
        self.baseDirectory = baseDirectory
        self.dataDirectory = baseDirectory + "/data"
        self.socketDirectory = baseDirectory + "/socket"
        self.logPath = baseDirectory + "/postgres.log"
        self.postmasterPID = postmasterPID
    }

    /// Initialises and starts a cluster. Blocking: call it off the cooperative pool.
    ///
    /// - Parameters:
    ///   - name: part of the directory name (`/tmp/ferry-pg-<name>-XXXXXX`).
    ///   - settings: lines appended to postgresql.conf (`listen_addresses`, `port` and the
    ///     socket directory are set here).
    ///   - hba: the whole pg_hba.conf; `local all all trust` is what the superuser needs.
    ///   - prepare: runs in the new directory before it is handed to the server user (e.g. to
    ///     write TLS certificates that `settings` refer to).
    public static func start(name: String, installation: PostgresInstallation, superuser: String = "ferry",
                             settings: [String], hba: String,
                             prepare: (_ baseDirectory: String) throws -> Void = { _ in }) throws -> LocalPostgres {
        let base = try makeBaseDirectory(name)
        // Whatever happens to this process from here on, the reaper stops the postmaster (if
        // one runs) and removes the directory.
        try spawnReaper(baseDirectory: base)
        do {
            return try start(installation: installation, superuser: superuser, settings: settings, hba: hba,
                             prepare: prepare, base: base)
        } catch {
            let log = (try? String(contentsOfFile: base + "/postgres.log", encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: base)
            if log.isEmpty { throw error }
            throw LocalPostgresError("\(error)\n--- postgres.log ---\n\(log.suffix(4000))")
        }
    }

    private static func start(installation: PostgresInstallation, superuser: String, settings: [String], hba: String,
                              prepare: (String) throws -> Void, base: String) throws -> LocalPostgres {
        let data = base + "/data", socket = base + "/socket", log = base + "/postgres.log"
        try FileManager.default.createDirectory(atPath: socket, withIntermediateDirectories: true)
        try prepare(base)
        try Subprocess.handToServerUser(base)
        try Subprocess.run(installation.path("initdb"), [
            "-D", data, "-U", superuser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ], asServerUser: true, workingDirectory: base)

        let lines = settings + ["listen_addresses = '127.0.0.1'", "unix_socket_directories = '\(socket)'"]
        try appendFile(data + "/postgresql.conf", lines.joined(separator: "\n") + "\n")
        try writeFile(data + "/pg_hba.conf", hba)

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
            guard let pid = pidLine else { throw LocalPostgresError("postmaster.pid in \(data) has no PID") }
            let cluster = LocalPostgres(installation: installation, port: port, superuser: superuser,
                                        baseDirectory: base, postmasterPID: pid)
            LiveClusters.register(cluster)
            return cluster
        }
        throw LocalPostgresError("PostgreSQL did not start on a free loopback port after 5 tries: \(lastError.map { "\($0)" } ?? "")")
    }

    /// A libpq key=value connection string over the Unix socket as the superuser.
    public func connectionString(database: String) -> String {
        "host=\(socketDirectory) port=\(port) dbname=\(database) user=\(superuser) sslmode=disable"
    }

    /// Runs a SQL script with `psql` over the Unix socket as the superuser, as one
    /// simple-protocol query; stops at the first error. Returns the unaligned, tuples-only output.
    /// Blocking.
    @discardableResult
    public func psql(database: String, _ sql: String) throws -> String {
        let result = try Subprocess.run(installation.path("psql"), [
            "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", socketDirectory, "-p", "\(port)", "-U", superuser, "-d", database, "-c", sql,
        ], check: false)
        guard result.status == 0 else {
            throw LocalPostgresError("psql failed (status \(result.status)) running:\n\(sql)\n\(result.output)")
        }
        return result.output.trimmingCharacters(in: .newlines)
    }

    /// Restarts the server on the same port (`pg_ctl restart`, fast shutdown: sessions and
    /// walsenders are terminated). Blocking.
    public func restart() throws {
        try Subprocess.run(installation.path("pg_ctl"), [
            "-D", dataDirectory, "-l", logPath, "-w", "-t", "60", "-m", "fast", "-o", "-p \(port)", "restart",
        ], asServerUser: true, workingDirectory: baseDirectory)
    }

    /// Stops the cluster at once (immediate shutdown) and removes its directory.
    public func stop() {
        LiveClusters.unregister(self)
        Self.stopNow(pid: postmasterPID, baseDirectory: baseDirectory)
    }

    static func stopNow(pid: Int32, baseDirectory: String) {
        // After a restart the postmaster has a new PID: postmaster.pid has the current one.
        let current = (try? String(contentsOfFile: baseDirectory + "/data/postmaster.pid", encoding: .utf8))?
            .split(separator: "\n").first.flatMap { Int32($0) }
        let pid = current ?? pid
        if kill(pid, SIGQUIT) == 0 {
            for _ in 0..<200 where kill(pid, 0) == 0 { usleep(25_000) }
        }
        try? FileManager.default.removeItem(atPath: baseDirectory)
    }

    /// A detached shell that waits for this process to end, then stops the server and
    /// removes its directory: covers crashes, `kill -9` and interrupts.
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

    private static func makeBaseDirectory(_ name: String) throws -> String {
        var template = Array("/tmp/ferry-pg-\(name)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw LocalPostgresError("could not create a temporary directory under /tmp (errno \(errno))") }
        let path = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        chmod(path, 0o700)
        return path
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

/// Clusters started by this process, stopped by an `atexit` handler on normal exit.
enum LiveClusters {
    private static let clusters = Mutex<[ObjectIdentifier: (pid: Int32, base: String)]>([:])
    private static let installExitHandler: Void = {
        atexit { LiveClusters.stopAll() }
    }()

    static func register(_ cluster: LocalPostgres) {
        _ = installExitHandler
        clusters.withLock { $0[ObjectIdentifier(cluster)] = (cluster.postmasterPID, cluster.baseDirectory) }
    }

    static func unregister(_ cluster: LocalPostgres) {
        _ = clusters.withLock { $0.removeValue(forKey: ObjectIdentifier(cluster)) }
    }

    static func stopAll() {
        let all = clusters.withLock { clusters in
            defer { clusters.removeAll() }
            return Array(clusters.values)
        }
        for cluster in all { LocalPostgres.stopNow(pid: cluster.pid, baseDirectory: cluster.base) }
    }
}

/// Runs blocking work (process launches such as initdb and psql, file I/O) on a Dispatch
/// thread, keeping Swift concurrency's small cooperative pool free.
public func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}
