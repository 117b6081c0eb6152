import CoreMetrics
import Foundation
import PostgresReplication
import PostgresWire
import Synchronization

/// What a running pipeline is doing, for `/status`, `/readyz`, `/metrics` and `ferry status`.
///
/// Metrics are created once, with constant names (all prefixed `ferry_`), from the factory
/// given at init (a Prometheus registry in `ferry run`, a test factory in tests). Per-table
/// and per-destination counters are created on first use and cached.
public final class PipelineMonitor: Sendable {
    public enum Phase: String, Sendable, Codable {
        case starting, snapshotting, streaming, reconnecting, stopped, failed
    }

    private struct State {
        var phase = Phase.starting
        var slot: String?
        var publication: String?
        var feedback: ReplicationFeedback?
        var snapshotProgress: (@Sendable () -> SnapshotProgress)?
        var lastSnapshot: SnapshotProgress?
        var destinations: [String: LSN] = [:]
        var destinationOrder: [String] = []
        /// Commits delivered and not yet confirmed: their end LSN and commit time, in order.
        var unconfirmed: [(end: LSN, commitTime: PostgresTimestamp)] = []
        var lastError: String?
        var reconnects = 0
        var transactions = 0
        var changes = 0
        var snapshotRows = 0
        var statusUpdatesReported = 0
        var rateSample: (at: ContinuousClock.Instant, changes: Int)?
        var changesPerSecond: Double = 0
        var counters: [String: Counter] = [:]
        var gauges: [String: Gauge] = [:]
        var series: [SeriesKey: Series] = [:]
        var durableGauges: [String: Gauge] = [:]
    }

    public let pipeline: String
    private let factory: any MetricsFactory
    private let state = Mutex(State())
    private let startedAt = Date()

    private let lagBytes: Gauge
    private let lagSeconds: Gauge
    private let confirmedLSN: Gauge
    private let receivedLSN: Gauge
    private let ready: Gauge
    private let transactionsCounter: Counter
    private let statusUpdates: Counter
    private let reconnectsCounter: Counter
    private let batchSize: Recorder
    private let applyLatency: CoreMetrics.Timer
    private let snapshotTablesTotal: Gauge
    private let snapshotTablesDone: Gauge
    private let snapshotChunksTotal: Gauge
    private let snapshotChunksDone: Gauge
    private let snapshotBytes: Gauge
    private let snapshotFraction: Gauge

    public init(pipeline: String, factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.pipeline = pipeline
        self.factory = factory
        let labels = [("pipeline", pipeline)]
        lagBytes = Gauge(label: "ferry_slot_lag_bytes", dimensions: labels, factory: factory)
        lagSeconds = Gauge(label: "ferry_lag_seconds", dimensions: labels, factory: factory)
        confirmedLSN = Gauge(label: "ferry_confirmed_lsn", dimensions: labels, factory: factory)
        receivedLSN = Gauge(label: "ferry_received_lsn", dimensions: labels, factory: factory)
        ready = Gauge(label: "ferry_ready", dimensions: labels, factory: factory)
        transactionsCounter = Counter(label: "ferry_transactions_total", dimensions: labels, factory: factory)
        statusUpdates = Counter(label: "ferry_status_updates_sent_total", dimensions: labels, factory: factory)
        reconnectsCounter = Counter(label: "ferry_reconnects_total", dimensions: labels, factory: factory)
        batchSize = Recorder(label: "ferry_batch_size", dimensions: labels, aggregate: true, factory: factory)
        applyLatency = CoreMetrics.Timer(label: "ferry_apply_latency_seconds", dimensions: labels, factory: factory)
        snapshotTablesTotal = Gauge(label: "ferry_snapshot_tables_total", dimensions: labels, factory: factory)
        snapshotTablesDone = Gauge(label: "ferry_snapshot_tables_done", dimensions: labels, factory: factory)
        snapshotChunksTotal = Gauge(label: "ferry_snapshot_chunks_total", dimensions: labels, factory: factory)
        snapshotChunksDone = Gauge(label: "ferry_snapshot_chunks_done", dimensions: labels, factory: factory)
        snapshotBytes = Gauge(label: "ferry_snapshot_bytes", dimensions: labels, factory: factory)
        snapshotFraction = Gauge(label: "ferry_snapshot_fraction_done", dimensions: labels, factory: factory)
        ready.record(0)
    }

