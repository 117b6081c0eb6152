@_exported import FerryLocalPostgres
import Foundation
import PostgresNIO
import Synchronization

/// The throwaway PostgreSQL servers of one test run: one per variant, started on first use
/// and shared by every test, each test working in a fresh database of its own.
public actor PostgresHarness {
    public static let shared = PostgresHarness()

    private var servers: [PostgresServerVariant: Task<PostgresServer, any Error>] = [:]

    /// The server of `variant`, started on first use. A failed start is remembered and
    /// re-thrown to every test that asks, so one missing install fails fast and clearly.
    public func server(_ variant: PostgresServerVariant = .trust) async throws -> PostgresServer {
        if let existing = servers[variant] { return try await existing.value }
        let starting = Task<PostgresServer, any Error> {
            let server = try await offCooperativePool {
                try PostgresServer.start(variant, installation: PostgresInstallation.locate())
            }
            do {
                try await server.setSuperuserPassword()
            } catch {
                server.stop()
                throw error
            }
            return server
        }
        servers[variant] = starting
        return try await starting.value
    }

    /// Stops every server this harness started (they are also stopped at process exit).
    public func stopAll() async {
        for task in servers.values {
            if let server = try? await task.value { server.stop() }
        }
        servers.removeAll()
    }
}

/// A database created for one test on a shared harness server.
public struct TestDatabase: Sendable {
    public let server: PostgresServer
    public let name: String

    /// A libpq-style URI for the database (TLS variants carry verify-full and the CA).
    public var url: String { server.url(database: name) }

    /// A TCP connection with the server variant's authentication.
    public func connect(user: String? = nil, password: String? = nil) async throws -> PostgresConnection {
        try await server.connect(database: name, user: user, password: password)
    }

    /// Runs `body` on a superuser connection to this database, then closes it.
    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await server.withAdminConnection(database: name, body)
    }
}

extension PostgresServer {
    private static let databaseNumbers = Counter()

    /// Creates an empty database for one test.
    public func createDatabase(prefix: String = "t") async throws -> TestDatabase {
        let clean = prefix.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" }.prefix(24)
        let name = "\(clean)_\(Self.databaseNumbers.next())_\(UInt32.random(in: 0...UInt32.max))"
        try await withAdminConnection { try await $0.execute(sql: "CREATE DATABASE \(sqlIdentifier(name))") }
        return TestDatabase(server: self, name: name)
    }

    /// Drops a test database, disconnecting whoever still uses it and dropping its slots.
    public func dropDatabase(_ database: TestDatabase) async throws {
        try await withAdminConnection { connection in
            // Slots pin a database: drop the inactive ones first (active ones end with their walsender).
            try await connection.execute(sql: """
                SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                WHERE database = \(sqlLiteral(database.name)) AND active_pid IS NOT NULL
                """)
            try await connection.execute(sql: """
                SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                WHERE database = \(sqlLiteral(database.name)) AND NOT active
                """)
            try await connection.execute(sql: "DROP DATABASE IF EXISTS \(sqlIdentifier(database.name)) WITH (FORCE)")
        }
    }
}

/// Runs `body` with a fresh database on the shared server of `variant`, dropping it after.
public func withTestDatabase<T: Sendable>(
    _ variant: PostgresServerVariant = .trust,
    prefix: String = "t",
    _ body: (TestDatabase) async throws -> T
) async throws -> T {
    let server = try await PostgresHarness.shared.server(variant)
    let database = try await server.createDatabase(prefix: prefix)
    do {
        let result = try await body(database)
        try? await server.dropDatabase(database)
        return result
    } catch {
        try? await server.dropDatabase(database)
        throw error
    }
}


extension TestDatabase {
    /// Runs a SQL script with `psql` over the server's Unix socket as the superuser, as one
    /// simple-protocol query (several statements, explicit BEGIN/COMMIT, PREPARE TRANSACTION
    /// all work); stops at the first error. Returns what psql printed (unaligned, tuples only).
    @discardableResult
    public func psql(_ sql: String) async throws -> String {
        let cluster = server.cluster, name = self.name
        return try await offCooperativePool { try cluster.psql(database: name, sql) }
    }
}

/// Harness failures are the local cluster's errors: they say what to install or change.
public typealias HarnessError = LocalPostgresError
