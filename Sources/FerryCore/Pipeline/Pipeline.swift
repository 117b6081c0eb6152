import CoreMetrics
import Foundation
import Logging
import PGOutput
import PostgresReplication
import PostgresWire
import Synchronization

/// One source, one publication, one slot, several destinations: a slot-consistent snapshot,
/// then every committed change, with the flush position confirmed to PostgreSQL only once
/// every destination made it durable.
public final class Pipeline: Sendable {
    public let configuration: PipelineConfiguration
    public let destinations: [any Destination]
    public let state: any StateStore
    public let logger: Logger
    /// Stops `run()` cleanly from another task or a signal handler.
    public let stopper = PipelineStopper()
    /// Counters as the pipeline runs (for logs, `ferry demo`, and later metrics).
    public let statistics = PipelineStatistics()
    /// Phase, positions, lag and metrics, for the admin server and `ferry status`.
    public let monitor: PipelineMonitor

    public init(configuration: PipelineConfiguration, destinations: [any Destination], state: any StateStore,
                logger: Logger = Logger(label: "ferry.pipeline"), metrics: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.configuration = configuration
        self.destinations = destinations
        self.state = state
        self.logger = logger
        self.monitor = PipelineMonitor(pipeline: configuration.name, factory: metrics)
    }

    /// Settings every connection that reads values runs with, so text values come in the
    /// forms `ValueDecoder` parses (pgoutput's text output uses the walsender's settings).
    public static let sessionSettings = """
        SET DateStyle = ISO; SET TimeZone = 'UTC'; SET IntervalStyle = postgres; SET extra_float_digits = 3;
        SET bytea_output = hex; SET lc_monetary = 'C'; SET client_encoding = 'UTF8'
        """

    /// Runs until stopped (or, with `once`, until caught up with the WAL position at start).
    /// A dropped source connection is retried with backoff (``PipelineConfiguration/reconnect``);
    /// errors that a retry cannot fix (a lost slot, a bad configuration, a destination failure)
    /// end it.
    public func run() async throws {
        do {
            try await runReconnecting()
            monitor.setPhase(.stopped)
        } catch {
            monitor.failed(error)
            throw error
        }
    }

    private func runReconnecting() async throws {
        try configuration.validate()
        let names = destinations.map(\.name)
        guard Set(names).count == names.count else {
            throw FerryError(.configuration, "two destinations share a name: \(names.joined(separator: ", "))",
                             fix: "give each destination a distinct URL")
        }
        monitor.configure(slot: configuration.slotName, publication: configuration.publicationName, destinations: names)
        // Streaming runs on one event loop: the replication connection's, which destinations
        // that connect while opening (or reconnect while streaming) use as well.
        let streamExecutor = EventLoopTaskExecutor(PGConnection.nextEventLoop())
        var lanes: [DestinationLane] = []
        for destination in destinations {
            let resume = try await EventLoopTaskExecutor.$current.withValue(streamExecutor) { try await destination.open() }
            let stored = try await state.destinationPosition(pipeline: configuration.name, destination: destination.name)
            lanes.append(DestinationLane(destination: destination, skipBelow: [resume.durablePosition, stored].compactMap { $0 }.max(),
                                         monitor: monitor))
        }
        var source = configuration.source
        source.applicationName = configuration.applicationName
        var attempt = 0
        var staleHolderSeen = false
        var connectedOnce = false
        while true {
            let began = ContinuousClock.now
            do {
                if attempt > 0 {
                    // The new stream starts at the slot's confirmed position, which can be behind
                    // what the destinations already have: make every complete transaction they
                    // received durable, and skip up to there.
                    for lane in lanes {
                        _ = try await flushAndRecord(lane, saveNow: true)
                        lane.skipAlreadyDurable()
                    }
                }
                let replication = try await PGConnection.connect(source, replication: .database, eventLoopGroup: streamExecutor.eventLoop,
                                                                 receiveBufferLimit: configuration.receiveBufferBytes, logger: logger)
                connectedOnce = true
                do {
                    try await run(on: replication, lanes: lanes)
                    await replication.close()
                } catch {
                    await replication.close()
                    throw error
                }
                return
            } catch {
                // The first connection failing is a configuration problem until shown otherwise
                // (a wrong host or port): say so at once instead of retrying silently.
                guard let policy = configuration.reconnect, connectedOnce, Self.isTransient(error), !stopper.isRequested else { throw error }
                if began.duration(to: .now) >= policy.resetAfter { attempt = 0 }
                attempt += 1
                if let limit = policy.maximumAttempts, attempt > limit { throw error }
                if Self.isSlotInUse(error) {
                    // A walsender of ours from before the drop may still hold the slot (until
                    // wal_sender_timeout). Wait once; if it is still there, end it.
                    if staleHolderSeen { await terminateStaleSlotHolder() }
                    staleHolderSeen = true
                } else {
                    staleHolderSeen = false
                }
                let delay = policy.delay(attempt: attempt - 1)
                monitor.reconnecting(after: error)
                logger.warning("source connection failed; reconnecting", metadata: [
                    "error": "\(Redaction.redact("\(error)"))", "attempt": "\(attempt)", "delay": "\(delay)",
                ])
                guard await sleepUnlessStopped(delay) else { return }
            }
        }
    }