    // MARK: Reported by the pipeline

    func setPhase(_ phase: Phase) {
        state.withLock { $0.phase = phase }
        ready.record(phase == .streaming ? 1 : 0)
    }

    func configure(slot: String, publication: String, destinations: [String]) {
        state.withLock { state in
            state.slot = slot
            state.publication = publication
            state.destinationOrder = destinations
        }
    }

    func attach(feedback: ReplicationFeedback?) { state.withLock { $0.feedback = feedback } }

    func attach(snapshot: (@Sendable () -> SnapshotProgress)?) {
        state.withLock { state in
            if snapshot == nil, let current = state.snapshotProgress { state.lastSnapshot = current() }
            state.snapshotProgress = snapshot
        }
    }

    func reconnecting(after error: any Error) {
        state.withLock { state in
            state.phase = .reconnecting
            state.reconnects += 1
            state.lastError = Redaction.redact("\(error)")
        }
        ready.record(0)
        reconnectsCounter.increment()
        count(error: error)
    }

    func failed(_ error: any Error) {
        state.withLock { state in
            state.phase = .failed
            state.lastError = Redaction.redact("\(error)")
        }
        ready.record(0)
        count(error: error)
    }

    private func count(error: any Error) {
        let kind: String
        if let error = error as? FerryError {
            kind = error.kind.description.replacingOccurrences(of: " ", with: "_")
        } else if let error = error as? PGConnectionError {
            kind = "connection_" + error.code.description
        } else {
            kind = "other"
        }
        counter("ferry_errors_total", [("pipeline", pipeline), ("kind", kind)]).increment()
    }

