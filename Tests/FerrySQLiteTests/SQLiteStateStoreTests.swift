import FerryCore
import FerrySQLite
import PostgresWire
import Testing

@Suite struct SQLiteStateStoreTests {
    @Test func everyMethodRoundTripsAndSurvivesReopening() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/state.db"
            let record = PipelineRecord(name: "p", slot: "ferry_p", publication: "pub", consistentPoint: LSN(0x1_0000_0010),
                                        snapshot: .copying, tables: ["public.b", "public.a", "s.\"odd\""])
            do {
                let store = try SQLiteStateStore(path: path)
                #expect(try await store.pipeline(named: "p") == nil)
                try await store.savePipeline(record)
                #expect(try await store.pipeline(named: "p") == record)

                try await store.markChunkDone(pipeline: "p", table: "public.a", chunk: 0)
                try await store.markChunkDone(pipeline: "p", table: "public.a", chunk: 2)
                try await store.markChunkDone(pipeline: "p", table: "public.a", chunk: 2) // again: no error
                try await store.markChunkDone(pipeline: "p", table: "public.b", chunk: 1)
                #expect(try await store.doneChunks(pipeline: "p", table: "public.a") == [0, 2])
                #expect(try await store.doneChunks(pipeline: "p", table: "public.c") == [])

                #expect(try await store.destinationPosition(pipeline: "p", destination: "sqlite") == nil)
                try await store.saveDestinationPosition(pipeline: "p", destination: "sqlite", position: LSN(0x20))
                try await store.saveDestinationPosition(pipeline: "p", destination: "sqlite", position: LSN(0xFFFF_FFFF_0000_0030))
                try await store.saveDestinationPosition(pipeline: "p", destination: "jsonl", position: LSN(0x10))
                #expect(try await store.destinationPosition(pipeline: "p", destination: "sqlite") == LSN(0xFFFF_FFFF_0000_0030))

                // Another pipeline in the same file.
                try await store.savePipeline(PipelineRecord(name: "q", slot: "ferry_q", publication: "pub", consistentPoint: LSN(1),
                                                            snapshot: .skipped, tables: []))
                try await store.markChunkDone(pipeline: "q", table: "public.a", chunk: 7)
            }
            // Reopened: everything is there.
            let store = try SQLiteStateStore(path: path)
            #expect(try await store.pipeline(named: "p") == record)
            #expect(try await store.doneChunks(pipeline: "p", table: "public.a") == [0, 2])
            #expect(try await store.doneChunks(pipeline: "p", table: "public.b") == [1])
            #expect(try await store.destinationPosition(pipeline: "p", destination: "sqlite") == LSN(0xFFFF_FFFF_0000_0030))
            #expect(try await store.destinationPosition(pipeline: "p", destination: "jsonl") == LSN(0x10))

            // Saving again replaces the record, tables included.
            var updated = record
            updated.snapshot = .complete
            updated.tables = ["public.a"]
            updated.consistentPoint = LSN(0x99)
            try await store.savePipeline(updated)
            #expect(try await store.pipeline(named: "p") == updated)

            // Reset forgets one pipeline only.
            try await store.reset(pipeline: "p")
            #expect(try await store.pipeline(named: "p") == nil)
            #expect(try await store.doneChunks(pipeline: "p", table: "public.a") == [])
            #expect(try await store.destinationPosition(pipeline: "p", destination: "sqlite") == nil)
            #expect(try await store.pipeline(named: "q")?.snapshot == .skipped)
            #expect(try await store.doneChunks(pipeline: "q", table: "public.a") == [7])
        }
    }

    @Test func theFileIsInWALModeAndReadable() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir + "/state.db"
            let store = try SQLiteStateStore(path: path)
            try await store.saveDestinationPosition(pipeline: "p", destination: "d", position: LSN(0x16_B374_D848))
            let db = try SQLiteConnection(path: path, readOnly: true)
            #expect(try db.query("PRAGMA journal_mode") == [[.text("wal")]])
            #expect(try db.query("SELECT lsn FROM destination_positions") == [[.text("16/B374D848")]])
        }
    }

    @Test func aMissingDirectoryIsAClearError() throws {
        #expect {
            _ = try SQLiteStateStore(path: "/nonexistent-ferry-dir/state.db")
        } throws: { error in
            "\(error)".contains("/nonexistent-ferry-dir/state.db")
        }
    }
}

@Suite struct SQLiteConnectionTests {
    @Test func bindStepAndReadEveryStorageClass() throws {
        let db = try SQLiteConnection(path: ":memory:")
        try db.execute("CREATE TABLE t(a, b, c, d, e)")
        let values: [SQLiteValue] = [.null, .integer(.min), .real(-0.25), .text("zoë \"quoted\" 'x'"), .blob([0, 0xFF])]
        #expect(try db.run("INSERT INTO t VALUES (?, ?, ?, ?, ?)", values) == 1)
        #expect(try db.run("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [.text(""), .integer(1), .real(2), .text(""), .blob([])]) == 1)
        #expect(try db.query("SELECT * FROM t WHERE b < 0") == [values])
        #expect(try db.query("SELECT typeof(a), typeof(e), length(e) FROM t WHERE b = 1") == [[.text("text"), .text("blob"), .integer(0)]])
    }

    @Test func errorsCarrySQLitesMessageAndTheSQL() throws {
        let db = try SQLiteConnection(path: ":memory:")
        #expect {
            try db.execute("SELEC 1")
        } throws: { error in
            guard let error = error as? SQLiteError else { return false }
            return error.sql == "SELEC 1" && error.message.contains("syntax error")
        }
        try db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
        try db.run("INSERT INTO t VALUES (1)")
        #expect {
            try db.run("INSERT INTO t VALUES (1)")
        } throws: { error in
            guard let error = error as? SQLiteError else { return false }
            return error.primaryCode == 19 /* SQLITE_CONSTRAINT */ && error.message.contains("UNIQUE")
        }
    }

    @Test func transactionsCommitOrRollBack() throws {
        let db = try SQLiteConnection(path: ":memory:")
        try db.execute("CREATE TABLE t(x)")
        try db.transaction { try db.run("INSERT INTO t VALUES (1)") }
        struct Failure: Error {}
        #expect(throws: Failure.self) {
            try db.transaction {
                try db.run("INSERT INTO t VALUES (2)")
                #expect(db.isInTransaction)
                throw Failure()
            }
        }
        #expect(!db.isInTransaction)
        #expect(try db.query("SELECT x FROM t") == [[.integer(1)]])
    }

    @Test func preparedStatementsAreCachedBySQL() throws {
        let db = try SQLiteConnection(path: ":memory:")
        let first = try db.prepare("SELECT ?")
        let second = try db.prepare("SELECT ?")
        #expect(first === second)
        try second.bind(Int64(42), at: 1)
        #expect(try second.step())
        #expect(second.int64(at: 0) == 42)
        #expect(second.columnName(at: 0) == "?")
        db.close()
        #expect(throws: SQLiteError.self) { try db.execute("SELECT 1") }
    }
}