    /// Connection failures a new connection can cure.
    static func isTransient(_ error: any Error) -> Bool {
        if let error = error as? FerryError { return error.kind.isRetryable }
        // A socket error that escaped classification (seen once under load while the source
        // restarted: "I/O on closed channel"): the connection is gone, a new one may work.
        let type = String(reflecting: Swift.type(of: error))
        if type.hasPrefix("NIOCore.ChannelError") || type.hasPrefix("NIOCore.IOError") || type.hasPrefix("NIOPosix.") { return true }
        if let error = error as? PGConnectionError {
            switch error.code {
            case .hostUnreachable, .connectTimeout, .connectionClosed:
                return true
            case .server:
                guard let state = error.sqlState else { return false }
                // 08: connection exception; 57: operator intervention (shutdown, restart,
                // starting up); 53300: too many connections; 55006: slot in use; 58: system error.
                return state.hasPrefix("08") || state.hasPrefix("57") || state == "53300" || state == "55006" || state.hasPrefix("58")
            default:
                return false
            }
        }
        return false
    }

    static func isSlotInUse(_ error: any Error) -> Bool {
        (error as? PGConnectionError)?.sqlState == "55006"
    }

    /// Ends the walsender holding this pipeline's slot if it carries this pipeline's
    /// application_name (a connection of ours that outlived a network failure).
    private func terminateStaleSlotHolder() async {
        do {
            let connection = try await PGConnection.connect(configuration.source, replication: nil, logger: logger)
            let rows = try await connection.query("""
                SELECT s.active_pid::text FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
                WHERE s.slot_name = \(SourceSetup.literal(configuration.slotName)) AND a.application_name = \(SourceSetup.literal(configuration.applicationName))
                """)
            if let pid = rows.first?.first ?? nil {
                logger.warning("terminating a stale walsender of this pipeline that still holds the slot", metadata: ["pid": "\(pid)"])
                _ = try await connection.query("SELECT pg_terminate_backend(\(pid))")
            }
            await connection.close()
        } catch {
            logger.warning("could not look for a stale walsender", metadata: ["error": "\(Redaction.redact("\(error)"))"])
        }
    }

    /// Sleeps `delay` in short steps; false if a stop was requested meanwhile.
    private func sleepUnlessStopped(_ delay: Duration) async -> Bool {
        let deadline = ContinuousClock.now + delay
        while ContinuousClock.now < deadline {
            if stopper.isRequested || Task.isCancelled { return false }
            try? await Task.sleep(for: min(.milliseconds(100), deadline - .now))
        }
        return !stopper.isRequested
    }

