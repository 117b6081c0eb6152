import FerryTestSupport
import Foundation
import Logging
import PostgresWire
import Synchronization
import Testing
@testable import FerryCore

/// A destination that keeps what it receives in memory and "stores" its position like a
/// transactional destination would (committed together with the transaction's changes).
extension Value {
    var isUnchangedToast: Bool { if case .unchangedToast = self { true } else { false } }
}

final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?
    func set(_ error: any Error) { lock.withLock { stored = error } }
    var error: (any Error)? { lock.withLock { stored } }
}

final class RecordingDestination: Destination, @unchecked Sendable {
    let name: String
    private let lock = NSLock()
    private var pending: [PipelineEvent] = []
    private(set) var committed: [[PipelineEvent]] = []
    private(set) var position: LSN?
    private(set) var snapshotRows: [(String, Row)] = []
    private(set) var opened = 0

    init(name: String = "recording") { self.name = name }

    func open() async throws -> DestinationResume {
        lock.withLock {
            opened += 1
            pending.removeAll()  // an open transaction dies with a crash
            return DestinationResume(durablePosition: position)
        }
    }

    func write(_ events: [PipelineEvent]) async throws {
        lock.withLock {
            for event in events {
                switch event {
                case .snapshotRow(let table, let row): snapshotRows.append((table.qualifiedName, row))
                case .begin: pending = [event]
                case .commit(_, let end):
                    pending.append(event)
                    committed.append(pending)
                    pending = []
                    position = end
                default: pending.append(event)
                }
            }
        }
    }

    func flush() async throws -> LSN? { lock.withLock { position } }
    func close() async throws {}

    var changes: [Change] {
        lock.withLock { committed.flatMap { $0 }.compactMap { if case .change(let c, _) = $0 { c } else { nil } } }
    }
}

@Suite struct PipelineStreamingTests {
    func configuration(_ database: TestDatabase, once: Bool = false) throws -> PipelineConfiguration {
        // Slot names are cluster-wide: name the pipeline after the test's own database.
        PipelineConfiguration(name: database.name, source: try ConnectionConfiguration.parse(database.url),
                              tables: ["public.*"], snapshot: .never, once: once)
    }