    /// Streamed events handed to one destination (after it skipped what it already had).
    func delivered(_ events: [PipelineEvent], to destination: String) {
        var transactions = 0
        var commits: [(LSN, PostgresTimestamp)] = []
        // Counted by table object and kind (cheap to hash); the metrics of a table, kind and
        // destination are looked up once per batch, by a key of three strings (no text built).
        struct TallyKey: Hashable { var table: ObjectIdentifier; var op: ChangeOp }
        struct Tally {
            var table: String
            var count = 0
            var bytes = 0
            mutating func add(_ size: Int, rows: Int = 1) { count += rows; bytes += size }
        }
        var changeTallies: [TallyKey: Tally] = [:]
        var truncates: [String: Int] = [:]
        var snapshotTallies: [ObjectIdentifier: Tally] = [:]
        // The run of changes of one table and kind being counted (most batches are long runs):
        // added to changeTallies when another starts, so most changes are not hashed.
        var current: (key: TallyKey, tally: Tally)?
        func endRun() {
            guard let run = current else { return }
            changeTallies[run.key, default: Tally(table: run.tally.table)].add(run.tally.bytes, rows: run.tally.count)
        }
        for event in events {
            switch event {
            case .change(let change, _):
                let (table, op, size): (TableSchema, ChangeOp, Int)
                switch change {
                case .insert(let t, let row): (table, op, size) = (t, .insert, Self.size(of: row))
                case .update(let t, _, _, let row): (table, op, size) = (t, .update, Self.size(of: row))
                case .delete(let t, let old, _): (table, op, size) = (t, .delete, Self.size(of: old))
                case .truncate(let tables, _, _):
                    truncates[tables.map(\.qualifiedName).joined(separator: ","), default: 0] += 1
                    continue
                }
                if let run = current, run.key.table == ObjectIdentifier(table), run.key.op == op {
                    current!.tally.add(size)
                } else {
                    endRun()
                    current = (TallyKey(table: ObjectIdentifier(table), op: op), Tally(table: table.qualifiedName, count: 1, bytes: size))
                }
            case .commit(let info, let end), .streamCommit(let info, let end):
                transactions += 1
                commits.append((end, info.commitTime))
            case .snapshotRow(let table, let row):
                snapshotTallies[ObjectIdentifier(table), default: Tally(table: table.qualifiedName)].add(Self.size(of: row))
            case .snapshotCopyRows(let table, let copied):
                snapshotTallies[ObjectIdentifier(table), default: Tally(table: table.qualifiedName)]
                    .add(copied.tuples.readableBytes, rows: copied.count)
            default:
                break
            }
        }
        endRun()
        var changes = 0
        for (key, tally) in changeTallies {
            let series = self.series(table: tally.table, op: key.op, destination: destination)
            series.changes.increment(by: tally.count)
            series.bytes.increment(by: tally.bytes)
            changes += tally.count
        }
        for (tables, count) in truncates {
            let series = self.series(table: tables, op: .truncate, destination: destination)
            series.changes.increment(by: count)
            series.bytes.increment(by: 0)  // the series exists, as for other changes
            changes += count
        }
        var snapshotRows = 0
        for tally in snapshotTallies.values {
            let series = self.series(table: tally.table, op: .snapshot, destination: destination)
            series.changes.increment(by: tally.count)
            series.bytes.increment(by: tally.bytes)
            snapshotRows += tally.count
        }
        if !events.isEmpty { batchSize.record(events.count) }
        // Pipeline-wide counts once, from the first destination.
        let counted = state.withLock { state in
            guard state.destinationOrder.first.map({ $0 == destination }) ?? true else { return false }
            state.transactions += transactions
            state.changes += changes
            state.snapshotRows += snapshotRows
            state.unconfirmed.append(contentsOf: commits.map { (end: $0.0, commitTime: $0.1) })
            return true
        }
        if counted { transactionsCounter.increment(by: transactions) }
    }

    /// The kinds of change counted per table (`op` label); snapshot rows have a counter of their own.
    enum ChangeOp: String { case insert, update, delete, truncate, snapshot }

    /// A table's counters for one kind of change and destination.
    struct Series { let changes: Counter; let bytes: Counter }
    struct SeriesKey: Hashable { let table: String; let op: ChangeOp; let destination: String }

    private func series(table: String, op: ChangeOp, destination: String) -> Series {
        let key = SeriesKey(table: table, op: op, destination: destination)
        if let known = state.withLock({ $0.series[key] }) { return known }
        let dimensions = [("pipeline", pipeline), ("table", table), ("destination", destination)]
        let made = Series(
            changes: op == .snapshot
                ? counter("ferry_snapshot_rows_total", dimensions)
                : counter("ferry_changes_total", [("pipeline", pipeline), ("table", table), ("op", op.rawValue), ("destination", destination)]),
            bytes: counter("ferry_change_bytes_total", dimensions))
        state.withLock { $0.series[key] = made }
        return made
    }

    func durable(_ position: LSN, destination: String) {
        let known = state.withLock { state in
            state.destinations[destination] = position
            return state.durableGauges[destination]
        }
        let gauge = known ?? self.gauge("ferry_destination_durable_lsn", [("pipeline", pipeline), ("destination", destination)])
        if known == nil { state.withLock { $0.durableGauges[destination] = gauge } }
        gauge.record(Int64(bitPattern: position.rawValue))
    }

    /// The position confirmed to PostgreSQL: transactions up to it count as applied.
    func confirmed(_ position: LSN) {
        let now = Date()
        let applied = state.withLock { state -> [PostgresTimestamp] in
            let count = state.unconfirmed.prefix { $0.end <= position }.count
            defer { state.unconfirmed.removeFirst(count) }
            return state.unconfirmed.prefix(count).map(\.commitTime)
        }
        for commitTime in applied {
            let micros = PostgresTimestamp(now).microsecondsSince1970 - commitTime.microsecondsSince1970
            applyLatency.recordNanoseconds(max(0, micros) * 1000)
        }
    }