    private func run(on replication: PGConnection, lanes: [DestinationLane]) async throws {
        monitor.setPhase(.starting)
        let startPosition = try await replication.identifySystem().xlogPosition
        try await replication.simpleQuery(Self.sessionSettings)
        let registry = try TypeRegistry(rows: try await replication.query(TypeRegistry.query(serverVersionNumber: replication.serverVersionNumber)))
        // The publication is created on a normal connection of its own: a walsender that ran
        // CREATE PUBLICATION itself was seen to stream none of the publication's changes.
        let setup = try await PGConnection.connect(configuration.source, replication: nil, logger: logger)
        let publication: String
        do {
            publication = try await SourceSetup.ensurePublication(configuration, on: setup, logger: logger)
            await setup.close()
        } catch {
            await setup.close()
            throw error
        }

        var record = try await state.pipeline(named: configuration.name)
        var slotState = try await SourceSetup.slotState(configuration.slotName, on: replication)
        if let interrupted = record, interrupted.snapshot == .creatingSlot {
            // The last start died between creating the slot and recording it: nothing was
            // delivered from that slot, so drop it (it is ours) and begin again.
            if slotState != nil {
                logger.warning("dropping slot \(interrupted.slot) left by an interrupted start; taking the snapshot again")
                do {
                    try await replication.dropReplicationSlot(interrupted.slot, wait: true)
                } catch let error as PGConnectionError where error.sqlState == "42704" {
                    // Gone meanwhile: a slot whose creation was cut off is dropped by the server
                    // when the walsender that was creating it exits.
                }
                slotState = nil
            }
            record = nil
        }
        if let existing = record {
            var lost: FerryError?
            if slotState == nil {
                lost = FerryError(.slotLost,
                    "replication slot \"\(existing.slot)\" of pipeline \(existing.name) no longer exists; changes since \(existing.consistentPoint) may be lost",
                    fix: "the slot was dropped (Neon drops slots that stop advancing; a branch restore deletes them): run with --resnapshot-on-slot-loss, or delete the state (\(configuration.name)) and run again to re-snapshot")
            } else if slotState?.walStatus == "lost" {
                lost = FerryError(.slotLost, "replication slot \"\(existing.slot)\" was invalidated (wal_status = lost): the WAL it needed is gone",
                                  fix: "run with --resnapshot-on-slot-loss, or drop the slot (ferry slot drop \(existing.slot)), delete the state and run again to re-snapshot")
            }
            if let lost {
                guard configuration.resnapshotOnSlotLoss else { throw lost }
                logger.warning("the slot is lost; taking the snapshot again (--resnapshot-on-slot-loss). Snapshot rows are upserts: rows deleted at the source while no slot recorded it may remain in the destinations",
                               metadata: ["slot": "\(existing.slot)", "reason": "\(lost.message)"])
                if slotState != nil { try await replication.dropReplicationSlot(existing.slot, wait: true) }
                try await state.reset(pipeline: configuration.name)
                slotState = nil
                record = nil
            }
        }
        if var existing = record {
            if existing.snapshot == .copying {
                logger.info("resuming the interrupted snapshot under a fresh snapshot; the stream from the slot's consistent point reconciles it",
                            metadata: ["slot": "\(existing.slot)"])
                try await copyTables(record: existing, exportedSnapshot: nil, lanes: lanes)
                existing.snapshot = .complete
                try await state.savePipeline(existing)
            }
            record = existing
        } else if let slotState {
            logger.warning("slot \(configuration.slotName) already exists and this pipeline has no state: streaming from its position without a snapshot")
            record = PipelineRecord(name: configuration.name, slot: configuration.slotName, publication: publication,
                                    consistentPoint: slotState.confirmedFlush ?? .invalid, snapshot: .skipped, tables: configuration.tables)
            try await state.savePipeline(record!)
        } else {
            let snapshot = configuration.snapshot == .initial
            try await state.savePipeline(PipelineRecord(name: configuration.name, slot: configuration.slotName,
                                                        publication: publication, consistentPoint: .invalid,
                                                        snapshot: .creatingSlot, tables: configuration.tables))
            let created = try await replication.createReplicationSlot(configuration.slotName, snapshot: snapshot ? .export : .nothing)
            var fresh = PipelineRecord(name: configuration.name, slot: created.name, publication: publication,
                                       consistentPoint: created.consistentPoint, snapshot: snapshot ? .copying : .skipped,
                                       tables: configuration.tables)
            try await state.savePipeline(fresh)
            logger.info("created replication slot", metadata: ["slot": "\(created.name)", "consistent_point": "\(created.consistentPoint)"])
            if snapshot {
                // The exported snapshot stays valid while this connection stays idle.
                try await copyTables(record: fresh, exportedSnapshot: created.snapshotName, lanes: lanes)
                fresh.snapshot = .complete
                try await state.savePipeline(fresh)
            }
            record = fresh
        }
        guard let record, !stopper.isRequested else { return }
        try await stream(record: record, on: replication, registry: registry, lanes: lanes,
                         until: configuration.once ? startPosition : nil)
    }

