import Logging
import NIOCore
import PostgresReplication
import PostgresWire
import Synchronization

/// Where the snapshot delivers what it reads: the pipeline, which forwards to its destinations.
///
/// ## Contract
/// - Calls never overlap: the coordinator makes one call at a time, whatever its parallelism.
/// - Per table, events come in order: ``PipelineEvent/snapshotTableStarted(_:)`` before any
///   ``PipelineEvent/snapshotRow(table:row:)`` of the table, then its rows (chunks read in
///   parallel interleave, also with other tables' events), then
///   ``PipelineEvent/snapshotTableFinished(_:)`` after the last row. A batch is bounded by
///   ``SnapshotOptions/batchRows`` and ``SnapshotOptions/batchBytes``.
/// - ``flush()`` returns once everything written so far is durable in every destination. A
///   chunk is recorded as done in the ``StateStore`` only after a `flush()` that followed its
///   last row returned; until then a restart reads it again (delivery is at-least-once, so
///   destinations must apply snapshot rows idempotently, as upserts by key).
/// - On resume, `snapshotTableStarted` comes again for a table whose earlier chunks were
///   delivered by a previous run: it must not clear the table.
public protocol SnapshotSink: Sendable {
    func write(_ events: [PipelineEvent]) async throws
    func flush() async throws
    /// Whether `table`'s rows may come undecoded, as ``PipelineEvent/snapshotCopyRows(table:rows:)``
    /// (asked once per table, before any of its events; the default is no).
    func acceptsBinaryCopyRows(for table: TableSchema) async throws -> Bool
}

extension SnapshotSink {
    public func acceptsBinaryCopyRows(for table: TableSchema) async throws -> Bool { false }
}

public struct SnapshotOptions: Sendable, Hashable {
    /// Connections reading chunks at once (each a backend on the source, besides the
    /// replication connection that exported the snapshot).
    public var parallelism: Int
    public var chunkSize: SnapshotChunkSize
    /// A delivery holds at most this many rows…
    public var batchRows: Int
    /// …and about this many bytes of binary COPY data (one row may exceed it).
    public var batchBytes: Int

    public init(parallelism: Int = 4, chunkSize: SnapshotChunkSize = .defaultSize, batchRows: Int = 5_000,
                batchBytes: Int = 4 << 20) {
        self.parallelism = parallelism
        self.chunkSize = chunkSize
        self.batchRows = batchRows
        self.batchBytes = batchBytes
    }
}

/// What a snapshot run did.
public struct SnapshotSummary: Sendable {
    /// The tables, as the catalog described them inside the snapshot.
    public var tables: [SnapshotTable]
    public var progress: SnapshotProgress
}

/// Copies the initial data of tables from the source, in parallel, consistent with a
/// replication slot.
///
/// ## How it reads
/// N connections (``SnapshotOptions/parallelism``) each open one transaction
/// `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY` and, given an exported snapshot,
/// `SET TRANSACTION SNAPSHOT '<name>'`, so every worker sees the database exactly as of the
/// slot's consistent point. The first worker reads the tables' definitions and the source's
/// types inside that snapshot. Each table is split into CTID page ranges
/// (``SnapshotChunkPlanner``); workers take chunks in table order and read each with
/// `COPY (SELECT cols FROM ONLY t WHERE ctid-range) TO STDOUT (FORMAT binary)`, parse the
/// stream incrementally (``BinaryCopyParser``), decode values with ``ValueDecoder`` and hand
/// bounded batches to the ``SnapshotSink``. Memory is bounded per worker by the batch limits
/// and the connection's receive buffer, whatever the table size: while the sink is busy, the
/// workers stop reading and TCP pushes back on the server.
///
/// ## Resume and consistency
/// Chunks are recorded in the ``StateStore`` (per table, by ``SnapshotChunk/id``, which names
/// the page range) once the sink made them durable; a later run skips their pages.
///
/// The exported snapshot lives only as long as the replication connection that created the
/// slot stays open and idle, so a resumed run usually has none: each worker then takes a fresh
/// `REPEATABLE READ` snapshot, later than the slot's consistent point. That stays consistent
/// because the stream replays every change committed after the consistent point, and
/// destinations apply snapshot rows and changes idempotently (upserts and deletes by key): a
/// row read "too late" already holds changes the stream will apply again (same result), a row
/// deleted before it was read is deleted again by the stream (a no-op), and rows inserted after
/// the consistent point arrive by the stream even when their pages were read before they
/// existed. The destinations converge to the source once the stream passes the moment the last
/// chunk was read.
///
/// The caller keeps the exporting replication connection open and idle until ``run(into:reporter:)``
/// returns.
public final class SnapshotCoordinator: Sendable {
    public let source: ConnectionConfiguration
    public let tables: [TableSelector]
    /// The snapshot exported by `CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')`, or nil to read
    /// with a fresh snapshot per worker (resuming; see the type's documentation).
    public let snapshotName: String?
    public let stateStore: any StateStore
    public let pipeline: String
    public let options: SnapshotOptions
    let logger: Logger
    private let tracker = ProgressTracker()