    // MARK: Read by the admin server and `ferry status`

    /// Updates the gauges that are computed rather than counted; call before exporting.
    public func refresh() {
        let status = status()
        lagBytes.record(status.lagBytes ?? 0)
        lagSeconds.record(status.lagSeconds)
        if let confirmed = status.confirmedLSN.flatMap(LSN.init) { confirmedLSN.record(Int64(bitPattern: confirmed.rawValue)) }
        if let received = status.receivedLSN.flatMap(LSN.init) { receivedLSN.record(Int64(bitPattern: received.rawValue)) }
        let sent = state.withLock { state -> Int in
            let total = state.feedback?.statusUpdatesSent ?? state.statusUpdatesReported
            defer { state.statusUpdatesReported = max(state.statusUpdatesReported, total) }
            return max(0, total - state.statusUpdatesReported)
        }
        if sent > 0 { statusUpdates.increment(by: sent) }
        if let snapshot = status.snapshot {
            snapshotTablesTotal.record(snapshot.tablesTotal)
            snapshotTablesDone.record(snapshot.tablesDone)
            snapshotChunksTotal.record(snapshot.chunksTotal)
            snapshotChunksDone.record(snapshot.chunksDone)
            snapshotBytes.record(snapshot.bytes)
            snapshotFraction.record(snapshot.fractionDone ?? 0)
        }
    }

    public var phase: Phase { state.withLock { $0.phase } }
    public var isReady: Bool { phase == .streaming }

    public func status() -> PipelineStatus {
        let now = ContinuousClock.now
        return state.withLock { state in
            let received = state.feedback?.written
            let confirmed = state.feedback?.flushed
            var lag: Int64?
            if let received, let confirmed { lag = received > confirmed ? Int64(received.rawValue - confirmed.rawValue) : 0 }
            var lagSeconds = 0.0
            if let oldest = state.unconfirmed.first {
                lagSeconds = max(0, Double(PostgresTimestamp(Date()).microsecondsSince1970 - oldest.commitTime.microsecondsSince1970) / 1e6)
            }
            if let sample = state.rateSample {
                let elapsed = sample.at.duration(to: now)
                if elapsed >= .seconds(1) {
                    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                    state.changesPerSecond = Double(state.changes - sample.changes) / seconds
                    state.rateSample = (now, state.changes)
                }
            } else {
                state.rateSample = (now, state.changes)
            }
            let snapshot = state.snapshotProgress?() ?? state.lastSnapshot
            return PipelineStatus(
                pipeline: pipeline, phase: state.phase, slot: state.slot, publication: state.publication,
                startedAt: startedAt,
                confirmedLSN: confirmed.map { "\($0)" }, receivedLSN: received.map { "\($0)" },
                lagBytes: lag, lagSeconds: lagSeconds,
                destinations: state.destinationOrder.map { name in
                    PipelineStatus.DestinationStatus(name: Redaction.redact(name), durableLSN: state.destinations[name].map { "\($0)" })
                },
                transactions: state.transactions, changes: state.changes, snapshotRows: state.snapshotRows,
                changesPerSecond: state.changesPerSecond, reconnects: state.reconnects,
                snapshot: snapshot.map(PipelineStatus.SnapshotStatus.init), lastError: state.lastError)
        }
    }

    // MARK: Helpers