    // MARK: Snapshot

    private func copyTables(record: PipelineRecord, exportedSnapshot: String?, lanes: [DestinationLane]) async throws {
        let sink = LaneSnapshotSink(lanes: lanes, statistics: statistics)
        monitor.setPhase(.snapshotting)
        defer { monitor.attach(snapshot: nil) }
        try await SnapshotRunner.copy(configuration: configuration, record: record, exportedSnapshot: exportedSnapshot,
                                      state: state, sink: sink, logger: logger, monitor: monitor)
    }

    // MARK: Streaming

    private func stream(record: PipelineRecord, on replication: PGConnection, registry: TypeRegistry,
                        lanes: [DestinationLane], until: LSN?) async throws {
        // In-progress transactions are streamed (a large one is applied while it runs at the
        // source) when every destination takes them and the server can (PostgreSQL 14+).
        let streaming = replication.serverVersionNumber >= 140_000 && lanes.allSatisfy { $0.destination.acceptsStreamedTransactions }
        if streaming, let kilobytes = configuration.streamingWorkMemoryKB {
            // pg_settings gives this setting in kB.
            _ = try await replication.simpleQuery("""
                SELECT set_config('logical_decoding_work_mem', '\(kilobytes)kB', false) FROM pg_settings
                WHERE name = 'logical_decoding_work_mem' AND setting::bigint > \(kilobytes)
                """)
        }
        let stream = try await replication.startReplication(
            slot: record.slot, start: record.consistentPoint,
            options: PGOutputOptions(publications: [record.publication], messages: true, streaming: streaming ? .on : .off),
            statusInterval: configuration.statusInterval)
        stream.endPosition = until
        stopper.attach(stream.stopper)
        defer { stopper.attach(nil) }
        monitor.attach(feedback: stream.feedback)
        monitor.setPhase(.streaming)
        logger.info("streaming", metadata: ["slot": "\(record.slot)", "from": "\(record.consistentPoint)",
                                            "in_progress_transactions": "\(streaming ? "streamed" : "after commit")",
                                            "until": "\(until.map { "\($0)" } ?? "stopped")"])

        // Beside the stream: a watch on the slot (gone or invalidated ends the run at once, with
        // the reason) and the optional heartbeat.
        let watch = SlotWatch(configuration: configuration, slot: record.slot, logger: logger)
        let watcher = Task { [stopper = stream.stopper] in
            await watch.run { stopper.requestStop() }
        }
        defer { watcher.cancel() }

        var decoder = ChangeDecoder(values: ValueDecoder(registry: registry,
                                                         keepsSourceText: lanes.allSatisfy { $0.destination.takesSourceText }))
        let pending = PendingEvents(capacity: configuration.batchSize)
        let clock = ContinuousClock()
        var lastFlush = clock.now

        // Deliver and flush whenever the stream goes quiet (low latency when idle), and while
        // changes keep coming at least every flushInterval (big batches under load).
        // Called once a commit came since the last flush, or at the end of the stream.
        let flushPending = { [self] (final: Bool) in
            // The flush follows at once, so the delivery is written here rather than in flight,
            // which would only add a task switch to the latency.
            try await self.deliver(pending.take(), to: lanes, inline: true)
            try await self.flush(lanes, stream: stream, heartbeat: pending.heartbeat, saveNow: final)
            pending.heartbeat = nil
            pending.committedSinceFlush = false
            lastFlush = clock.now
        }
        // Where the stream is taken. Small transactions: on the replication connection's event
        // loop, where the destination's connection lives too (EventLoopTaskExecutor), so a change
        // goes from the socket to the destination without a hand-off between threads (each one
        // a wake-up: on a busy machine the largest part of the latency). A stream that fills
        // whole batches (a large transaction, a backlog): on the shared pool, where decoding
        // runs beside the socket's reads on the other core. The mode changes at a full batch
        // (busy) and at an idle flush of a small one (quiet). Destinations that may block their
        // thread (file I/O) always run on the pool: an event loop must not block.
        let loop = EventLoopTaskExecutor(replication.eventLoop)
        let loopAllowed = lanes.allSatisfy { $0.destination.neverBlocks }
        var busy = !loopAllowed
        var modeChanged = false
        let quietEvents = max(1, configuration.batchSize / 4)
        // Made once: a closure literal in the loop's call would be allocated for every message.
        let onIdle = {
            // In the middle of a transaction there is nothing to flush: its rest is on the
            // way (a large one is delivered a batch at a time as it comes).
            guard pending.committedSinceFlush else { return }
            let small = pending.events.count < quietEvents
            try await flushPending(false)
            if busy && small && loopAllowed {
                busy = false
                modeChanged = true
            }
        }
        let take = { [self] () async throws -> Bool in  // true: the stream ended
            while true {
                // What is already received first, without an async call per message.
                var next = try stream.nextReceived()
                if next == nil { next = try await stream.next(onIdle: onIdle) }
                guard let message = next else { break }
                if case .message(let logical) = message.message, logical.prefix == Self.heartbeatPrefix {
                    // Our own heartbeat: it only moves the position.
                    if let end = message.message.unitEndLSN, !logical.isTransactional {
                        pending.heartbeat = (end, pending.lastUnitEnd)
                        pending.committedSinceFlush = true
                    }
                    continue
                }
                try decoder.append(message, to: &pending.events)
                if let end = message.message.unitEndLSN {
                    pending.committedSinceFlush = true
                    pending.lastUnitEnd = end
                }
                if pending.events.count >= configuration.batchSize {
                    try await deliver(pending.take(), to: lanes)
                    if !busy {
                        busy = true
                        modeChanged = true
                    }
                }
                if pending.committedSinceFlush && clock.now - lastFlush >= configuration.flushInterval {
                    try await flushPending(false)
                }
                if modeChanged {
                    modeChanged = false
                    return false
                }
            }
            return true
        }
        try await EventLoopTaskExecutor.$current.withValue(loop) {
            while try await !withTaskExecutorPreference(busy ? nil : loop, operation: take) {}
        }
        if let lost = watch.failure {
            try? await stream.stop()
            throw lost
        }
        try await flushPending(true)
        try await stream.stop()
        logger.info("stopped", metadata: ["confirmed": "\(stream.feedback.flushed)"])
    }