    public init(source: ConnectionConfiguration, tables: [TableSelector], snapshotName: String?,
                stateStore: any StateStore, pipeline: String, options: SnapshotOptions = SnapshotOptions(),
                logger: Logger = Logger(label: "ferry.snapshot")) {
        self.source = source
        self.tables = tables
        self.snapshotName = snapshotName
        self.stateStore = stateStore
        self.pipeline = pipeline
        self.options = options
        self.logger = logger
    }

    /// The progress of the current (or last) run.
    public var progress: SnapshotProgress { tracker.current }

    /// The session settings of every snapshot connection (values are decoded from binary, but
    /// anything rendered as text on these connections uses Ferry's settings).
    static let sessionSettings = """
        SET DateStyle = ISO; SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET IntervalStyle = postgres; \
        SET bytea_output = hex; SET client_encoding = 'UTF8'; SET standard_conforming_strings = on; \
        SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0
        """

    /// Copies every chunk not yet done into `sink`, and returns when all are done and durable.
    ///
    /// - Parameter reporter: shows progress while the run lasts (one last time at the end).
    /// - Throws: ``SnapshotError`` (a missing table, a lost snapshot, malformed data),
    ///   `PGConnectionError`, or what the sink or the state store throw. Chunks done before the
    ///   failure stay recorded.
    @discardableResult
    public func run(into sink: any SnapshotSink, reporter: SnapshotProgressReporter? = nil) async throws -> SnapshotSummary {
        guard options.parallelism >= 1, options.batchRows >= 1, options.batchBytes >= 1 else {
            throw SnapshotError(.invalidOptions, "snapshot parallelism and batch sizes must be at least 1 (parallelism \(options.parallelism))",
                                fix: "set the snapshot parallelism to 1 or more")
        }
        tracker.reset()
        guard let reporter else { return try await copy(into: sink) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            let tracker = self.tracker
            group.addTask { await reporter.run { tracker.current } }
            defer { group.cancelAll() }
            return try await copy(into: sink)
        }
    }

    // MARK: Running