    /// Metrics with per-table or per-destination labels: made once (labels redacted), then cached.
    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = Self.cacheKey(label, dimensions)
        return state.withLock { state in
            if let existing = state.counters[key] { return existing }
            let made = Counter(label: label, dimensions: Self.redacted(dimensions), factory: factory)
            state.counters[key] = made
            return made
        }
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        let key = Self.cacheKey(label, dimensions)
        return state.withLock { state in
            if let existing = state.gauges[key] { return existing }
            let made = Gauge(label: label, dimensions: Self.redacted(dimensions), factory: factory)
            state.gauges[key] = made
            return made
        }
    }

    private static func cacheKey(_ label: String, _ dimensions: [(String, String)]) -> String {
        label + dimensions.map { "\u{1}" + $0.1 }.joined()
    }

    private static func redacted(_ dimensions: [(String, String)]) -> [(String, String)] {
        dimensions.map { ($0.0, Redaction.redact($0.1)) }
    }

    /// Roughly the bytes a row's values take (strings and bytes by length, others by width).
    static func size(of row: Row) -> Int {
        var total = 0
        for value in row {
            switch value {
            case .null, .unchangedToast: total += 0
            case .bool: total += 1
            case .int16: total += 2
            case .int32, .float32, .date: total += 4
            case .numeric(let text), .text(let text), .json(let text), .jsonb(let text), .inet(let text), .cidr(let text),
                 .macaddr(let text), .macaddr8(let text), .bitString(let text), .tsvector(let text):
                total += text.utf8.count
            case .unknown(_, let text): total += text.utf8.count
            case .bytes(let bytes), .unknownBinary(_, let bytes): total += bytes.count
            case .uuid: total += 16
            case .array(let array): total += 8 * array.elements.count
            default: total += 8
            }
        }
        return total
    }
}

/// A pipeline's state as `/status` and `ferry status` show it.
public struct PipelineStatus: Sendable, Codable {
    public struct DestinationStatus: Sendable, Codable {
        public var name: String
        public var durableLSN: String?

        enum CodingKeys: String, CodingKey {
            case name
            case durableLSN = "durable_lsn"
        }
    }

    public struct SnapshotStatus: Sendable, Codable {
        public var tablesTotal: Int
        public var tablesDone: Int
        public var chunksTotal: Int
        public var chunksDone: Int
        public var rows: Int
        public var bytes: Int
        public var fractionDone: Double?
        public var etaSeconds: Double?
        public var complete: Bool

        enum CodingKeys: String, CodingKey {
            case tablesTotal = "tables_total", tablesDone = "tables_done", chunksTotal = "chunks_total", chunksDone = "chunks_done"
            case rows, bytes, fractionDone = "fraction_done", etaSeconds = "eta_seconds", complete
        }

        init(_ progress: SnapshotProgress) {
            tablesTotal = progress.tablesTotal
            tablesDone = progress.tablesDone
            chunksTotal = progress.chunksTotal
            chunksDone = progress.chunksDone
            rows = progress.rows
            bytes = progress.bytes
            fractionDone = progress.fractionDone
            etaSeconds = progress.estimatedTimeRemaining.map { Double($0.components.seconds) }
            complete = progress.isComplete
        }
    }

    public var pipeline: String
    public var phase: PipelineMonitor.Phase
    public var slot: String?
    public var publication: String?
    public var startedAt: Date
    public var confirmedLSN: String?
    public var receivedLSN: String?
    /// The newest WAL position the server reported minus the confirmed position.
    public var lagBytes: Int64?
    /// Age of the oldest delivered transaction not yet confirmed (0 when none waits).
    public var lagSeconds: Double
    public var destinations: [DestinationStatus]
    public var transactions: Int
    public var changes: Int
    public var snapshotRows: Int
    public var changesPerSecond: Double
    public var reconnects: Int
    public var snapshot: SnapshotStatus?
    public var lastError: String?

    enum CodingKeys: String, CodingKey {
        case pipeline, phase, slot, publication, startedAt = "started_at", confirmedLSN = "confirmed_lsn", receivedLSN = "received_lsn"
        case lagBytes = "lag_bytes", lagSeconds = "lag_seconds", destinations, transactions, changes, snapshotRows = "snapshot_rows"
        case changesPerSecond = "changes_per_second", reconnects, snapshot, lastError = "last_error"
    }
}