    /// Hands `events` to every destination; `inline`: written before this returns (when a
    /// flush follows at once, a delivery in flight would only add a task switch to the latency).
    private func deliver(_ events: [PipelineEvent], to lanes: [DestinationLane], inline: Bool = false) async throws {
        guard !events.isEmpty else { return }
        statistics.count(events)
        if lanes.count == 1 {
            try await lanes[0].write(events, inline: inline)
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in lanes { group.addTask { try await lane.write(events, inline: inline) } }
            try await group.waitForAll()
        }
    }

    /// Flushes one destination and records its durable position: in the monitor every time, in
    /// the state store at most every ``positionSaveInterval`` unless `saveNow` (a write that
    /// waits for the disk on every flush would add its fsync to every change's latency).
    /// The stored position only lets a restarted pipeline skip what a destination already has
    /// (fewer duplicates); what is confirmed to PostgreSQL does not depend on it.
    private func flushAndRecord(_ lane: DestinationLane, saveNow: Bool = false) async throws -> LSN? {
        let position = try await lane.flush()
        if let position {
            monitor.durable(position, destination: lane.destination.name)
            if saveNow || lane.positionSaved.map({ ContinuousClock.now - $0 >= Self.positionSaveInterval }) ?? true {
                // The previous save (a second ago) has normally ended; its error surfaces here.
                if let previous = lane.positionSave {
                    lane.positionSave = nil
                    try await previous.value
                }
                // The state store may write a file (SQLite, fsync): never on the stream's event
                // loop, and not waited for unless `saveNow`: the stream goes on meanwhile (the
                // hop to another thread and back cost changes arriving then milliseconds).
                let save = Task(executorPreference: globalConcurrentExecutor) { [state, configuration, name = lane.destination.name] in
                    try await state.saveDestinationPosition(pipeline: configuration.name, destination: name, position: position)
                }
                if saveNow { try await save.value } else { lane.positionSave = save }
                lane.positionSaved = ContinuousClock.now
            }
        }
        return position
    }

