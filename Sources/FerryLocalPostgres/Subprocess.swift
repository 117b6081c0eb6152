import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to completion, capturing what it printed, optionally as the OS user that
/// local PostgreSQL servers run as.
///
/// Output goes to a temporary file rather than a pipe so that a daemon started by the
/// program (as `pg_ctl start` does) cannot keep the caller waiting on an open pipe.
public struct Subprocess {
    public struct Failure: Error, CustomStringConvertible {
        let command: String
        let status: Int32
        let output: String
        public var description: String { "`\(command)` exited with status \(status):\n\(output)" }
    }

    public struct Result: Sendable {
        public let status: Int32
        public let output: String
    }

    /// The OS user the PostgreSQL servers run as: PostgreSQL refuses to run as root.
    /// Nil when the tests do not run as root (the servers then run as the current user).
    public static let serverUser: String? = {
        guard geteuid() == 0 else { return nil }
        if let chosen = ProcessInfo.processInfo.environment["FERRY_TEST_PG_OS_USER"], !chosen.isEmpty {
            return chosen
        }
        if getpwnam("postgres") != nil { return "postgres" }
        return "nobody"
    }()

    @discardableResult
    public static func run(
        _ executable: String,
        _ arguments: [String],
        asServerUser: Bool = false,
        workingDirectory: String? = nil,
        environment: [String: String]? = nil,
        check: Bool = true
    ) throws -> Result {
        var executable = executable
        var arguments = arguments
        if asServerUser, let user = serverUser {
            arguments = ["-u", user, "--", executable] + arguments
            executable = FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser") ? "/usr/sbin/runuser" : "/sbin/runuser"
        }
        let outputPath = NSTemporaryDirectory() + "ferry-subprocess-\(UUID().uuidString).log"
        defer { unlink(outputPath) }
        let pid = try spawn(executable, arguments, outputPath: outputPath, workingDirectory: workingDirectory,
                            environment: environment, newSession: false)
        let status = try waitForExit(pid)
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let result = Result(status: status, output: text)
        if check && result.status != 0 {
            throw Failure(command: ([executable] + arguments).joined(separator: " "), status: result.status, output: text)
        }
        return result
    }

    /// Starts a program detached from the test process (a new session, no inherited output or
    /// descriptors), used for the reaper that stops servers when the test process dies.
    /// `setsid -f` forks again, so the process we wait for here exits at once.
    static func spawnDetached(_ executable: String, _ arguments: [String]) throws {
        let pid = try spawn("/usr/bin/setsid", ["-f", executable] + arguments, outputPath: "/dev/null",
                            workingDirectory: "/", environment: nil, newSession: true)
        _ = try waitForExit(pid)
    }

    /// posix_spawn with stdin from /dev/null, stdout and stderr into `outputPath`, and every
    /// other descriptor closed: a child can never hold the test runner's pipes open.
    /// (Foundation's Process was seen here to leave children unreaped and hang in
    /// waitUntilExit when several were launched from different threads at once.)
    private static func spawn(_ executable: String, _ arguments: [String], outputPath: String,
                              workingDirectory: String?, environment: [String: String]?, newSession: Bool) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        guard GlibcSpawnExtensions.addCloseFrom(&actions, 3) == 0 else { throw LocalPostgresError("posix_spawn_file_actions_addclosefrom_np failed") }
        if let workingDirectory, GlibcSpawnExtensions.addChdir(&actions, workingDirectory) != 0 {
            throw LocalPostgresError("posix_spawn_file_actions_addchdir_np(\(workingDirectory)) failed")
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= GlibcSpawnExtensions.setsidFlag }
        posix_spawnattr_setflags(&attributes, flags)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environmentPairs = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let envp = environmentPairs.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }

        var pid = pid_t()
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw LocalPostgresError("could not start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    private static func waitForExit(_ pid: pid_t) throws -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw LocalPostgresError("waitpid(\(pid)) failed (errno \(errno))") }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Changes the owner of a path (recursively) to the server user, when there is one.
    public static func handToServerUser(_ path: String) throws {
        guard let user = serverUser else { return }
        try run("/bin/chown", ["-R", "\(user):", path])
    }

    /// A TCP port on loopback that was free a moment ago.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalPostgresError("could not open a socket to find a free port (errno \(errno))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw LocalPostgresError("could not bind a loopback socket to find a free port (errno \(errno))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw LocalPostgresError("getsockname failed (errno \(errno))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// glibc's GNU extensions to posix_spawn (2.29+, 2.34+), which Swift's Glibc module does not
/// export: looked up at run time.
enum GlibcSpawnExtensions {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    /// POSIX_SPAWN_SETSID from <spawn.h>.
    static let setsidFlag: Int16 = 0x80

    private static let closeFrom: AddCloseFrom? = lookup("posix_spawn_file_actions_addclosefrom_np")
    private static let chdir: AddChdir? = lookup("posix_spawn_file_actions_addchdir_np")

    private static func lookup<F>(_ name: String) -> F? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: F.self)
    }

    static func addCloseFrom(_ actions: inout posix_spawn_file_actions_t, _ fd: Int32) -> Int32 {
        guard let closeFrom else { return 0 }  // older glibc: descriptors are CLOEXEC in Swift's runtime and NIO anyway
        return closeFrom(&actions, fd)
    }

    static func addChdir(_ actions: inout posix_spawn_file_actions_t, _ path: String) -> Int32 {
        guard let chdir else { return -1 }
        return path.withCString { chdir(&actions, $0) }
    }
}

/// A failure to run a local PostgreSQL: says what went wrong and what to install or change.
public struct LocalPostgresError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
