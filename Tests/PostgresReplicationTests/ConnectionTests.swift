import FerryTestSupport
import Foundation
import NIOCore
import PostgresWire
import Testing
@testable import PostgresReplication

/// Connecting like libpq against real servers: each authentication method, TLS with
/// verify-full and SCRAM-SHA-256-PLUS, and a clear, distinct error for each way it fails.
@Suite struct ConnectionTests {
    @Test(arguments: [
        (PostgresServerVariant.trust, PGConnection.AuthenticationMethod.trust, false),
        (.scram, .scramSHA256, false),
        (.md5, .md5, false),
        (.tlsSCRAM, .scramSHA256Plus, true),
    ])
    func connectsWithEachAuthenticationMethod(_ variant: PostgresServerVariant,
                                              _ method: PGConnection.AuthenticationMethod, _ tls: Bool) async throws {
        try await withSource(variant) { source in
            let connection = try await source.connect()
            #expect(connection.authenticationMethod == method)
            #expect(connection.isTLS == tls)
            #expect(try await connection.query("SHOW wal_level") == [["logical"]])
            #expect(try await connection.query("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [[tls ? "true" : "false"]])
            #expect(connection.serverVersionNumber >= 140_000)
            await connection.close()
        }
    }

    @Test func tlsWithRequiredChannelBindingUsesScramPlusAndSNI() async throws {
        try await withSource(.tlsSCRAM) { source in
            let connection = try await source.connect("channel_binding=require&application_name=ferry-test")
            #expect(connection.authenticationMethod == .scramSHA256Plus)
            #expect(connection.isTLS)
            let application = try await connection.query("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            #expect(application == [["ferry-test"]])
            // A replication connection over the same TLS + SCRAM-PLUS path.
            let replication = try await source.connect("channel_binding=require", replication: true)
            let system = try await replication.identifySystem()
            #expect(system.database == source.database.name)
            #expect(system.xlogPosition > .invalid)
            await replication.close()
            await connection.close()
        }
    }

    @Test func wrongPasswordIsAuthenticationFailed() async throws {
        for variant in [PostgresServerVariant.scram, .md5] {
            try await withSource(variant) { source in
                let configuration = try source.configuration(password: "not-the-password")
                let error = await #expect(throws: PGConnectionError.self) {
                    _ = try await PGConnection.connect(configuration)
                }
                #expect(error?.code == .authenticationFailed)
                #expect(error?.sqlState == "28P01")
                #expect(error?.description.contains("user \"ferry\"") == true)
                #expect(error?.fix?.contains("password") == true)
                #expect(error?.description.contains("not-the-password") == false)
            }
        }
    }

    @Test func unreachableHostIsReportedWithAFix() async throws {
        let port = try Subprocess.freeLoopbackPort()
        let configuration = try ConnectionConfiguration.parse("postgres://ferry@127.0.0.1:\(port)/postgres?sslmode=disable&connect_timeout=5")
        let error = await #expect(throws: PGConnectionError.self) { _ = try await PGConnection.connect(configuration) }
        #expect(error?.code == .hostUnreachable)
        #expect(error?.message.contains("127.0.0.1") == true)
        #expect(error?.fix?.contains("port") == true)
    }