    private func copy(into sink: any SnapshotSink) async throws -> SnapshotSummary {
        let first = try await openWorker(0)
        let tables: [SnapshotTable]
        let decoder: ValueDecoder
        var items: [SnapshotWorkItem] = []
        var remaining: [UInt32: Int] = [:]
        var progress = SnapshotProgress()
        do {
            let catalog = SourceCatalog(first)
            tables = try await catalog.tables(self.tables)
            decoder = ValueDecoder(registry: try await catalog.typeRegistry())
            let planner = SnapshotChunkPlanner(chunkSize: options.chunkSize)
            progress.tablesTotal = tables.count
            for table in tables {
                let done = try await stateStore.doneChunks(pipeline: pipeline, table: table.schema.qualifiedName)
                let chunks = planner.plan(table, done: done)
                progress.chunksSkipped += done.count
                progress.chunksTotal += done.count + chunks.count
                progress.pagesTotal += chunks.reduce(0) { $0 + $1.estimatedPages }
                if chunks.isEmpty { progress.tablesDone += 1 }
                remaining[table.schema.relationID] = chunks.count
                items += chunks.map { SnapshotWorkItem(table: table, chunk: $0) }
            }
            progress.chunksDone = progress.chunksSkipped
        } catch {
            await first.close()
            throw error
        }
        let workers = min(options.parallelism, items.count)
        logger.info("snapshot starting", metadata: [
            "tables": "\(tables.count)", "chunks": "\(items.count)", "chunks_already_done": "\(progress.chunksSkipped)",
            "workers": "\(workers)", "snapshot": "\(snapshotName ?? "fresh per worker (resume)")",
        ])
        tracker.start(progress)
        guard workers > 0 else {
            await finishWorker(first)
            tracker.complete()
            return SnapshotSummary(tables: tables, progress: tracker.current)
        }

        // Tables whose rows the destinations take undecoded (binary COPY tuples as read).
        var undecoded = Set<UInt32>()
        do {
            for table in tables where (remaining[table.schema.relationID] ?? 0) > 0 {
                if try await sink.acceptsBinaryCopyRows(for: table.schema) { undecoded.insert(table.schema.relationID) }
            }
        } catch {
            await first.close()
            throw error
        }
        if !undecoded.isEmpty {
            logger.info("snapshot rows go to the destination undecoded (binary COPY)", metadata: [
                "tables": "\(tables.filter { undecoded.contains($0.schema.relationID) }.map(\.schema.qualifiedName).joined(separator: ", "))",
            ])
        }
        let queue = SnapshotWorkQueue(items)
        let delivery = SnapshotDelivery(sink: sink, remainingChunks: remaining)
        let context = WorkerContext(queue: queue, delivery: delivery, decoder: decoder, undecoded: undecoded)
        let handover = ConnectionHandover(first)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await self.work(handover.connection, worker: 0, context: context)
            }
            for worker in 1..<workers {
                group.addTask {
                    let connection: PGConnection
                    do {
                        connection = try await self.openWorker(worker)
                    } catch {
                        // Fewer workers still finish the job (e.g. the server is out of connection slots).
                        self.logger.warning("snapshot worker could not start; continuing with fewer workers", metadata: [
                            "worker": "\(worker)", "error": "\(error)",
                        ])
                        return
                    }
                    try await self.work(connection, worker: worker, context: context)
                }
            }
            try await group.waitForAll()
        }
        tracker.complete()
        let final = tracker.current
        logger.info("snapshot finished", metadata: [
            "tables": "\(tables.count)", "chunks": "\(final.chunksDone - final.chunksSkipped)", "rows": "\(final.rows)",
            "bytes": "\(final.bytes)", "seconds": "\(final.elapsed.components.seconds)",
        ])
        return SnapshotSummary(tables: tables, progress: final)
    }

    private struct WorkerContext: Sendable {
        var queue: SnapshotWorkQueue
        var delivery: SnapshotDelivery
        var decoder: ValueDecoder
        var undecoded: Set<UInt32>
    }

    /// Connects, applies the session settings and opens the snapshot transaction.
    private func openWorker(_ worker: Int) async throws -> PGConnection {
        let connection = try await PGConnection.connect(source, replication: .some(nil), receiveBufferLimit: 1 << 20, logger: logger)
        do {
            try await connection.simpleQuery(Self.sessionSettings)
            try await connection.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if let snapshotName {
                do {
                    try await connection.simpleQuery("SET TRANSACTION SNAPSHOT \(SnapshotSQL.literal(snapshotName))")
                } catch let error as PGConnectionError where error.serverError != nil {
                    throw SnapshotError(.snapshotNotAvailable,
                        "could not import the exported snapshot \"\(snapshotName)\": \(error.serverError?.message ?? error.message)",
                        fix: "keep the replication connection that created the slot open and idle (it must run no other command) until the snapshot is done; if it is gone, resume without the snapshot name (Ferry reads the remaining chunks with fresh snapshots and the stream converges them)",
                        underlying: nil)
                }
            }
            return connection
        } catch {
            await connection.close()
            throw error
        }
    }

    private func finishWorker(_ connection: PGConnection) async {
        _ = try? await connection.simpleQuery("COMMIT")
        await connection.close()
    }

    private func work(_ connection: PGConnection, worker: Int, context: WorkerContext) async throws {
        do {
            while let item = context.queue.next() {
                try Task.checkCancellation()
                try await copyChunk(item, on: connection, worker: worker, context: context)
            }
        } catch {
            await connection.close()
            throw error
        }
        await finishWorker(connection)
    }

    private func copyChunk(_ item: SnapshotWorkItem, on connection: PGConnection, worker: Int, context: WorkerContext) async throws {
        let table = item.table, chunk = item.chunk, schema = table.schema
        let started = ContinuousClock.now
        let delivery = context.delivery, tracker = self.tracker
        let undecoded = context.undecoded.contains(schema.relationID)
        var batch = ChunkBatch(schema: schema, chunk: chunk, options: options, decoder: undecoded ? nil : context.decoder)
        var parser = BinaryCopyParser()
        var rows = 0
        try await connection.copyOut(Self.copyStatement(table, chunk)) { data in
            try Task.checkCancellation()
            tracker.add(bytes: data.readableBytes)
            try parser.append(data)
            while let tuple = try parser.nextTuple() {
                if let full = try batch.add(tuple) {
                    try await delivery.write(full.events, table: schema)
                    tracker.add(rows: full.rows)
                    rows += full.rows
                }
            }
        }
        try parser.finish()
        let last = batch.take()
        let tableFinished = try await delivery.finishChunk(last.events, table: schema)
        tracker.add(rows: last.rows)
        rows += last.rows
        try await stateStore.markChunkDone(pipeline: pipeline, table: chunk.table, chunk: chunk.id)
        tracker.chunkDone(pages: chunk.estimatedPages, tableFinished: tableFinished)
        logger.debug("snapshot chunk done", metadata: [
            "table": "\(schema.qualifiedName)", "chunk": "\(chunk)", "rows": "\(rows)", "worker": "\(worker)",
            "duration": "\(started.duration(to: .now))", "undecoded": "\(undecoded)",
        ])
    }

    /// `COPY (SELECT "a", "b" FROM ONLY "s"."t" WHERE ctid >= … AND ctid < …) TO STDOUT (FORMAT binary)`.
    public static func copyStatement(_ table: SnapshotTable, _ chunk: SnapshotChunk) -> String {
        let columns = table.schema.columns.map { SnapshotSQL.identifier($0.name) }.joined(separator: ", ")
        // ONLY: rows of inheritance children are not the parent's (pgoutput publishes them as the
        // child's). A partitioned table is read through its root, which needs no ONLY.
        let from = (table.kind == .partitioned ? "" : "ONLY ") + SnapshotSQL.qualified(table.schema)
        var conditions: [String] = []
        if let predicate = chunk.ctidPredicate { conditions.append(predicate) }
        if let filter = table.rowFilter { conditions.append("(\(filter))") }
        var select = "SELECT \(columns) FROM \(from)"
        if !conditions.isEmpty { select += " WHERE " + conditions.joined(separator: " AND ") }
        return "COPY (\(select)) TO STDOUT (FORMAT binary)"
    }

    /// A tuple must have one field per column of the table read.
    static func checkFieldCount(_ tuple: BinaryCopyParser.Tuple, table: TableSchema, chunk: SnapshotChunk) throws {
        guard tuple.fieldCount == table.columns.count else {
            throw SnapshotError(.columnMismatch,
                "a row of \(table.qualifiedName) (\(chunk)) has \(tuple.fieldCount) columns; the table's definition has \(table.columns.count)",
                fix: "the table changed while the snapshot started; run again")
        }
    }

    static func decodeRow(_ tuple: BinaryCopyParser.Tuple, table: TableSchema, chunk: SnapshotChunk,
                          decoder: ValueDecoder) throws -> Row {
        let columns = table.columns
        try checkFieldCount(tuple, table: table, chunk: chunk)
        var row = Row()
        row.reserveCapacity(columns.count)
        try tuple.forEachField { index, bytes in
            guard let bytes else {
                row.append(.null)
                return
            }
            let column = columns[index]
            do {
                row.append(try decoder.decode(typeOID: column.typeOID, typeModifier: column.typeModifier, format: .binary, bytes: bytes))
            } catch {
                throw SnapshotError(.valueDecoding,
                    "could not decode column \(column.name) (type \(column.typeName ?? "OID \(column.typeOID)")) of \(table.qualifiedName) in \(chunk)",
                    fix: "report it with the column's type; leave the table out of the pipeline meanwhile", underlying: error)
            }
        }
        return row
    }
}