    /// The prefix of Ferry's heartbeat, a non-transactional logical message
    /// (`pg_logical_emit_message(false, prefix, '')`): never delivered to destinations, it only
    /// moves the confirmed position, once everything before it is durable. Emitted by the
    /// pipeline (``PipelineConfiguration/heartbeatInterval``), or by anyone who wants to know
    /// when the pipeline has caught up with a position.
    public static let heartbeatPrefix = "ferry_heartbeat"
    /// Emits the heartbeat on the source; its one column is the message's position.
    public static let heartbeatStatement = "SELECT pg_logical_emit_message(false, '\(heartbeatPrefix)', '')"

    static let positionSaveInterval = Duration.seconds(1)

    /// Flushes every destination and confirms the lowest durable position to PostgreSQL.
    /// A heartbeat (our own logical message at `position`, after the unit ending at `after`)
    /// is confirmed once everything delivered before it is durable.
    private func flush(_ lanes: [DestinationLane], stream: ReplicationStream, heartbeat: (position: LSN, after: LSN?)? = nil,
                       saveNow: Bool = false) async throws {
        var positions: [LSN?] = []
        for lane in lanes {
            positions.append(try await flushAndRecord(lane, saveNow: saveNow))
        }
        let lowest: LSN? = positions.contains(where: { $0 == nil }) ? nil : positions.compactMap({ $0 }).min()
        var confirm = lowest
        if let heartbeat, heartbeat.after == nil || (lowest.map { $0 >= heartbeat.after! } ?? false) {
            confirm = max(lowest ?? heartbeat.position, heartbeat.position)
        }
        guard let confirm else { return }
        stream.confirmFlushed(confirm)
        statistics.confirmed(confirm)
        monitor.confirmed(confirm)
    }
}

/// Events decoded but not yet handed to destinations.
final class PendingEvents {
    var events: [PipelineEvent] = []
    var committedSinceFlush = false
    /// The end of the last unit (transaction, message) decoded in this stream.
    var lastUnitEnd: LSN?
    /// A heartbeat seen since the last flush, and the unit end before it.
    var heartbeat: (position: LSN, after: LSN?)?
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        events.reserveCapacity(capacity + 16)
    }

    func take() -> [PipelineEvent] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }
}

/// One destination as the pipeline drives it: skips what it already has, and remembers its
/// durable position.
final class DestinationLane: @unchecked Sendable {
    let destination: any Destination
    /// Transactions whose commit LSN is below this were applied before: skip them.
    private var skipBelow: LSN?
    private var skippingTransaction = false
    private(set) var durable: LSN?
    /// When the durable position was last written to the state store (the pipeline's task only).
    var positionSaved: ContinuousClock.Instant?
    /// That write, if not waited for (the pipeline's task only).
    var positionSave: Task<Void, any Error>?
    private let lock = NSLock()
    private let monitor: PipelineMonitor?

    init(destination: any Destination, skipBelow: LSN?, monitor: PipelineMonitor? = nil) {
        self.destination = destination
        self.skipBelow = skipBelow
        self.durable = skipBelow
        self.monitor = monitor
    }

    /// The previous delivery, still being written: the pipeline decodes the next batch while
    /// the destination writes this one. At most one is in flight, so memory stays bounded and
    /// the destination sees batches in order; its error surfaces at the next write or flush.
    private var inFlight: Task<Void, any Error>?

    /// `inline`: written before this returns instead of in flight.
    func write(_ events: [PipelineEvent], inline: Bool = false) async throws {
        try await finishInFlight()
        let filtered = filter(events)
        guard !filtered.isEmpty else { return }
        let write = { @Sendable [destination, monitor] in
            do {
                try await destination.write(filtered)
            } catch let error as FerryError {
                throw error
            } catch {
                throw FerryError(.destinationRejected, "destination \(destination.name) failed to write: \(error)")
            }
            monitor?.delivered(filtered, to: destination.name)
        }
        if inline {
            try await write()
            return
        }
        let task = Task { try await write() }
        lock.withLock { inFlight = task }
    }

