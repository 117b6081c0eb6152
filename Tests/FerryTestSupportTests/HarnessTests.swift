import Foundation
import NIOSSL
import PostgresNIO
import Testing
@testable import FerryTestSupport

/// The harness servers answer, are configured for logical replication, and authenticate the
/// way each variant promises (and refuse what it forbids).
@Suite struct HarnessServerTests {
    @Test func trustServerIsReadyForLogicalReplication() async throws {
        try await withTestDatabase(.trust) { database in
            let connection = try await database.connect(password: "")
            defer { Task { try? await connection.close() } }
            #expect(try await connection.scalar(sql: "SHOW wal_level") == "logical")
            #expect(try await connection.scalar(sql: "SHOW logical_decoding_work_mem") == "64kB")
            #expect(try await connection.scalar(sql: "SHOW wal_sender_timeout") == "10s")
            #expect(try await connection.scalar(sql: "SELECT current_database()") == database.name)
            let slots = try #require(Int(try await connection.scalar(sql: "SHOW max_replication_slots") ?? ""))
            #expect(slots >= 10)
            let version = try #require(Int(try await connection.scalar(sql: "SHOW server_version_num") ?? ""))
            #expect(version >= 140000)
            // trust: the server never asked for a password
            #expect(try await connection.scalar(sql: "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' LIMIT 1") == "trust")
        }
    }

    @Test func scramServerAuthenticatesWithScramAndRefusesAWrongPassword() async throws {
        try await withTestDatabase(.scram) { database in
            let connection = try await database.connect()
            defer { Task { try? await connection.close() } }
            #expect(try await connection.scalar(sql: "SHOW wal_level") == "logical")
            let stored = try #require(try await connection.scalar(sql: "SELECT rolpassword FROM pg_authid WHERE rolname = 'ferry'"))
            #expect(stored.hasPrefix("SCRAM-SHA-256$"))
            await expectAuthenticationFailure { try await database.connect(password: "wrong-password") }
        }
    }

    @Test func md5ServerAuthenticatesWithMD5AndRefusesAWrongPassword() async throws {
        try await withTestDatabase(.md5) { database in
            let connection = try await database.connect()
            defer { Task { try? await connection.close() } }
            #expect(try await connection.scalar(sql: "SHOW wal_level") == "logical")
            let stored = try #require(try await connection.scalar(sql: "SELECT rolpassword FROM pg_authid WHERE rolname = 'ferry'"))
            #expect(stored.hasPrefix("md5") && stored.count == 35)
            #expect(try await connection.scalar(sql: "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'") == "md5")
            await expectAuthenticationFailure { try await database.connect(password: "wrong-password") }
        }
    }