/// A chunk's rows waiting to be delivered, bounded by ``SnapshotOptions/batchRows`` and
/// ``SnapshotOptions/batchBytes``: decoded into `snapshotRow` events, or — without a decoder —
/// kept as the binary tuples the source sent, one ``PipelineEvent/snapshotCopyRows(table:rows:)``
/// per batch (its buffer allocated once, at `batchBytes`: a batch is handed out before it would
/// outgrow it, a single larger tuple making a batch of its own).
struct ChunkBatch {
    let schema: TableSchema
    let chunk: SnapshotChunk
    let options: SnapshotOptions
    /// Nil: the rows stay undecoded.
    let decoder: ValueDecoder?
    private var events: [PipelineEvent] = []
    private var tuples = ByteBuffer()
    private var bytes = 0
    private var count = 0

    init(schema: TableSchema, chunk: SnapshotChunk, options: SnapshotOptions, decoder: ValueDecoder?) {
        self.schema = schema
        self.chunk = chunk
        self.options = options
        self.decoder = decoder
        if decoder != nil { events.reserveCapacity(min(options.batchRows, 1024)) }
    }

    /// Adds a tuple; returns a full batch to deliver now, if this one completed it (decoded)
    /// or would have outgrown it (undecoded: the batch before the tuple).
    mutating func add(_ tuple: BinaryCopyParser.Tuple) throws -> (events: [PipelineEvent], rows: Int)? {
        guard let decoder else {
            try SnapshotCoordinator.checkFieldCount(tuple, table: schema, chunk: chunk)
            let full = count > 0 && tuples.readableBytes + tuple.byteCount > options.batchBytes ? take() : nil
            if count == 0 { tuples.reserveCapacity(max(options.batchBytes, tuple.byteCount)) }
            tuple.write(to: &tuples)
            count += 1
            return full
        }
        events.append(.snapshotRow(table: schema, row: try SnapshotCoordinator.decodeRow(tuple, table: schema, chunk: chunk, decoder: decoder)))
        bytes += tuple.byteCount
        count += 1
        return count >= options.batchRows || bytes >= options.batchBytes ? take() : nil
    }