    /// Waits for the delivery in flight (cancelled with the caller) and rethrows its error.
    private func finishInFlight() async throws {
        guard let task = lock.withLock({ inFlight }) else { return }
        defer { lock.withLock { inFlight = nil } }
        try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            task.cancel()
        }
    }

    func writeSnapshot(_ events: [PipelineEvent]) async throws {
        try await finishInFlight()
        do {
            try await destination.write(events)
            monitor?.delivered(events, to: destination.name)
        } catch let error as FerryError {
            throw error
        } catch {
            throw FerryError(.destinationRejected, "destination \(destination.name) failed to write snapshot rows: \(error)")
        }
    }

    /// Before a replay (after a reconnect): skip every transaction at or below the durable position.
    func skipAlreadyDurable() {
        lock.withLock {
            skipBelow = durable
            skippingTransaction = false
        }
    }

    func flush() async throws -> LSN? {
        try await finishInFlight()
        let position: LSN?
        do {
            position = try await destination.flush()
        } catch let error as FerryError {
            throw error
        } catch {
            throw FerryError(.destinationRejected, "destination \(destination.name) failed to flush: \(error)")
        }
        return lock.withLock {
            if let position { durable = max(durable ?? position, position) }
            return durable
        }
    }

    /// Drops transactions the destination already has (exactly-once for destinations that
    /// store their position, and for the state store's record of the others).
    private func filter(_ events: [PipelineEvent]) -> [PipelineEvent] {
        lock.withLock {
            guard let threshold = skipBelow else { return events }
            var kept: [PipelineEvent] = []
            for event in events {
                switch event {
                case .begin(let info):
                    skippingTransaction = info.commitLSN < threshold
                    if !skippingTransaction {
                        skipBelow = nil
                        kept.append(event)
                    }
                case .commit:
                    if skippingTransaction { skippingTransaction = false } else { kept.append(event) }
                case .streamCommit(let info, _):
                    // Only now is a streamed transaction's commit position known: one the
                    // destination already has is dropped like an aborted one.
                    if info.commitLSN < threshold {
                        kept.append(.streamAbort(xid: info.xid, subtransaction: info.xid))
                    } else {
                        skipBelow = nil
                        kept.append(event)
                    }
                case .message(_, _, let lsn, let transactional):
                    if transactional ? !skippingTransaction : lsn >= threshold { kept.append(event) }
                default:
                    if !skippingTransaction { kept.append(event) }
                }
            }
            return kept
        }
    }
}

/// Stops a pipeline from anywhere.
public final class PipelineStopper: Sendable {
    private let state = Mutex<(requested: Bool, stream: ReplicationStopper?)>((false, nil))

    public init() {}

    public func requestStop() {
        let stream = state.withLock { state -> ReplicationStopper? in
            state.requested = true
            return state.stream
        }
        stream?.requestStop()
    }

    public var isRequested: Bool { state.withLock { $0.requested } }

    func attach(_ stream: ReplicationStopper?) {
        let stopNow = state.withLock { state -> Bool in
            state.stream = stream
            return state.requested
        }
        if stopNow { stream?.requestStop() }
    }
}

/// What a pipeline did so far.
public final class PipelineStatistics: Sendable {
    private struct Counts {
        var transactions = 0
        var changes = 0
        var snapshotRows = 0
        var confirmed = LSN.invalid
    }
    private let counts = Mutex(Counts())

    public var transactions: Int { counts.withLock { $0.transactions } }
    public var changes: Int { counts.withLock { $0.changes } }
    public var snapshotRows: Int { counts.withLock { $0.snapshotRows } }
    public var confirmedPosition: LSN { counts.withLock { $0.confirmed } }

    func count(_ events: [PipelineEvent]) {
        var transactions = 0, changes = 0, rows = 0
        for event in events {
            switch event {
            case .commit, .streamCommit: transactions += 1
            case .change: changes += 1
            case .snapshotRow: rows += 1
            case .snapshotCopyRows(_, let copied): rows += copied.count
            default: break
            }
        }
        counts.withLock {
            $0.transactions += transactions
            $0.changes += changes
            $0.snapshotRows += rows
        }
    }

    func confirmed(_ position: LSN) {
        counts.withLock { $0.confirmed = max($0.confirmed, position) }
    }
}
