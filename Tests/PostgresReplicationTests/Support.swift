import FerryTestSupport
import NIOCore
import PGOutput
import PostgresWire
@testable import PostgresReplication

/// A test database seen through Ferry's own client.
struct Source {
    let database: TestDatabase

    /// The database's URI with extra libpq parameters appended (`key=value&…`).
    func configuration(_ extra: String = "", user: String? = nil, password: String? = nil) throws -> ConnectionConfiguration {
        var url = database.server.url(database: database.name, user: user, password: password)
        if !extra.isEmpty { url += (url.contains("?") ? "&" : "?") + extra }
        return try ConnectionConfiguration.parse(url, systemUserName: "ferry")
    }

    func connect(_ extra: String = "", replication: Bool = false, receiveBufferLimit: Int = PGConnection.defaultReceiveBufferLimit) async throws -> PGConnection {
        try await PGConnection.connect(try configuration(extra), replication: replication ? .database : nil,
                                       receiveBufferLimit: receiveBufferLimit)
    }

    /// Runs a SQL script as the superuser with psql (one simple query: a single transaction
    /// unless the script has its own BEGIN/COMMIT).
    func sql(_ text: String) async throws {
        try await database.psql(text)
    }

    /// The first column of the first row as PostgreSQL prints it (nil when there is no row).
    func scalar(_ text: String) async throws -> String? {
        let output = try await database.psql(text)
        return output.isEmpty ? nil : output.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init)
    }
}

func withSource<T: Sendable>(_ variant: PostgresServerVariant = .trust, _ body: (Source) async throws -> T) async throws -> T {
    try await withTestDatabase(variant, prefix: "repl") { try await body(Source(database: $0)) }
}

/// Reads messages until `units` transactions (or standalone messages) have ended, confirming
/// each. Closes the connection if that takes longer than `timeout`, so a hang fails the test.
func collect(_ stream: ReplicationStream, units: Int, timeout: Duration = .seconds(30)) async throws -> [PGOutputMessage] {
    let channel = stream.connection.channel
    let watchdog = Task {
        try await Task.sleep(for: timeout)
        try? await channel.close()
    }
    defer { watchdog.cancel() }
    var messages: [PGOutputMessage] = []
    var ended = 0
    while ended < units, let next = try await stream.next() {
        messages.append(next.message)
        if let end = next.message.unitEndLSN {
            ended += 1
            stream.confirmFlushed(end)
        }
    }
    return messages
}

extension TupleData {
    var strings: [String?] { values.map { $0.string } }
}
