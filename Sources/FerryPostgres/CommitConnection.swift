import FerryCore
import Logging
import NIOCore
import NIOPosix
import PostgresReplication
import PostgresWire

/// The connection the one-statement commit runs on (a small flush's runs and its position as
/// one statement that commits by itself): Ferry's own wire client, extended protocol, the
/// statement prepared once per connection, then Bind, Execute and Sync in one write and the
/// reply read at once. postgres-nio's path for the same statement (futures, its state machine,
/// a row stream) took about a quarter of Ferry's CPU per small transaction.
///
/// The statement commits by itself and the destination awaits it before sending anything
/// else, so it needs no transaction shared with the main connection. Opened on the event loop
/// the stream runs on (no hand-off between threads), with Ferry's session settings.
///
/// Used by one task at a time (the destination actor awaits each call; calls never overlap).
final class CommitConnection: @unchecked Sendable {
    let configuration: ConnectionConfiguration
    let destination: String
    let logger: Logger
    private var connection: PGConnection?
    /// The name each statement is prepared under on this connection, by SQL text.
    private var names: [String: String] = [:]
    static let preparedLimit = 256

    init(configuration: ConnectionConfiguration, destination: String, logger: Logger) {
        self.configuration = configuration
        self.destination = destination
        self.logger = logger
    }

    /// When the connection could not be opened: not tried again before this (a target that
    /// allows the user one connection would otherwise be asked at every flush).
    private var retryAfter: ContinuousClock.Instant?
    static let retryDelay = Duration.seconds(60)

    /// Whether the connection is open or can be opened now. If not, the caller takes the usual
    /// path on its main connection (which reports a target that is down); the reason is logged
    /// and opening is tried again after ``retryDelay``.
    func ready(on eventLoop: (any EventLoop)?) async -> Bool {
        if let connection, connection.isOpen { return true }
        if let retryAfter, ContinuousClock.now < retryAfter { return false }
        do {
            _ = try await open(on: eventLoop)
            retryAfter = nil
            return true
        } catch {
            retryAfter = .now + Self.retryDelay
            logger.warning("small transactions take the usual path: the second connection they commit on could not be opened",
                           metadata: ["destination": "\(destination)", "error": "\(Redaction.redact(String(describing: error)))",
                                      "fix": "allow this user one more connection on the target (CONNECTION LIMIT, max_connections); tried again in a minute"])
            return false
        }
    }

    /// Runs `sql` with text parameters; returns its rows as text. A server error comes as a
    /// `PGConnectionError` with the server's fields; a lost connection as one without.
    func run(_ sql: String, _ parameters: [String], on eventLoop: (any EventLoop)?) async throws -> [[String?]] {
        let connection = try await open(on: eventLoop)
        var name = names[sql]
        if name == nil, names.count < Self.preparedLimit {
            name = "ferry_commit_\(names.count)"
            names[sql] = name
        }
        return try await connection.extendedQuery(sql, parameters: parameters, prepareAs: name).rows
    }

    func close() async {
        if let connection { await connection.close() }
        connection = nil
        names = [:]
    }

    private func open(on eventLoop: (any EventLoop)?) async throws -> PGConnection {
        if let connection, connection.isOpen { return connection }
        await close()
        let connection: PGConnection
        do {
            connection = try await PGConnection.connect(configuration, replication: .some(nil),
                                                        eventLoopGroup: eventLoop ?? MultiThreadedEventLoopGroup.singleton, logger: logger)
        } catch {
            throw FerryError(.destination, "cannot connect to the Postgres destination \(destination): \(Redaction.redact(String(describing: error)))",
                             fix: "check the destination URL, that the server runs and accepts one more connection from this user")
        }
        do {
            try await connection.simpleQuery(PostgresDestination.sessionSettings)
        } catch {
            await connection.close()
            throw FerryError(.destination, "cannot set up the connection to the Postgres destination \(destination): \(Redaction.redact(String(describing: error)))",
                             fix: "Ferry tries again; check that the server runs")
        }
        self.connection = connection
        return connection
    }
}