    @Test func tlsServerVerifiesFullyWithScramAndRefusesPlainConnections() async throws {
        try await withTestDatabase(.tlsSCRAM) { database in
            let server = database.server
            #expect(database.url.contains("sslmode=verify-full"))
            // verify-full: the CA made at start signs a certificate for "localhost".
            let connection = try await database.connect()
            defer { Task { try? await connection.close() } }
            #expect(try await connection.scalar(sql: "SHOW wal_level") == "logical")
            #expect(try await connection.scalar(sql: "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "t")
            let stored = try #require(try await connection.scalar(sql: "SELECT rolpassword FROM pg_authid WHERE rolname = 'ferry'"))
            #expect(stored.hasPrefix("SCRAM-SHA-256$"))

            // Without TLS the server refuses (hostnossl … reject).
            var plain = try server.clientConfiguration(database: database.name)
            plain.tls = .disable
            await #expect(throws: (any Error).self) {
                let c = try await PostgresConnection.connect(configuration: plain, id: 1, logger: PostgresServer.quietLogger)
                try await c.close()
            }

            // A client that does not trust the harness CA refuses the server's certificate.
            var untrusting = TLSConfiguration.makeClientConfiguration()
            untrusting.trustRoots = .certificates([])
            untrusting.certificateVerification = .fullVerification
            var unverified = try server.clientConfiguration(database: database.name)
            unverified.tls = .require(try NIOSSLContext(configuration: untrusting))
            await #expect(throws: (any Error).self) {
                let c = try await PostgresConnection.connect(configuration: unverified, id: 2, logger: PostgresServer.quietLogger)
                try await c.close()
            }
        }
    }

    @Test func eachTestGetsItsOwnDatabase() async throws {
        let server = try await PostgresHarness.shared.server(.trust)
        let first = try await server.createDatabase(prefix: "isolation")
        let second = try await server.createDatabase(prefix: "isolation")
        #expect(first.name != second.name)
        try await first.withConnection { try await $0.execute(sql: "CREATE TABLE only_in_first (id int)") }
        let seen = try await second.withConnection {
            try await $0.scalar(sql: "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_first'")
        }
        #expect(seen == "0")
        try await server.dropDatabase(first)
        try await server.dropDatabase(second)
        let remaining = try await server.withAdminConnection {
            try await $0.scalar(sql: "SELECT count(*) FROM pg_database WHERE datname IN (\(sqlLiteral(first.name)), \(sqlLiteral(second.name)))")
        }
        #expect(remaining == "0")
    }

    @Test func serverRunsAsAnUnprivilegedUserWhenTestsRunAsRoot() async throws {
        let server = try await PostgresHarness.shared.server(.trust)
        let attributes = try FileManager.default.attributesOfItem(atPath: server.dataDirectory)
        let owner = try #require(attributes[.ownerAccountID] as? NSNumber)
        if geteuid() == 0 {
            #expect(owner.intValue != 0)
        } else {
            #expect(owner.uint32Value == geteuid())
        }
        #expect(server.baseDirectory.hasPrefix("/tmp/ferry-pg-trust-"))
        #expect(kill(server.postmasterPID, 0) == 0)
    }

    private func expectAuthenticationFailure(_ attempt: () async throws -> PostgresConnection) async {
        do {
            let connection = try await attempt()
            try? await connection.close()
            Issue.record("a wrong password was accepted")
        } catch let error as PSQLError {
            #expect(error.serverInfo?[.sqlState] == "28P01", "expected invalid_password, got \(String(reflecting: error))")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}

@Suite struct HarnessSupportTests {
    @Test func eventuallyReturnsAsSoonAsTheConditionHolds() async throws {
        let counter = Counter()
        let value = try await eventually("third poll", timeout: .seconds(60), interval: .milliseconds(1)) { () -> Int? in
            let n = counter.increment()
            return n >= 3 ? n : nil
        }
        #expect(value == 3)
        #expect(counter.increment() == 4, "it stops polling once the condition holds")
    }

    @Test func eventuallyTimesOutWithTheLastError() async throws {
        struct NotYet: Error {}
        do {
            try await eventually("never", timeout: .milliseconds(50), interval: .milliseconds(5)) { () -> Bool in throw NotYet() }
            Issue.record("eventually returned for a condition that never held")
        } catch let timedOut as TimedOut {
            #expect(timedOut.what == "never")
            #expect(timedOut.lastError?.contains("NotYet") == true)
        }
    }

    @Test func parsesPostgresVersionBanner() {
        #expect(PostgresInstallation.parseMajorVersion("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") == 15)
        #expect(PostgresInstallation.parseMajorVersion("postgres (PostgreSQL) 17beta1") == 17)
        #expect(PostgresInstallation.parseMajorVersion("something else") == nil)
    }

    @Test func missingServerBinariesNameWhatToInstall() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-no-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        do {
            _ = try PostgresInstallation.locate(environment: ["PATH": empty, "FERRY_PG_BINDIR": empty], debianRoot: empty)
            Issue.record("found a PostgreSQL installation in an empty directory")
        } catch let error as HarnessError {
            #expect(error.description.contains("apt-get install -y postgresql"))
            #expect(error.description.contains("FERRY_PG_BINDIR"))
        }
    }

    @Test func hbaRulesMatchTheVariant() {
        #expect(PostgresServer.hbaRules(.md5).contains("host all all 127.0.0.1/32 md5"))
        #expect(PostgresServer.hbaRules(.scram).contains("host replication all 127.0.0.1/32 scram-sha-256"))
        let tls = PostgresServer.hbaRules(.tlsSCRAM)
        #expect(tls.contains("hostssl all all 127.0.0.1/32 scram-sha-256"))
        #expect(tls.contains("hostnossl all all 127.0.0.1/32 reject"))
        #expect(!tls.contains("\nhost all"))
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}
