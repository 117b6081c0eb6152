import FerryCore
import FerryTestSupport
import Logging
import PostgresReplication
import PostgresWire
import Synchronization
import Testing

/// A `StateStore` in memory, with a hook run at every `markChunkDone`.
actor SnapshotTestStateStore: StateStore {
    var done: [String: Set<Int>] = [:]
    var marks: [(table: String, chunk: Int)] = []
    private var records: [String: PipelineRecord] = [:]
    private var positions: [String: LSN] = [:]
    private let onMark: (@Sendable (String, Int) async -> Void)?

    init(done: [String: Set<Int>] = [:], onMark: (@Sendable (String, Int) async -> Void)? = nil) {
        self.done = done
        self.onMark = onMark
    }

    func pipeline(named name: String) async throws -> PipelineRecord? { records[name] }
    func savePipeline(_ record: PipelineRecord) async throws { records[record.name] = record }

    func markChunkDone(pipeline: String, table: String, chunk: Int) async throws {
        await onMark?(table, chunk)
        done[table, default: []].insert(chunk)
        marks.append((table, chunk))
    }

    func doneChunks(pipeline: String, table: String) async throws -> Set<Int> { done[table] ?? [] }

    func saveDestinationPosition(pipeline: String, destination: String, position: LSN) async throws {
        positions[destination] = position
    }

    func destinationPosition(pipeline: String, destination: String) async throws -> LSN? { positions[destination] }

    func reset(pipeline: String) async throws {
        done = [:]
        marks = []
    }
}

/// A sink that keeps every event and counts writes and flushes.
actor SnapshotCollectingSink: SnapshotSink {
    var events: [PipelineEvent] = []
    var writes = 0
    var flushes = 0
    /// Rows written since the last flush.
    var unflushedRows = 0
    var maximumBatch = 0
    /// Set while a call runs, to catch overlapping calls.
    private var busy = false
    var overlapped = false

    func write(_ events: [PipelineEvent]) async throws {
        if busy { overlapped = true }
        busy = true
        defer { busy = false }
        await Task.yield()  // give overlapping calls a chance to show
        self.events += events
        writes += 1
        let rows = events.filter { if case .snapshotRow = $0 { true } else { false } }.count
        unflushedRows += rows
        maximumBatch = max(maximumBatch, rows)
    }

    func flush() async throws {
        if busy { overlapped = true }
        flushes += 1
        unflushedRows = 0
    }

    /// The snapshot rows, in delivery order.
    var rows: [Row] {
        events.compactMap { if case .snapshotRow(_, let row) = $0 { row } else { nil } }
    }

    /// Rows per table name.
    func rows(of table: String) -> [Row] {
        events.compactMap {
            if case .snapshotRow(let schema, let row) = $0, schema.qualifiedName == table { row } else { nil }
        }
    }

    /// Checks per-table framing: one started before the first row, one finished after the last.
    func framingProblems() -> [String] {
        var problems: [String] = []
        var state: [String: Int] = [:]  // 0 absent, 1 started, 2 finished
        for event in events {
            switch event {
            case .snapshotTableStarted(let table):
                if state[table.qualifiedName, default: 0] != 0 { problems.append("\(table) started twice") }
                state[table.qualifiedName] = 1
            case .snapshotRow(let table, _):
                if state[table.qualifiedName, default: 0] != 1 { problems.append("\(table) row outside started/finished") }
            case .snapshotTableFinished(let table):
                if state[table.qualifiedName, default: 0] != 1 { problems.append("\(table) finished without start") }
                state[table.qualifiedName] = 2
            default:
                problems.append("unexpected event \(event)")
            }
        }
        for (table, value) in state where value != 2 { problems.append("\(table) not finished") }
        return problems
    }
}

extension TestDatabase {
    var snapshotConfiguration: ConnectionConfiguration {
        get throws { try ConnectionConfiguration.parse(url, systemUserName: "ferry") }
    }

    /// A plain (non-replication) connection with Ferry's client.
    func snapshotConnection() async throws -> PGConnection {
        let connection = try await PGConnection.connect(try snapshotConfiguration, replication: .some(nil))
        try await connection.simpleQuery(
            "SET DateStyle = ISO; SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET IntervalStyle = postgres")
        return connection
    }

    /// Rows of `sql` as text, through Ferry's client (with the snapshot's session settings).
    func snapshotTextRows(_ sql: String) async throws -> [[String?]] {
        let connection = try await snapshotConnection()
        do {
            let rows = try await connection.query(sql)
            await connection.close()
            return rows
        } catch {
            await connection.close()
            throw error
        }
    }

    func snapshotTables(_ selectors: [TableSelector]) async throws -> [SnapshotTable] {
        let connection = try await snapshotConnection()
        do {
            let tables = try await SourceCatalog(connection).tables(selectors)
            await connection.close()
            return tables
        } catch {
            await connection.close()
            throw error
        }
    }
}

/// A row as text, `NULL` for NULL.
func snapshotText(_ row: Row) -> [String] {
    row.map { $0.postgresText ?? "NULL" }
}

/// The first column as an integer.
func snapshotID(_ row: Row) -> Int {
    switch row[0] {
    case .int16(let value): Int(value)
    case .int32(let value): Int(value)
    case .int64(let value): Int(value)
    default: -1
    }
}

/// Big-endian bytes for hand-made binary COPY streams.
struct SnapshotBytes {
    var bytes: [UInt8]

    init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    func u8(_ value: UInt8) -> SnapshotBytes { raw([value]) }
    func i16(_ value: Int16) -> SnapshotBytes { integer(value) }
    func i32(_ value: Int32) -> SnapshotBytes { integer(value) }
    func u32(_ value: UInt32) -> SnapshotBytes { integer(value) }
    func raw(_ more: [UInt8]) -> SnapshotBytes { SnapshotBytes(bytes + more) }
    /// Int32 length + bytes; nil is NULL (-1).
    func field(_ more: [UInt8]?) -> SnapshotBytes {
        guard let more else { return i32(-1) }
        return i32(Int32(more.count)).raw(more)
    }

    private func integer<T: FixedWidthInteger>(_ value: T) -> SnapshotBytes {
        withUnsafeBytes(of: value.bigEndian) { raw(Array($0)) }
    }
}

/// Log entries captured by ``SnapshotCapturingLogHandler``.
final class SnapshotLogCapture: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let storage = Mutex<[Entry]>([])

    var entries: [Entry] { storage.withLock { $0 } }

    func append(_ entry: Entry) { storage.withLock { $0.append(entry) } }
}

struct SnapshotCapturingLogHandler: LogHandler {
    let capture: SnapshotLogCapture
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        capture.append(.init(level: event.level, message: event.message.description,
                             metadata: merged.mapValues { "\($0)" }))
    }
}