    /// The rows gathered so far (no event when there are none), and an empty batch.
    mutating func take() -> (events: [PipelineEvent], rows: Int) {
        defer {
            events.removeAll(keepingCapacity: true)
            tuples = ByteBuffer()
            bytes = 0
            count = 0
        }
        if decoder != nil { return (events, count) }
        return (count == 0 ? [] : [.snapshotCopyRows(table: schema, rows: BinaryCopyRows(tuples: tuples, count: count))], count)
    }
}

// MARK: - Shared state of a run

/// Moves the first worker's connection (opened to read the catalog inside the snapshot) into
/// its worker task. The connection is used by one task at a time: the coordinator stops
/// touching it before the worker starts.
private struct ConnectionHandover: @unchecked Sendable {
    let connection: PGConnection

    init(_ connection: PGConnection) { self.connection = connection }
}

/// A chunk to read, with its table.
struct SnapshotWorkItem: Sendable {
    var table: SnapshotTable
    var chunk: SnapshotChunk
}

/// The chunks still to read, handed out in order.
final class SnapshotWorkQueue: Sendable {
    private let state: Mutex<(items: [SnapshotWorkItem], next: Int)>

    init(_ items: [SnapshotWorkItem]) {
        state = Mutex((items, 0))
    }

    func next() -> SnapshotWorkItem? {
        state.withLock { state in
            guard state.next < state.items.count else { return nil }
            defer { state.next += 1 }
            return state.items[state.next]
        }
    }
}