    @Test
    func streamsTypedChangesInCommitOrderAndResumesWithoutDuplicates() async throws {
        try await withTestDatabase(.trust, prefix: "pipeline") { database in
            try await database.psql("""
                CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), big text);
                ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
                """)
            let destination = RecordingDestination()
            let state = MemoryStateStore()
            var logger = Logger(label: "test"); logger.logLevel = .warning

            // First run: creates the publication and slot, streams until stopped.
            let first = Pipeline(configuration: try configuration(database), destinations: [destination], state: state, logger: logger)
            let failure = FailureBox()
            let running = Task { do { try await first.run() } catch { failure.set(error); throw error } }
            // Streaming, not only an active slot: while the slot is being created it is active
            // already, but transactions that commit before its consistent point are not sent.
            try await eventually("the pipeline to stream", timeout: .seconds(120)) {
                if let error = failure.error { throw error }
                return first.monitor.isReady
            }
            let big = String(repeating: "x", count: 9000)
            try await database.psql("INSERT INTO items VALUES (1, 'a', 1.50, '\(big)'), (2, 'b', 2.25, 'small')")
            try await database.psql("UPDATE items SET price = 9.99 WHERE id = 1")
            try await database.psql("DELETE FROM items WHERE id = 2")
            try await eventually("three transactions", timeout: .seconds(120)) {
                if let error = failure.error { Issue.record("the pipeline stopped: \(error)"); throw error }
                return destination.committed.count >= 3
            }
            first.stopper.requestStop()
            try await running.value

            let changes = destination.changes
            #expect(changes.count == 4)
            guard changes.count == 4 else { return }
            if case .insert(let table, let row) = changes[0] {
                #expect(table.qualifiedName == "public.items")
                #expect(row[0] == .int32(1))
                #expect(row[2] == .numeric("1.50"))
            } else { Issue.record("expected an insert, got \(changes[0])") }
            if case .update(_, _, _, let row) = changes[2] {
                #expect(row[2] == .numeric("9.99"))
                #expect(row[3].isUnchangedToast, "the unchanged TOAST column must arrive as unchangedToast, not NULL or a value")
            } else { Issue.record("expected an update, got \(changes[2])") }
            if case .delete(_, let old, let keyOnly) = changes[3] {
                #expect(keyOnly)
                #expect(old[0] == .int32(2))
            } else { Issue.record("expected a delete, got \(changes[3])") }

            // The slot was confirmed up to the last durable commit.
            let confirmed = try #require(LSN(try await database.psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry_\(database.name)'")))
            #expect(confirmed >= destination.position ?? .invalid)

            // Second run with --once: a new change arrives, nothing is delivered twice.
            try await database.psql("INSERT INTO items VALUES (3, 'c', 3.00, 'c')")
            let second = Pipeline(configuration: try configuration(database, once: true), destinations: [destination], state: state, logger: logger)
            try await second.run()
            let after = destination.changes
            #expect(after.count == 5)
            if case .insert(_, let row)? = after.last { #expect(row[0] == .int32(3)) } else { Issue.record("expected the new insert last") }
        }
    }

    @Test
    func aSchemaChangeArrivesBeforeTheNextChangeOfItsTable() async throws {
        try await withTestDatabase(.trust, prefix: "schema") { database in
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY, a text)")
            let destination = RecordingDestination()
            var logger = Logger(label: "test"); logger.logLevel = .warning
            let pipeline = Pipeline(configuration: try configuration(database), destinations: [destination], state: MemoryStateStore(), logger: logger)
            let running = Task { try await pipeline.run() }
            try await eventually("the pipeline to stream", timeout: .seconds(120)) { pipeline.monitor.isReady }
            try await database.psql("INSERT INTO t VALUES (1, 'x')")
            try await database.psql("ALTER TABLE t ADD COLUMN b int; ALTER TABLE t RENAME COLUMN a TO a2")
            try await database.psql("INSERT INTO t VALUES (2, 'y', 7)")
            do {
                try await eventually("two transactions", timeout: .seconds(120)) { destination.committed.count >= 2 }
            } catch {
                pipeline.stopper.requestStop()
                try await running.value
                Issue.record("received: \(destination.committed.map { $0.count })")
                throw error
            }
            pipeline.stopper.requestStop()
            try await running.value
            let second = destination.committed[1]
            let kinds = second.map { event -> String in
                switch event {
                case .begin: "begin"
                case .schemaChange: "schema"
                case .change: "change"
                case .commit: "commit"
                default: "other"
                }
            }
            #expect(kinds == ["begin", "schema", "change", "commit"])
            if case .schemaChange(let change) = second[1] {
                #expect(change.differences.contains(.columnAdded("b")))
                #expect(change.differences.contains(.columnRenamed(from: "a", to: "a2")))
            }
        }
    }

    /// A table named in the configuration that the existing publication does not publish (it
    /// was dropped and created again after the first run) stops the start with the fix,
    /// instead of streaming without its changes.
    @Test
    func aNamedTableMissingFromTheExistingPublicationIsAnErrorWithTheFix() async throws {
        try await withTestDatabase(.trust, prefix: "pubgap") { database in
            try await database.psql("CREATE TABLE kept (id int PRIMARY KEY); CREATE TABLE t (id int PRIMARY KEY)")
            var configuration = try configuration(database, once: true)
            configuration.tables = ["public.kept", "public.t"]
            let first = Pipeline(configuration: configuration, destinations: [RecordingDestination()], state: MemoryStateStore(), logger: quietLogger())
            try await first.run()
            try await database.psql("DROP TABLE t; CREATE TABLE t (id int PRIMARY KEY)")
            let second = Pipeline(configuration: configuration, destinations: [RecordingDestination()], state: MemoryStateStore(), logger: quietLogger())
            do {
                try await second.run()
                Issue.record("the pipeline started without public.t in its publication")
            } catch let error as FerryError {
                #expect(error.kind == .source)
                #expect(error.message.contains("does not publish public.t,") && !error.message.contains("public.kept"), "\(error.message)")
                #expect(error.fix == "ALTER PUBLICATION \"ferry_\(database.name)\" ADD TABLE \"public\".\"t\"; (or leave the table out of --tables)")
            }
            try await database.psql("SELECT pg_drop_replication_slot('ferry_\(database.name)')")
        }
    }
}