    @Test func tlsRequiredButNotOfferedIsRefused() async throws {
        try await withSource(.trust) { source in
            let error = await #expect(throws: PGConnectionError.self) {
                _ = try await PGConnection.connect(try source.configuration("sslmode=require"))
            }
            #expect(error?.code == .tlsNotSupportedByServer)
            #expect(error?.fix?.contains("ssl") == true)
        }
    }

    @Test func certificateFromAnotherAuthorityFailsVerification() async throws {
        try await withSource(.tlsSCRAM) { source in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-other-ca-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let otherCA = try TestCertificates.make(in: directory)
            var configuration = try source.configuration()
            configuration.sslRootCertificate = .file(otherCA)
            let error = await #expect(throws: PGConnectionError.self) { _ = try await PGConnection.connect(configuration) }
            #expect(error?.code == .tlsHandshakeFailed)
            #expect(error?.fix?.contains("sslrootcert") == true)
        }
    }

    @Test func channelBindingRequiredWithoutTLSIsRefused() async throws {
        try await withSource(.scram) { source in
            var configuration = try source.configuration()
            configuration.sslMode = .prefer
            configuration.channelBinding = .require
            let error = await #expect(throws: PGConnectionError.self) { _ = try await PGConnection.connect(configuration) }
            #expect(error?.code == .channelBindingRequired)
        }
    }

    @Test func serverWithoutLogicalDecodingIsNotReplicationCapable() async throws {
        try await withSource(.walLevelReplica) { source in
            let connection = try await source.connect(replication: true)
            let error = await #expect(throws: PGConnectionError.self) {
                _ = try await connection.createReplicationSlot("ferry_no_logical", temporary: true)
            }
            #expect(error?.code == .notReplicationCapable)
            #expect(error?.fix?.contains("wal_level = logical") == true)
            await connection.close()
        }
    }

    @Test func roleWithoutReplicationIsNotReplicationCapable() async throws {
        try await withSource(.trust) { source in
            try await source.sql("CREATE ROLE ferry_plain_\(source.database.name) LOGIN")
            let configuration = try source.configuration(user: "ferry_plain_\(source.database.name)")
            let error = await #expect(throws: PGConnectionError.self) {
                _ = try await PGConnection.connect(configuration, replication: .database)
            }
            #expect(error?.code == .notReplicationCapable)
            #expect(error?.fix?.contains("REPLICATION") == true)
            try await source.sql("DROP ROLE ferry_plain_\(source.database.name)")
        }
    }

    @Test func missingDatabaseIsRejected() async throws {
        try await withSource(.trust) { source in
            var configuration = try source.configuration()
            configuration.database = "no_such_database"
            let error = await #expect(throws: PGConnectionError.self) { _ = try await PGConnection.connect(configuration) }
            #expect(error?.code == .connectionRejected)
            #expect(error?.sqlState == "3D000")
        }
    }

    @Test func serverErrorsCarryEveryFieldAndLeaveTheConnectionUsable() async throws {
        try await withSource(.trust) { source in
            let connection = try await source.connect()
            let error = await #expect(throws: PGConnectionError.self) {
                try await connection.simpleQuery("""
                    DO $$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'the detail', HINT = 'the hint', ERRCODE = 'P0001'; END $$
                    """)
            }
            #expect(error?.code == .server)
            #expect(error?.serverError?.severity == "ERROR")
            #expect(error?.serverError?.sqlState == "P0001")
            #expect(error?.serverError?.message == "boom")
            #expect(error?.serverError?.detail == "the detail")
            #expect(error?.serverError?.hint == "the hint")
            let results = try await connection.simpleQuery("SELECT 1 AS a; SELECT 'x' AS b, NULL AS c")
            #expect(results.count == 2)
            #expect(results[0].rows == [["1"]])
            #expect(results[1].rows == [["x", nil]])
            #expect(results[1].fields.map(\.name) == ["b", "c"])
            #expect(results[1].commandTag == "SELECT 1")
            await connection.close()
        }
    }

    @Test func extendedQueriesArePreparedOnceAndKeepTheConnectionAfterAnError() async throws {
        try await withSource(.trust) { source in
            try await source.sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
            let connection = try await source.connect()
            let insert = "INSERT INTO t VALUES ($1::int, $2) RETURNING id::text, v, v IS NULL"
            var result = try await connection.extendedQuery(insert, parameters: ["1", "é"], prepareAs: "ins")
            #expect(result.rows == [["1", "é", "f"]])
            #expect(result.commandTag == "INSERT 0 1")
            result = try await connection.extendedQuery(insert, parameters: ["2", nil], prepareAs: "ins")
            #expect(result.rows == [["2", nil, "t"]])
            #expect(connection.preparedStatements == ["ins"])
            // Prepared once: the server holds one statement of that name, not re-parsed.
            let prepared = try await connection.extendedQuery("SELECT name, statement FROM pg_prepared_statements", parameters: [])
            #expect(prepared.rows == [["ins", insert]])

            // The server's refusal, with its fields; the connection goes on.
            let duplicate = await #expect(throws: PGConnectionError.self) {
                try await connection.extendedQuery(insert, parameters: ["1", "again"], prepareAs: "ins")
            }
            #expect(duplicate?.serverError?.sqlState == "23505")
            // A statement that does not parse is not recorded as prepared, and the next one runs.
            let syntax = await #expect(throws: PGConnectionError.self) {
                try await connection.extendedQuery("SELEC 1", parameters: [], prepareAs: "bad")
            }
            #expect(syntax?.serverError?.sqlState == "42601")
            #expect(connection.preparedStatements == ["ins"])
            // Parsed, then refused at its first execution: the server keeps it, and so does the record.
            await #expect(throws: PGConnectionError.self) {
                try await connection.extendedQuery("SELECT 1 / $1::int", parameters: ["0"], prepareAs: "div")
            }
            #expect(connection.preparedStatements == ["ins", "div"])
            #expect(try await connection.extendedQuery("SELECT 1 / $1::int", parameters: ["1"], prepareAs: "div").rows == [["1"]])
            #expect(try await connection.extendedQuery("SELECT count(*) FROM t", parameters: []).rows == [["2"]])
            #expect(!connection.isBroken)
            await connection.close()
        }
    }

    @Test func copyOutStreamsBinaryRowsThroughASmallBuffer() async throws {
        try await withSource(.trust) { source in
            try await source.sql("CREATE TABLE numbers AS SELECT g AS id, md5(g::text) AS label FROM generate_series(1, 20000) g")
            let connection = try await source.connect(receiveBufferLimit: 16 * 1024)
            var stream = ByteBuffer()
            var chunks = 0
            var largestBuffered = 0
            let tag = try await connection.copyOut("COPY numbers TO STDOUT (FORMAT binary)") { chunk in
                var chunk = chunk
                stream.writeBuffer(&chunk)
                chunks += 1
                largestBuffered = max(largestBuffered, connection.inbound.bufferedBytes)
            }
            #expect(tag == "COPY 20000")
            // PostgreSQL sends a CopyData per row; rows that arrived together come in one call,
            // and the small receive buffer makes many calls.
            #expect(chunks > 1 && chunks < 20000)
            #expect(largestBuffered <= 16 * 1024 + 512 * 1024)
            // Parse PostgreSQL's binary COPY format: signature, flags, extension, tuples, trailer.
            let signature: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]
            #expect(stream.readBytes(length: 11) == signature)
            #expect(stream.readInteger(as: UInt32.self) == 0)
            let extensionLength = stream.readInteger(as: UInt32.self) ?? 0
            stream.moveReaderIndex(forwardBy: Int(extensionLength))
            var rows = 0
            var sum = 0
            while let fields = stream.readInteger(as: Int16.self), fields != -1 {
                #expect(fields == 2)
                let idLength = stream.readInteger(as: Int32.self)
                #expect(idLength == 4)
                let id = stream.readInteger(as: Int32.self)
                sum += Int(id ?? 0)
                let labelLength = stream.readInteger(as: Int32.self)
                #expect(labelLength == 32)
                stream.moveReaderIndex(forwardBy: Int(labelLength ?? 0))
                rows += 1
            }
            #expect(rows == 20000)
            #expect(sum == 20000 * 20001 / 2)
            #expect(stream.readableBytes == 0)
            #expect(try await connection.query("SELECT 42") == [["42"]])
            await connection.close()
        }
    }

    /// COPY FROM STDIN in binary format: rows go in; a duplicate key is the server's error
    /// with its SQLSTATE and the connection stays usable; a failing producer cancels the COPY.
    @Test func copyInSendsBinaryRowsAndReportsTheServersError() async throws {
        try await withSource(.trust) { source in
            try await source.sql("CREATE TABLE numbers (id int PRIMARY KEY, label text)")
            let connection = try await source.connect()
            func tuples(_ ids: ClosedRange<Int32>) -> ByteBuffer {
                var buffer = ByteBuffer(bytes: Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00, 0, 0, 0, 0, 0, 0, 0, 0])
                for id in ids {
                    let label = Array("n\t\(id)".utf8)
                    buffer.writeInteger(Int16(2))
                    buffer.writeInteger(Int32(4))
                    buffer.writeInteger(id)
                    if id % 10 == 0 {
                        buffer.writeInteger(Int32(-1))
                    } else {
                        buffer.writeInteger(Int32(label.count))
                        buffer.writeBytes(label)
                    }
                }
                buffer.writeInteger(Int16(-1))
                return buffer
            }
            let sql = "COPY numbers (id, label) FROM STDIN (FORMAT binary)"
            var all = tuples(1...5000)
            let tag = try await connection.copyIn(sql) { send in
                // In pieces that split tuples anywhere.
                while all.readableBytes > 0 { try await send(all.readSlice(length: min(all.readableBytes, 7777))!) }
            }
            #expect(tag == "COPY 5000")
            #expect(try await source.scalar("SELECT count(*) || ' ' || sum(id) || ' ' || count(label) FROM numbers") == "5000 12502500 4500")
            #expect(try await source.scalar("SELECT label FROM numbers WHERE id = 7") == "n\t7")

            // Ids 4990…5010: the first eleven are there already.
            do {
                try await connection.copyIn(sql) { send in try await send(tuples(4990...5010)) }
                Issue.record("a duplicate key was accepted")
            } catch let error as PGConnectionError {
                #expect(error.sqlState == "23505", "\(error)")
            }
            #expect(try await connection.query("SELECT count(*) FROM numbers") == [["5000"]])

            struct Stop: Error {}
            await #expect(throws: Stop.self) {
                try await connection.copyIn(sql) { send in
                    try await send(tuples(6000...6010))
                    throw Stop()
                }
            }
            #expect(try await connection.query("SELECT count(*) FROM numbers") == [["5000"]], "the cancelled COPY left nothing")
            await #expect(throws: PGConnectionError.self) {
                try await connection.copyIn("SELECT 1") { _ in }
            }
            #expect(try await connection.query("SELECT 42") == [["42"]])
            await connection.close()
        }
    }
}