/// Serializes the workers' calls to the sink and keeps per-table order: started before the
/// first row, finished after the last chunk's rows; flushes before a chunk may count as done.
final class SnapshotDelivery: Sendable {
    private struct State {
        var started = Set<UInt32>()
        var remainingChunks: [UInt32: Int]
        var writes = 0
        var durableWrites = 0
    }

    let sink: any SnapshotSink
    private let lock = AsyncLock()
    private let state: Mutex<State>

    init(sink: any SnapshotSink, remainingChunks: [UInt32: Int]) {
        self.sink = sink
        self.state = Mutex(State(remainingChunks: remainingChunks))
    }

    /// Writes a batch of a chunk's rows.
    func write(_ rows: [PipelineEvent], table: TableSchema) async throws {
        await lock.lock()
        defer { lock.unlock() }
        try Task.checkCancellation()
        try await sink.write(withStart(rows, table: table))
        state.withLock { $0.writes += 1 }
    }

    /// Writes a chunk's last rows (and the table's end after its last chunk), then makes
    /// everything written durable. Returns whether the table is finished.
    func finishChunk(_ rows: [PipelineEvent], table: TableSchema) async throws -> Bool {
        await lock.lock()
        defer { lock.unlock() }
        try Task.checkCancellation()
        var events = withStart(rows, table: table)
        let last = state.withLock { state in
            let left = (state.remainingChunks[table.relationID] ?? 1) - 1
            state.remainingChunks[table.relationID] = left
            return left <= 0
        }
        if last { events.append(.snapshotTableFinished(table)) }
        if !events.isEmpty {
            try await sink.write(events)
            state.withLock { $0.writes += 1 }
        }
        let pending = state.withLock { $0.writes > $0.durableWrites ? $0.writes : nil }
        if let pending {
            try await sink.flush()
            state.withLock { $0.durableWrites = pending }
        }
        return last
    }

    private func withStart(_ rows: [PipelineEvent], table: TableSchema) -> [PipelineEvent] {
        guard state.withLock({ $0.started.insert(table.relationID).inserted }) else { return rows }
        var events: [PipelineEvent] = [.snapshotTableStarted(table)]
        events.reserveCapacity(rows.count + 1)
        events += rows
        return events
    }
}

/// A FIFO lock that suspends instead of blocking (held across the sink's `await`s).
final class AsyncLock: Sendable {
    private let state = Mutex<(held: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func lock() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state in
                if !state.held {
                    state.held = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    func unlock() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiters.isEmpty else {
                state.held = false
                return nil
            }
            return state.waiters.removeFirst()  // the lock passes to it, still held
        }
        next?.resume()
    }
}

/// The progress of a run, updated by the workers.
final class ProgressTracker: Sendable {
    private let state = Mutex<(progress: SnapshotProgress, started: ContinuousClock.Instant?, finished: ContinuousClock.Instant?)>(
        (SnapshotProgress(), nil, nil))

    var current: SnapshotProgress {
        state.withLock { state in
            var progress = state.progress
            if let started = state.started { progress.elapsed = started.duration(to: state.finished ?? .now) }
            return progress
        }
    }

    func reset() { state.withLock { $0 = (SnapshotProgress(), nil, nil) } }

    func start(_ progress: SnapshotProgress) {
        state.withLock { $0 = (progress, .now, nil) }
    }

    func add(bytes: Int) { state.withLock { $0.progress.bytes += bytes } }

    func add(rows: Int) { state.withLock { $0.progress.rows += rows } }

    func chunkDone(pages: Int, tableFinished: Bool) {
        state.withLock { state in
            state.progress.chunksDone += 1
            state.progress.pagesDone += pages
            if tableFinished { state.progress.tablesDone += 1 }
        }
    }

    func complete() {
        state.withLock { state in
            state.progress.isComplete = true
            state.progress.tablesDone = state.progress.tablesTotal
            state.progress.chunksDone = state.progress.chunksTotal
            state.progress.pagesDone = state.progress.pagesTotal
            state.finished = .now
        }
    }
}
