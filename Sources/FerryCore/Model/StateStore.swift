import PostgresWire

/// Where a pipeline keeps what it must remember across restarts when its destinations cannot
/// keep it themselves: the slot it owns, snapshot progress per chunk, and the durable position
/// of each destination. The default is a local SQLite file (`FerrySQLite.SQLiteStateStore`).
///
/// Every method is durable when it returns.
public protocol StateStore: Sendable {
    /// The pipeline's record, or nil on first start.
    func pipeline(named name: String) async throws -> PipelineRecord?

    func savePipeline(_ record: PipelineRecord) async throws

    /// Records that a snapshot chunk was delivered and made durable by every destination.
    func markChunkDone(pipeline: String, table: String, chunk: Int) async throws

    /// The chunks of `table` already done.
    func doneChunks(pipeline: String, table: String) async throws -> Set<Int>

    func saveDestinationPosition(pipeline: String, destination: String, position: LSN) async throws

    func destinationPosition(pipeline: String, destination: String) async throws -> LSN?

    /// Forgets everything about a pipeline (after its slot was dropped, before a re-snapshot).
    func reset(pipeline: String) async throws
}

/// What a pipeline remembers about itself.
public struct PipelineRecord: Sendable, Hashable {
    public enum SnapshotPhase: String, Sendable, Hashable {
        /// Recorded just before the slot is created: if the process dies before the next
        /// phase is saved, the slot (if it was created) delivered nothing yet, and the next
        /// start drops it and begins again — instead of mistaking it for a user's slot and
        /// skipping the snapshot.
        case creatingSlot = "creating_slot"
        /// The slot exists; the snapshot has not finished.
        case copying
        /// Every table was copied; the pipeline streams.
        case complete
        /// No snapshot was asked for (`--snapshot never`).
        case skipped
    }

    public var name: String
    public var slot: String
    public var publication: String
    /// The slot's consistent point: streaming starts there after the snapshot.
    public var consistentPoint: LSN
    public var snapshot: SnapshotPhase
    /// The tables the snapshot covers, schema-qualified.
    public var tables: [String]

    public init(name: String, slot: String, publication: String, consistentPoint: LSN, snapshot: SnapshotPhase, tables: [String]) {
        self.name = name
        self.slot = slot
        self.publication = publication
        self.consistentPoint = consistentPoint
        self.snapshot = snapshot
        self.tables = tables
    }
}

/// A state store that keeps everything in memory: positions and snapshot progress are lost
/// when the process ends. For tests, and for pipelines whose destinations store their own
/// position (exactly-once destinations re-read it at open).
public actor MemoryStateStore: StateStore {
    private var records: [String: PipelineRecord] = [:]
    private var chunks: [String: Set<Int>] = [:]
    private var positions: [String: LSN] = [:]

    public init() {}

    public func pipeline(named name: String) -> PipelineRecord? { records[name] }
    public func savePipeline(_ record: PipelineRecord) { records[record.name] = record }
    public func markChunkDone(pipeline: String, table: String, chunk: Int) { chunks[pipeline + "/" + table, default: []].insert(chunk) }
    public func doneChunks(pipeline: String, table: String) -> Set<Int> { chunks[pipeline + "/" + table] ?? [] }
    public func saveDestinationPosition(pipeline: String, destination: String, position: LSN) { positions[pipeline + "/" + destination] = position }
    public func destinationPosition(pipeline: String, destination: String) -> LSN? { positions[pipeline + "/" + destination] }
    public func reset(pipeline: String) {
        records[pipeline] = nil
        chunks = chunks.filter { !$0.key.hasPrefix(pipeline + "/") }
        positions = positions.filter { !$0.key.hasPrefix(pipeline + "/") }
    }
}
