import FerryLocalPostgres
import Foundation

/// A message as the independent consumer (`scripts/kafka/consume`, confluent-kafka) read it.
public struct KafkaRecord: Sendable, Hashable {
    public var topic: String
    public var partition: Int
    public var offset: Int
    /// UTF-8 key; nil when the message had none.
    public var key: String?
    /// UTF-8 value; nil for a tombstone.
    public var value: String?

    /// The value parsed as a JSON object.
    public func valueObject() -> [String: Any]? {
        value.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The key parsed as a JSON object.
    public func keyObject() -> [String: Any]? {
        key.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// The Kafka side of the test harness: the independent consumer and the Tansu broker, both
/// installed by `scripts/kafka/setup` (confluent-kafka from PyPI, Tansu's static binary).
public enum KafkaTools {
    /// The repository's root (this file is Sources/FerryTestSupport/KafkaTools.swift).
    public static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Where scripts/kafka/setup puts what it installs.
    public static var toolsDirectory: String {
        ProcessInfo.processInfo.environment["KAFKA_TOOLS_DIR"] ?? repositoryRoot + "/.build-kafka"
    }

    /// A directory holding the newer `librdkafka.so.1` of the confluent-kafka wheel (for
    /// `LD_LIBRARY_PATH`: Debian's 2.0.2 cannot talk to Tansu).
    public static var newerLibrdkafkaDirectory: String { toolsDirectory + "/librdkafka" }

    /// Runs `body` while no other test runs one: the Kafka tests that take brokers down hold
    /// it. Two librdkafka mock clusters in one process (the test process hosts them) were seen
    /// to interfere when one takes its broker down while the other streams.
    public static func exclusively<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await KafkaTestLock.shared.acquire()
        do {
            let result = try await body()
            await KafkaTestLock.shared.release()
            return result
        } catch {
            await KafkaTestLock.shared.release()
            throw error
        }
    }

    /// Runs scripts/kafka/setup (fast when everything is there already).
    public static func setUp() throws {
        let result = try Subprocess.run(repositoryRoot + "/scripts/kafka/setup", [], check: false)
        guard result.status == 0 else {
            throw KafkaToolsError(description: "scripts/kafka/setup failed (status \(result.status)):\n\(result.output)")
        }
    }

    /// Reads `topics` from the beginning with the independent consumer until `expect`
    /// messages arrived or nothing came for `idle` seconds.
    public static func consume(bootstrap: String, topics: [String], expect: Int? = nil, idle: Int = 8,
                               timeout: Int = 180, environment: [String: String] = [:]) async throws -> [KafkaRecord] {
        var arguments = ["--bootstrap", bootstrap, "--idle", "\(idle)", "--timeout", "\(timeout)"]
        for topic in topics { arguments += ["--topic", topic] }
        if let expect { arguments += ["--expect", "\(expect)"] }
        let (status, output, errors) = try await run(repositoryRoot + "/scripts/kafka/consume", arguments, environment: environment)
        guard status == 0 || status == 2 else {
            throw KafkaToolsError(description: "scripts/kafka/consume exited with \(status):\n\(errors)")
        }
        var records: [KafkaRecord] = []
        for line in output.split(separator: "\n") where !line.isEmpty {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let topic = object["topic"] as? String, let partition = object["partition"] as? Int,
                  let offset = object["offset"] as? Int else {
                throw KafkaToolsError(description: "the consumer printed a line that is not a message: \(line.prefix(200))")
            }
            records.append(KafkaRecord(topic: topic, partition: partition, offset: offset,
                                       key: object["key"] as? String, value: object["value"] as? String))
        }
        return records
    }

    /// Runs a program to its end; returns its status, standard output and standard error.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (Int32, String, String) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: executable)
                    process.arguments = arguments
                    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
                    let output = Pipe(), errors = Pipe()
                    process.standardOutput = output
                    process.standardError = errors
                    try process.run()
                    let errorData = DispatchQueue(label: "stderr")
                    nonisolated(unsafe) var errorBytes = Data()
                    let group = DispatchGroup()
                    group.enter()
                    errorData.async {
                        errorBytes = errors.fileHandleForReading.readDataToEndOfFile()
                        group.leave()
                    }
                    let outputBytes = output.fileHandleForReading.readDataToEndOfFile()
                    group.wait()
                    process.waitUntilExit()
                    continuation.resume(returning: (process.terminationStatus, String(decoding: outputBytes, as: UTF8.self),
                                                    String(decoding: errorBytes, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}

/// A FIFO async lock (see ``KafkaTools/exclusively(_:)``).
actor KafkaTestLock {
    static let shared = KafkaTestLock()
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        guard held else {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            held = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// librdkafka's mock cluster in a process of its own (`scripts/kafka/mock-broker`, hosted by
/// confluent-kafka): a broker that can be frozen (SIGSTOP) and thawed (SIGCONT) like a host
/// that stops answering, keeping its messages.
public final class MockBrokerProcess: @unchecked Sendable {
    public let bootstrapServers: String
    private let process: Process

    public init() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: KafkaTools.repositoryRoot + "/scripts/kafka/mock-broker")
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let line: String = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                var bytes: [UInt8] = []
                while let chunk = try? output.fileHandleForReading.read(upToCount: 1), let byte = chunk.first, byte != UInt8(ascii: "\n") {
                    bytes.append(byte)
                }
                if bytes.isEmpty {
                    continuation.resume(throwing: KafkaToolsError(description: "scripts/kafka/mock-broker printed no address (run scripts/kafka/setup)"))
                } else {
                    continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
                }
            }
        }
        bootstrapServers = line
    }

    /// The broker stops answering (its connections stay open).
    public func freeze() { kill(process.processIdentifier, SIGSTOP) }

    /// The broker answers again.
    public func thaw() { kill(process.processIdentifier, SIGCONT) }

    public func stop() {
        guard process.isRunning else { return }
        // SIGKILL: the mock cluster's shutdown can wait on connections of clients that died.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A Tansu broker (Kafka protocol, in-memory storage) on a loopback port, as a child process.
public final class TansuBroker: @unchecked Sendable {
    public let port: Int
    public var bootstrapServers: String { "127.0.0.1:\(port)" }
    private var process: Process?
    private let logPath: String

    /// Starts Tansu and waits until its port accepts connections.
    public init() async throws {
        port = try Subprocess.freeLoopbackPort()
        logPath = NSTemporaryDirectory() + "tansu-\(port).log"
        try start()
        try await eventually("Tansu to listen on \(port)", timeout: .seconds(30)) { [port] in Self.accepts(port: port) }
    }

    private func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: KafkaTools.repositoryRoot + "/scripts/kafka/tansu")
        process.arguments = ["\(port)"]
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
    }

    /// Stops the broker (SIGTERM, then SIGKILL).
    public func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
    }

    /// What Tansu printed (for failure messages).
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit { stop() }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

public struct KafkaToolsError: Error, CustomStringConvertible {
    public var description: String
}
