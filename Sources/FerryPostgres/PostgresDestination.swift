import CoreMetrics
import FerryCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import PostgresReplication
import PostgresWire
import Synchronization

/// Replicates into another PostgreSQL database (`postgres://…`), exactly once.
///
/// - Tables are created from the source definitions when missing (or, with
///   ``Options/createTables`` off, only checked). Keyed tables get the source's primary key.
/// - Changes are applied set-based: consecutive inserts/updates of a table become one
///   `INSERT … SELECT … FROM unnest(…) ON CONFLICT (key) DO UPDATE`, consecutive deletes one
///   `DELETE … USING unnest(…)`; values travel as their PostgreSQL text forms and are cast to the
///   target column's type, so every type (enums, domains, arrays, ranges) goes through its own
///   input function.
/// - Several source transactions share one target transaction, committed at `flush()` together
///   with the position row in `ferry.positions` (one row per pipeline): after a crash the
///   pipeline skips everything at or below it. A transaction that does not end within one
///   delivery gets a target transaction of its own (what precedes it is committed first), so
///   `flush()` never commits half a source transaction.
/// - UPDATE with unchanged TOAST values sets only the columns that came, so the stored value stays.
/// - Tables without a key (REPLICA IDENTITY FULL) match rows on every column (one row per change).
/// - A lost connection (the target restarted) is a retryable error: the next call reconnects,
///   reads the stored position, and the pipeline replays from there.
public actor PostgresDestination: Destination {
    public struct Options: Sendable {
        /// Create missing schemas and tables (otherwise only check them and report differences).
        public var createTables = true
        /// TRUNCATE … CASCADE on the target when the source truncates.
        public var truncateCascade = false
        /// Rows per set-based statement.
        public var batchRows = 5_000
        /// Commit the target transaction once this many rows are pending (bounded work to redo).
        public var commitRows = 50_000
        /// What to do when a change does not fit the target's rows (see ``ConflictPolicy``).
        public var conflicts = ConflictPolicy.apply
        /// Connections loading undecoded snapshot rows at once (binary COPY, batches in turn).
        public var loadConnections = 2
        /// Take in-progress transactions as they run at the source (PostgreSQL 14+), each into a
        /// target transaction of its own on a connection of its own, committed when the source
        /// commits; off: a transaction arrives whole after its commit.
        public var streamInProgress = true
        public init() {}
    }

    /// Conflicts: an insert whose key already exists, an update or delete whose row is missing.
    /// Each is counted (`ferry_conflicts_total{destination,kind}`) under either policy.
    public enum ConflictPolicy: String, Sendable, CaseIterable {
        /// Make the target match the source: the insert overwrites, the update inserts the row
        /// (an update carrying unchanged TOAST values cannot, and is skipped), the delete does nothing.
        case apply
        /// Stop the pipeline at the first conflict (the target transaction is rolled back).
        /// Not for use right after a resumed snapshot, whose replay overlaps rows by design.
        case stop
    }

    public enum ConflictKind: String, Sendable, CaseIterable {
        case insertExists = "insert_key_exists", updateMissing = "update_row_missing", deleteMissing = "delete_row_missing"
    }

    /// Reads `ferry_*` settings from a destination URL's query and returns the URL without them:
    /// `ferry_tables=create|verify`, `ferry_truncate=restrict|cascade`, `ferry_conflicts=apply|stop`,
    /// `ferry_streaming=on|off` (``Options/streamInProgress``).
    public static func splitOptions(_ url: String) throws -> (url: String, options: Options) {
        var options = Options()
        guard let question = url.firstIndex(of: "?") else { return (url, options) }
        var kept: [Substring] = []
        for item in url[url.index(after: question)...].split(separator: "&") {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard let key = parts.first, key.hasPrefix("ferry_") else { kept.append(item); continue }
            let value = parts.count > 1 ? (parts[1].removingPercentEncoding ?? parts[1]) : ""
            switch (key, value) {
            case ("ferry_tables", "create"): options.createTables = true
            case ("ferry_tables", "verify"): options.createTables = false
            case ("ferry_truncate", "restrict"): options.truncateCascade = false
            case ("ferry_truncate", "cascade"): options.truncateCascade = true
            case ("ferry_conflicts", let policy) where ConflictPolicy(rawValue: policy) != nil: options.conflicts = ConflictPolicy(rawValue: policy)!
            case ("ferry_streaming", "on"): options.streamInProgress = true
            case ("ferry_streaming", "off"): options.streamInProgress = false
            default:
                throw FerryError(.configuration, "\(key)=\(value) is not a setting of the Postgres destination",
                                 fix: "use ferry_tables=create|verify, ferry_truncate=restrict|cascade, ferry_conflicts=apply|stop, ferry_streaming=on|off")
            }
        }
        let base = String(url[..<question])
        return (kept.isEmpty ? base : base + "?" + kept.joined(separator: "&"), options)
    }

    public nonisolated let name: String
    let configuration: ConnectionConfiguration
    let pipeline: String
    let options: Options
    let logger: Logger

    private var connection: PostgresConnection?
    /// Streamed in-progress transactions, by xid: each has a target transaction of its own.
    private var streamed: [UInt32: StreamedTransaction] = [:]
    /// The streamed transaction whose block is being applied: its context is in the fields
    /// above (`connection`, `runs`, …) and the main one is parked.
    private var activeStream: UInt32?
    private var parked: ApplyContext?
    /// Connections of streamed transactions that ended, for the next one.
    private var spareConnections: [PostgresConnection] = []
    private var targets: [String: Target] = [:]
    private var targetTransactionOpen = false
    /// The open target transaction's BEGIN has not been sent yet (see ``beginTarget()``).
    private var beginPending = false
    private var transaction: TransactionInfo?
    private var skipping = false
    private var appliedPosition: LSN?
    private var durablePosition: LSN?
    private var pendingRows = 0
    /// Rows waiting to be applied, grouped by table: each table's runs in the order its changes
    /// came. Changes of different tables may be applied in another order than the source's (the
    /// target transaction commits them together); a table's own changes never are.
    private var runs: [Run] = []
    private var runRows = 0
    /// The COPY in flight on `connection` (see ``copyNewRows(_:columns:into:)``).
    private var copying: CopyInFlight?
    private var connectionNumber = 0
    /// Rows written with COPY (large runs of new rows, snapshot rows) rather than upserts.
    public private(set) var copiedRows = 0
    /// COPY statements of decoded rows started (each takes the runs of one table that follow).
    public private(set) var copies = 0
    /// Snapshot rows that came undecoded (binary COPY tuples), whether COPY or the upsert took them.
    public private(set) var undecodedRows = 0
    /// Streamed in-progress transactions: blocks applied, transactions committed and aborted,
    /// subtransactions rolled back alone.
    public private(set) var streamedBlocks = 0
    public private(set) var streamedCommits = 0
    public private(set) var streamedAborts = 0
    public private(set) var subtransactionRollbacks = 0
    /// Target transactions committed as one statement (``commitInOneStatement()``).
    public private(set) var oneStatementCommits = 0
    /// Conflicts seen so far, by kind.
    public private(set) var conflicts: [ConflictKind: Int] = [:]
    private let conflictCounters: [ConflictKind: Counter]
    /// Load undecoded snapshot rows (binary COPY), each on a connection of its own, taking
    /// batches in turn.
    private let loaders: [BinaryCopyLoader]
    private let commitConnection: CommitConnection
    private var nextLoader = 0
    /// The load statement of each table whose snapshot rows come undecoded.
    private var loadStatements: [String: BinaryCopyLoader.Statement] = [:]
    /// Tables created for this snapshot without their primary key, which is added when the
    /// table's rows are in.
    private var keysAfterLoad = Set<String>()
    /// The comment of a table whose primary key is still to be added.
    static let pendingKeyComment = "ferry: initial load in progress; the primary key is added when it ends"
    /// The load in progress on each loader: the next batches are read from the source while
    /// they run; the loader's next load, `flush()` and `close()` wait for it (and throw its error).
    private var loading: [Task<(rows: Int, copied: Bool), any Error>?]

    /// - Parameter url: `postgres://…` with optional `ferry_*` settings (see ``splitOptions(_:)``),
    ///   which override `options`.
    public init(url: String, pipeline: String, options: Options? = nil, logger: Logger,
                metrics: any MetricsFactory = NOOPMetricsHandler.instance) throws {
        let (connectionURL, fromURL) = try Self.splitOptions(url)
        self.configuration = try ConnectionConfiguration.parse(connectionURL)
        self.name = Redaction.redact(connectionURL)
        self.pipeline = pipeline
        self.options = options ?? fromURL
        self.logger = logger
        let loaders = (0..<max(1, (options ?? fromURL).loadConnections)).map { [configuration, name] _ in
            BinaryCopyLoader(configuration: configuration, destination: name, logger: logger)
        }
        self.loaders = loaders
        self.commitConnection = CommitConnection(configuration: configuration, destination: name, logger: logger)
        self.loading = Array(repeating: nil, count: loaders.count)
        let name = self.name
        conflictCounters = Dictionary(uniqueKeysWithValues: ConflictKind.allCases.map { kind in
            (kind, Counter(label: "ferry_conflicts_total", dimensions: [("destination", name), ("kind", kind.rawValue)], factory: metrics))
        })
    }

    private func conflict(_ kind: ConflictKind, table: String, key: [String?]) throws {
        conflicts[kind, default: 0] += 1
        conflictCounters[kind]?.increment()
        let keyText = "(" + key.map { $0 ?? "NULL" }.joined(separator: ", ") + ")"
        switch options.conflicts {
        case .apply:
            logger.debug("conflict applied", metadata: ["kind": "\(kind.rawValue)", "table": "\(table)", "key": "\(keyText)"])
        case .stop:
            let what = switch kind {
            case .insertExists: "an insert found key \(keyText) already in \(table)"
            case .updateMissing: "an update found no row with key \(keyText) in \(table)"
            case .deleteMissing: "a delete found no row with key \(keyText) in \(table)"
            }
            throw FerryError(.destinationRejected, "conflict on the Postgres destination \(name): \(what)",
                             fix: "find out why the target diverged from the source (other writers?); ferry_conflicts=apply makes the target follow the source")
        }
    }

    deinit {
        // Not closed by its owner (a failed run): close it now; the closure keeps the
        // connection alive until its channel is closed.
        let others = streamed.values.compactMap(\.context.connection) + spareConnections + [parked?.connection].compactMap { $0 }
        for copy in [copying, parked?.copying].compactMap({ $0 }) + streamed.values.compactMap(\.context.copying) { copy.feed.finish() }
        for connection in [connection].compactMap({ $0 }) + others {
            connection.close().whenComplete { _ in _ = connection }
        }
    }

    // MARK: Destination

    public func open() async throws -> DestinationResume {
        try await ensureConnection()
        return DestinationResume(durablePosition: durablePosition)
    }

    public nonisolated var acceptsStreamedTransactions: Bool { options.streamInProgress }
    /// Values reach the target as text through its input functions, so the source's own text
    /// (under the same session settings on both sides) is what it needs.
    public nonisolated var takesSourceText: Bool { true }
    /// postgres-nio only awaits; on the pipeline's event loop its main connection is on the
    /// same loop (``connect(onStreamLoop:)``).
    public nonisolated var neverBlocks: Bool { true }

    public func write(_ events: [PipelineEvent]) async throws {
        if activeStream == nil { try await ensureConnection() }
        do {
            for index in events.indices {
                // An insert (most of a large transaction) without an async call of its own: each
                // one checks the actor's executor, a few percent of the CPU of a large transaction.
                if !skipping, case .change(.insert(let table, let row), _) = events[index] {
                    if addInsert(table, row) { try await applyRun() }
                } else {
                    try await apply(events, at: index)
                }
            }
            if runRows >= options.batchRows { try await applyRun() }
        } catch {
            await rollBack(after: error)
            throw classify(error)
        }
    }

    public func flush() async throws -> LSN? {
        // Whole transactions commit on the main connection, also while a delivery ended inside
        // a streamed transaction's block.
        let resume = activeStream
        leaveStream()
        defer { if let resume { enterStream(resume) } }
        try await ensureConnection()
        guard transaction == nil else { return durablePosition }
        do {
            try await finishLoading()
            try await commitPending()
        } catch {
            await rollBack(after: error)
            throw classify(error)
        }
        return durablePosition
    }

    /// Yes when every source column has a target column of the same built-in type (the same
    /// type OID, below 16384, in every PostgreSQL), none of them generated: then the binary
    /// forms the source sent are what the target's columns read. The table is created first if
    /// missing, and committed, since the rows go in on the loader's own connection.
    ///
    /// A table created here (missing, every column of a built-in type, a primary key at the
    /// source) gets its primary key only once its rows are in (``PipelineEvent/snapshotTableFinished(_:)``):
    /// building the index once is cheaper than maintaining it row by row. Until then its
    /// comment says so (``pendingKeyComment``); a table found in that state later (the load
    /// was interrupted) gets its key first, duplicates from chunks loaded twice removed.
    public func acceptsBinaryCopyRows(for schema: TableSchema) async throws -> Bool {
        try await ensureConnection()
        let target: Target
        do {
            beginTarget()
            let quoted = Self.quotedName(schema)
            if options.createTables, schema.replicaIdentity != .full, schema.columns.contains(where: \.isKey),
               schema.columns.allSatisfy({ $0.typeOID < 16384 }),
               try await describe(quoted, schema: schema.schema, table: schema.name) == nil {
                try await create(schema, quoted: quoted, deferKey: true)
                keysAfterLoad.insert(schema.qualifiedName)
            } else {
                keysAfterLoad.remove(schema.qualifiedName)
                targets[schema.qualifiedName] = nil  // described again: an interrupted load is finished first
            }
            target = try await self.target(for: schema)
            try await commitPending()
        } catch {
            await rollBack(after: error)
            throw classify(error)
        }
        var columns: [String] = []
        for (source, index) in target.mapping(for: schema) {
            guard let index else { return false }
            let column = target.columns[index]
            guard column.typeOID == schema.columns[source].typeOID, column.typeOID < 16384, !column.isGenerated else { return false }
            columns.append(SQLQuoting.identifier(column.name))
        }
        loadStatements[schema.qualifiedName] = BinaryCopyLoader.Statement(
            quotedTable: target.quotedName, quotedColumns: columns, quotedKey: target.keyColumns.map { SQLQuoting.identifier(target.columns[$0].name) })
        return true
    }

    public func close() async throws {
        for index in loaders.indices {
            _ = await loading[index]?.result
            loading[index] = nil
            await loaders[index].close()
        }
        // Streamed transactions not committed yet are dropped: the source sends them again.
        leaveStream()
        await closeStreamedConnections()
        guard let connection else { return }
        if transaction == nil && targetTransactionOpen {
            try await commitPending()
        } else if targetTransactionOpen {
            try? await rollBackTarget()
        }
        try await connection.close()
        self.connection = nil
        await commitConnection.close()
    }

    // MARK: Events

    private func apply(_ events: [PipelineEvent], at index: Int) async throws {
        switch events[index] {
        case .begin(let info):
            let commitFollows = events[(index + 1)...].contains { if case .commit = $0 { true } else { false } }
            try await begin(info, commitFollows: commitFollows)
        case .change(let change, _):
            if skipping { return }
            beginTarget()
            try await apply(change)
        case .commit(_, let endLSN):
            defer {
                transaction = nil
                skipping = false
            }
            if skipping { return }
            // The transaction's rows may still wait in runs: they are applied at the latest
            // before the target commits (commitPending), together with the position.
            appliedPosition = endLSN
            if pendingRows >= options.commitRows {
                try await applyRun()
                try await commitPending()
            }
        case .snapshotTableStarted(let schema):
            beginTarget()
            _ = try await target(for: schema)
        case .snapshotRow(let schema, let row):
            beginTarget()
            try await add(.upsert, schema: schema, row: row, origin: .snapshot)
        case .snapshotCopyRows(let schema, let rows):
            guard let statement = loadStatements[schema.qualifiedName] else { throw FerryError.unrequestedCopyRows(name, table: schema) }
            let index = nextLoader
            nextLoader = (nextLoader + 1) % loaders.count
            try await finishLoading(index)
            let loader = loaders[index]
            loading[index] = Task { (rows.count, try await loader.load(rows, into: statement)) }
        case .snapshotTableFinished(let schema):
            try await applyRun()
            if keysAfterLoad.contains(schema.qualifiedName) {
                try await finishLoading()
                beginTarget()
                try await addPendingKey(schema, removingDuplicates: false)
                keysAfterLoad.remove(schema.qualifiedName)
            }
        case .schemaChange(let change):
            if skipping { return }
            beginTarget()
            try await applyRun()
            try await apply(change)
        case .message:
            break
        case .streamStart(let xid, let first):
            try await startBlock(of: xid, first: first)
        case .subtransaction(let subtransaction):
            guard let xid = activeStream, subtransaction != xid, streamed[xid]?.savepoints.contains(subtransaction) == false else { return }
            // A subtransaction can be aborted alone: its changes start after a savepoint.
            try await applyRun()
            try await execute("SAVEPOINT \(Self.savepoint(subtransaction))")
            streamed[xid]?.savepoints.append(subtransaction)
        case .streamStop:
            // Its pending rows wait in its context for the next block (bounded by batchRows).
            leaveStream()
        case .streamCommit(let info, let endLSN):
            try await commitStreamed(info, endLSN: endLSN)
        case .streamAbort(let xid, let subtransaction):
            try await abortStreamed(xid, subtransaction: subtransaction)
        }
    }

    // MARK: Streamed transactions

    /// What one target transaction is made of: the main one (whole source transactions, several
    /// grouped) or a streamed transaction's. The apply code works on the actor's fields; a
    /// streamed transaction's block swaps its context in (``enterStream(_:)``).
    private struct ApplyContext {
        var connection: PostgresConnection?
        var targetTransactionOpen = false
        var beginPending = false
        var runs: [Run] = []
        var runRows = 0
        var pendingRows = 0
        var copying: CopyInFlight?
    }

    private struct StreamedTransaction {
        var context: ApplyContext
        /// Subtransactions that have a savepoint, in the order they were made.
        var savepoints: [UInt32] = []
    }

    static func savepoint(_ subtransaction: UInt32) -> String { "ferry_subxact_\(subtransaction)" }

    private func exchange(_ other: inout ApplyContext) {
        swap(&other.connection, &connection)
        swap(&other.targetTransactionOpen, &targetTransactionOpen)
        swap(&other.beginPending, &beginPending)
        swap(&other.runs, &runs)
        swap(&other.runRows, &runRows)
        swap(&other.pendingRows, &pendingRows)
        swap(&other.copying, &copying)
    }

    private func enterStream(_ xid: UInt32) {
        guard activeStream == nil, var context = streamed[xid]?.context else { return }
        exchange(&context)
        parked = context
        activeStream = xid
    }

    /// Back to the main context (the streamed transaction's is kept for its next block).
    private func leaveStream() {
        guard let xid = activeStream, var context = parked else { return }
        exchange(&context)
        streamed[xid]?.context = context
        parked = nil
        activeStream = nil
    }

    private func startBlock(of xid: UInt32, first: Bool) async throws {
        leaveStream()
        // Whole transactions before this block commit first: the streamed transaction may go
        // on to touch rows they wrote, and would wait for their locks.
        try await commitPending()
        if first, streamed[xid] != nil {
            // Sent again from its start (the source reconnected): what came before is dropped.
            logger.warning("streamed transaction sent again from its start; discarding its partial changes",
                           metadata: ["xid": "\(xid)", "destination": "\(name)"])
            await discardStreamed(xid)
        }
        if streamed[xid] == nil {
            let connection = try await streamConnection()
            streamed[xid] = StreamedTransaction(context: ApplyContext(connection: connection))
        }
        enterStream(xid)
        beginTarget()
        streamedBlocks += 1
    }

    /// Commits what precedes the streamed transaction on the main connection, then the
    /// transaction itself with its position (both in commit order).
    private func commitStreamed(_ info: TransactionInfo, endLSN: LSN) async throws {
        leaveStream()
        try await commitPending()
        guard streamed[info.xid] != nil else {
            // None of its changes reached this destination: only the position moves.
            if appliedPosition.map({ endLSN > $0 }) ?? true {
                beginTarget()
                appliedPosition = endLSN
            }
            return
        }
        enterStream(info.xid)
        // Its last rows first: a table they need may be created on the main connection, which
        // must not commit this transaction's position.
        try await applyRun()
        if let applied = appliedPosition, info.commitLSN < applied {
            // Applied before (a replay): dropped.
            try await rollBackTarget()
        } else {
            appliedPosition = endLSN
            try await commitPending()
            streamedCommits += 1
        }
        leaveStream()
        if let ended = streamed.removeValue(forKey: info.xid), let connection = ended.context.connection, !connection.isClosed {
            spareConnections.append(connection)
        }
    }

    private func abortStreamed(_ xid: UInt32, subtransaction: UInt32) async throws {
        leaveStream()
        guard let transaction = streamed[xid] else { return }
        if subtransaction == xid {
            await discardStreamed(xid)
            streamedAborts += 1
            return
        }
        // A subtransaction that wrote nothing here has no savepoint.
        guard let at = transaction.savepoints.firstIndex(of: subtransaction) else { return }
        enterStream(xid)
        runs = []
        runRows = 0
        try await execute("ROLLBACK TO SAVEPOINT \(Self.savepoint(subtransaction))")
        leaveStream()
        // Later savepoints went with it; the table definitions may have changed back.
        streamed[xid]?.savepoints.removeSubrange((at + 1)...)
        targets.removeAll()
        subtransactionRollbacks += 1
    }

    /// Rolls back a streamed transaction; its connection serves the next one.
    private func discardStreamed(_ xid: UInt32) async {
        guard let dropped = streamed.removeValue(forKey: xid), let connection = dropped.context.connection else { return }
        targets.removeAll()
        _ = await dropped.context.copying?.end()
        guard !connection.isClosed else { return }
        do {
            if dropped.context.targetTransactionOpen && !dropped.context.beginPending { try await Self.run("ROLLBACK", on: connection, logger: logger) }
            spareConnections.append(connection)
        } catch {
            try? await connection.close()
        }
    }

    /// Closes the connections of every streamed transaction (closing rolls back) and the spares.
    private func closeStreamedConnections() async {
        let connections = streamed.values.compactMap(\.context.connection) + spareConnections
        let copies = streamed.values.compactMap(\.context.copying)
        streamed.removeAll()
        spareConnections.removeAll()
        if !connections.isEmpty { targets.removeAll() }
        for connection in connections { try? await connection.close() }
        for copy in copies { _ = await copy.end() }
    }

    private func streamConnection() async throws -> PostgresConnection {
        while let spare = spareConnections.popLast() {
            if !spare.isClosed { return spare }
        }
        // Bulk work (a large transaction in progress): on a loop of its own, beside the stream's.
        return try await connect(onStreamLoop: false)
    }

    private func begin(_ info: TransactionInfo, commitFollows: Bool) async throws {
        if let open = transaction {
            // Delivered again before its commit (the source reconnected): the target
            // transaction holds only this partial transaction; drop it.
            logger.warning("transaction delivered again before its commit; discarding its partial changes",
                           metadata: ["xid": "\(open.xid)", "destination": "\(name)"])
            try await rollBackTarget()
            forgetUncommitted()
        }
        transaction = info
        skipping = false
        if let applied = appliedPosition, info.commitLSN < applied {
            skipping = true
            return
        }
        // A transaction that will not end in this delivery gets a target transaction of its own.
        if !commitFollows && targetTransactionOpen {
            try await commitPending()
        }
    }

    private func apply(_ change: Change) async throws {
        switch change {
        case .insert(let table, let row):
            if addInsert(table, row) { try await applyRun() }
        case .update(let table, let old, _, let row):
            let target = try await target(for: table)
            if row.contains(where: { if case .unchangedToast = $0 { true } else { false } }) {
                try await applyRun()
                try await updateChangedColumns(target, schema: table, old: old, row: row)
            } else if target.isKeyless {
                try await applyRun()
                if let old { try await deleteOne(target, schema: table, row: old) }
                try await add(.upsert, schema: table, row: row, origin: .insert)
            } else if let old, case let sources = target.keySources(for: table),
                      Target.key(of: old, sources: sources) != Target.key(of: row, sources: sources) {
                // The key changed: the old row goes, the new one comes.
                try await add(.delete, schema: table, row: old, origin: .update)
                try await add(.upsert, schema: table, row: row, origin: .insert)
            } else {
                try await add(.upsert, schema: table, row: row, origin: .update)
            }
        case .delete(let table, let old, _):
            let target = try await target(for: table)
            if target.isKeyless {
                try await applyRun()
                try await deleteOne(target, schema: table, row: old)
            } else {
                try await add(.delete, schema: table, row: old, origin: .update)
            }
        case .truncate(let tables, _, let restartIdentity):
            try await applyRun()
            var names: [String] = []
            for table in tables { names.append(try await target(for: table).quotedName) }
            guard !names.isEmpty else { return }
            try await execute("TRUNCATE \(names.joined(separator: ", "))" + (restartIdentity ? " RESTART IDENTITY" : "")
                              + (options.truncateCascade ? " CASCADE" : ""))
        }
    }

    private func apply(_ change: SchemaChange) async throws {
        let current = try await target(for: change.old)
        for difference in change.differences {
            switch difference {
            case .columnAdded(let column):
                guard let definition = change.new.columns.first(where: { $0.name == column }) else { continue }
                let type = try await typeName(for: definition)
                try await execute("ALTER TABLE \(current.quotedName) ADD COLUMN IF NOT EXISTS \(SQLQuoting.identifier(column)) \(type)")
                logger.info("column added on the target", metadata: ["table": "\(current.quotedName)", "column": "\(column)", "type": "\(type)"])
            default:
                throw FerryError(.schemaChange,
                    "the source table \(change.old.qualifiedName) changed in a way the Postgres destination does not apply by itself: \(difference)",
                    fix: "apply the same change to \(current.quotedName) on the target, then restart ferry run (added columns are applied automatically)")
            }
        }
        targets[change.old.qualifiedName] = nil
        targets[change.new.qualifiedName] = nil
        _ = try await target(for: change.new)
    }

    // MARK: Runs (set-based statements)

    enum RunKind: Sendable { case upsert, delete }

    /// Where a row of a run comes from: what the target is expected to hold before it.
    enum Origin: Sendable { case insert, update, snapshot }

    struct Run: Sendable {
        var table: String
        var kind: RunKind
        var schema: TableSchema
        var rows: [Row] = []
        var origins: [Origin] = []
    }

    /// How an insert is applied, synchronously (``write(_:)`` takes most inserts here directly):
    /// into its table's run, in the open target transaction. Returns whether ``applyRun()`` is due.
    private func addInsert(_ table: TableSchema, _ row: Row) -> Bool {
        beginTarget()
        return addRow(.upsert, schema: table, row: row, origin: .insert)
    }

    private func add(_ kind: RunKind, schema: TableSchema, row: Row, origin: Origin) async throws {
        if addRow(kind, schema: schema, row: row, origin: origin) { try await applyRun() }
    }

    /// The table's latest run takes the row if it is of the same kind; otherwise a new run of
    /// this table starts (after every run already pending). Returns whether the pending runs
    /// are full (``applyRun()`` is due).
    private func addRow(_ kind: RunKind, schema: TableSchema, row: Row, origin: Origin) -> Bool {
        let last = runs.last?.schema === schema ? runs.count - 1 : runs.lastIndex { $0.table == schema.qualifiedName }
        if let last, runs[last].kind == kind, runs[last].schema === schema {
            runs[last].rows.append(row)
            runs[last].origins.append(origin)
        } else {
            runs.append(Run(table: schema.qualifiedName, kind: kind, schema: schema, rows: [row], origins: [origin]))
        }
        pendingRows += 1
        runRows += 1
        return runRows >= options.batchRows
    }

    /// Applies every pending run, in order.
    private func applyRun() async throws {
        let pending = runs
        runs = []
        runRows = 0
        for current in pending { try await apply(current) }
    }

    private func apply(_ current: Run, tryCopy: Bool = true) async throws {
        let target = try await target(for: current.schema)
        // A large run of new rows (the snapshot, a bulk insert) goes in with COPY, inside a
        // savepoint, while the next changes are decoded; the next runs of new rows of the same
        // table continue it (``CopyInFlight``). If a key is already there (a resumed snapshot
        // chunk, a replay, a key twice in the rows) the savepoint is rolled back and the rows
        // take the upsert below (``finishCopy()``).
        if tryCopy, current.kind == .upsert, !target.isKeyless, current.origins.allSatisfy({ $0 != .update }) {
            if var open = copying, open.table == current.table, open.schema === current.schema,
               open.rows + current.rows.count <= max(options.commitRows, Self.copyThreshold) {
                copying = nil  // `open` alone holds its runs: appending does not copy them
                open.feed.yield(current.rows)
                open.runs.append(current)
                open.rows += current.rows.count
                copying = open
                return
            }
            if current.rows.count >= Self.copyThreshold,
               try await copyNewRows(current, columns: target.mapping(for: current.schema).filter { $0.target != nil }, into: target) {
                return
            }
        }
        let statement = try Self.statement(for: current, into: target, parametersAfter: 0)
        var returned: [(key: [String?], inserted: Bool?)] = []
        for row in try await repeatedStatement(statement.sql, statement.parameters) {
            let (key, inserted) = try row.decode((String, String?).self)
            returned.append(Self.touched(key: key, inserted: inserted, keyIsJSON: statement.keyIsJSON))
        }
        try settle(statement, returned: returned)
    }

    /// One run as one set-based statement, and what its RETURNING rows are checked against.
    struct RunStatement {
        /// `INSERT … SELECT … FROM unnest(…) [ON CONFLICT …]` or `DELETE … USING unnest(…)`;
        /// its parameters are numbered from `parametersAfter + 1`. Keyed tables return
        /// `(ferry_key text, ferry_inserted text)` per row touched (all text: the prepared path reads
        /// results whose format postgres-nio does not track, and text reads the same either way).
        var sql: String
        /// One text[] literal per unnest column.
        var parameters: [String]
        var returnsRows: Bool
        /// `ferry_key` is a JSON array of texts (several key columns), else the key's one text.
        var keyIsJSON: Bool
        var kind: RunKind
        var quotedTable: String
        /// Upserts: what the target should hold before the statement, by key (the first change
        /// of a key in the run tells: an insert expects no row, an update one). Deletes: every
        /// row's key.
        var expected: [[String?]: Origin] = [:]
        var deletedKeys: [[String?]] = []
    }

    static func statement(for current: Run, into target: Target, parametersAfter base: Int) throws -> RunStatement {
        let shape = try target.shapes.shape(of: current.schema, kind: current.kind, parametersAfter: base) {
            try Self.shape(of: current.schema, kind: current.kind, into: target, parametersAfter: base)
        }
        switch current.kind {
        case .upsert:
            var rows = current.rows
            var expected: [[String?]: Origin] = [:]
            if !target.isKeyless {
                // One statement cannot touch a row twice: the last version of each key wins.
                var seen: [[String?]: Int] = [:]
                var kept: [Row] = []
                for (row, origin) in zip(rows, current.origins) {
                    let key = Target.key(of: row, sources: shape.keySources)
                    if let at = seen[key] { kept[at] = row } else { seen[key] = kept.count; kept.append(row); expected[key] = origin }
                }
                rows = kept
            }
            return RunStatement(sql: shape.sql, parameters: shape.parameterSources.map { arrayLiteral(rows, column: $0) },
                                returnsRows: !target.isKeyless, keyIsJSON: shape.keyIsJSON, kind: .upsert,
                                quotedTable: target.quotedName, expected: expected)
        case .delete:
            return RunStatement(sql: shape.sql, parameters: shape.parameterSources.map { arrayLiteral(current.rows, column: $0) },
                                returnsRows: true, keyIsJSON: shape.keyIsJSON, kind: .delete, quotedTable: target.quotedName,
                                deletedKeys: current.rows.map { Target.key(of: $0, sources: shape.keySources) })
        }
    }

    /// What a run's statement is made of apart from its rows: the same for every run of a table
    /// (a source definition), kind and first parameter number, so it is made once per target
    /// table (``Target/shapes``).
    struct StatementShape {
        var sql: String
        /// The source column of each parameter (one text[] per unnest column).
        var parameterSources: [Int]
        /// The source column of each key column (nil: the source lacks it).
        var keySources: [Int?]
        /// `ferry_key` is a JSON array of the key's texts (several key columns) rather than the text.
        var keyIsJSON: Bool
    }

    /// The statement shapes of one target table, by source definition, kind and first parameter
    /// number (a handful: the cache is emptied past 64).
    final class StatementShapes {
        private struct Key: Hashable {
            var schema: ObjectIdentifier
            var kind: RunKind
            var base: Int
        }
        // The schema is kept with its shape: its identifier cannot be reused while it is here.
        private var entries: [Key: (schema: TableSchema, shape: StatementShape)] = [:]

        func shape(of schema: TableSchema, kind: RunKind, parametersAfter base: Int,
                   make: () throws -> StatementShape) rethrows -> StatementShape {
            let key = Key(schema: ObjectIdentifier(schema), kind: kind, base: base)
            if let entry = entries[key], entry.schema === schema { return entry.shape }
            let shape = try make()
            if entries.count >= 64 { entries.removeAll() }
            entries[key] = (schema, shape)
            return shape
        }
    }

    static func shape(of schema: TableSchema, kind: RunKind, into target: Target, parametersAfter base: Int) throws -> StatementShape {
        // Each source column's place in the target (by name).
        let mapping = target.mapping(for: schema)
        let keySources = target.keySources(for: schema)
        let keyIsJSON = target.keyColumns.count != 1
        switch kind {
        case .upsert:
            let columns = mapping.filter { $0.target != nil }
            let names = columns.map { SQLQuoting.identifier(target.columns[$0.target!].name) }
            let selects = columns.enumerated().map { index, column in
                "v.c\(index)::\(target.columns[column.target!].castType)"
            }
            var sql = "INSERT INTO \(target.quotedName) (\(names.joined(separator: ", "))) SELECT \(selects.joined(separator: ", ")) FROM unnest("
                + columns.indices.map { "$\(base + $0 + 1)::text::text[]" }.joined(separator: ", ") + ") AS v("
                + columns.indices.map { "c\($0)" }.joined(separator: ", ") + ")"
            if !target.isKeyless {
                let keyNames = target.keyColumns.map { SQLQuoting.identifier(target.columns[$0].name) }
                let updates = columns.compactMap(\.target).filter { !target.keyColumns.contains($0) }
                    .map { "\(SQLQuoting.identifier(target.columns[$0].name)) = EXCLUDED.\(SQLQuoting.identifier(target.columns[$0].name))" }
                sql += " ON CONFLICT (\(keyNames.joined(separator: ", "))) "
                sql += updates.isEmpty ? "DO NOTHING" : "DO UPDATE SET " + updates.joined(separator: ", ")
                // Which keys were inserted (xmax = 0) and which updated: the conflicts.
                sql += " RETURNING " + target.keyText(prefix: "") + " AS ferry_key, (xmax = 0)::text AS ferry_inserted"
            }
            return StatementShape(sql: sql, parameterSources: columns.map(\.source), keySources: keySources, keyIsJSON: keyIsJSON)
        case .delete:
            var conditions: [String] = []
            var sources: [Int] = []
            for (index, keyColumn) in target.keyColumns.enumerated() {
                guard let source = keySources[index] else {
                    throw FerryError(.destinationRejected, "the key column \(target.columns[keyColumn].name) of \(target.quotedName) is not in the source table")
                }
                sources.append(source)
                conditions.append("t.\(SQLQuoting.identifier(target.columns[keyColumn].name)) = v.k\(index)::\(target.columns[keyColumn].castType)")
            }
            let sql = "DELETE FROM \(target.quotedName) AS t USING unnest("
                + target.keyColumns.indices.map { "$\(base + $0 + 1)::text::text[]" }.joined(separator: ", ") + ") AS v("
                + target.keyColumns.indices.map { "k\($0)" }.joined(separator: ", ") + ") WHERE " + conditions.joined(separator: " AND ")
                + " RETURNING " + target.keyText(prefix: "t.") + " AS ferry_key, NULL::text AS ferry_inserted"
            return StatementShape(sql: sql, parameterSources: sources, keySources: keySources, keyIsJSON: keyIsJSON)
        }
    }

    /// One RETURNING row of a run (`ferry_key`, `ferry_inserted`): the key, and whether the row was inserted.
    static func touched(key: String, inserted: String?, keyIsJSON: Bool) -> (key: [String?], inserted: Bool?) {
        (keyIsJSON ? keyFromJSON(key) : [key], inserted.map { $0 == "true" })
    }

    /// Counts (and, under ``ConflictPolicy/stop``, refuses) the conflicts a run's RETURNING rows show.
    private func settle(_ statement: RunStatement, returned: [(key: [String?], inserted: Bool?)]) throws {
        switch statement.kind {
        case .upsert:
            var outcome: [[String?]: Bool] = [:]
            for row in returned { outcome[row.key] = row.inserted ?? false }
            for (key, origin) in statement.expected where origin != .snapshot {
                let inserted = outcome[key]  // nil: DO NOTHING found the row
                if origin == .insert && inserted != true { try conflict(.insertExists, table: statement.quotedTable, key: key) }
                if origin == .update && inserted == true { try conflict(.updateMissing, table: statement.quotedTable, key: key) }
            }
        case .delete:
            let deleted = Set(returned.map(\.key))
            for key in statement.deletedKeys where !deleted.contains(key) {
                try conflict(.deleteMissing, table: statement.quotedTable, key: key)
            }
        }
    }

    /// An UPDATE that sets only the values that came (unchanged TOAST values stay as stored).
    private func updateChangedColumns(_ target: Target, schema: TableSchema, old: Row?, row: Row) async throws {
        let mapping = target.mapping(for: schema)
        var bindings = PostgresBindings()
        var sets: [String] = []
        for column in mapping {
            guard let index = column.target else { continue }
            if case .unchangedToast = row[column.source] { continue }
            bindings.append(row[column.source].postgresText)
            sets.append("\(SQLQuoting.identifier(target.columns[index].name)) = $\(sets.count + 1)::\(target.columns[index].castType)")
        }
        let match = old ?? row
        var conditions: [String] = []
        let matchColumns = target.isKeyless ? mapping.compactMap(\.target) : target.keyColumns
        for index in matchColumns {
            guard let source = mapping.first(where: { $0.target == index })?.source else { continue }
            if case .unchangedToast = match[source] { continue }
            bindings.append(match[source].postgresText)
            conditions.append("\(SQLQuoting.identifier(target.columns[index].name))::text IS NOT DISTINCT FROM $\(sets.count + conditions.count + 1)")
        }
        guard !sets.isEmpty else { return }
        let whereClause = conditions.joined(separator: " AND ")
        let sql = target.isKeyless
            ? "UPDATE \(target.quotedName) SET \(sets.joined(separator: ", ")) WHERE ctid = (SELECT ctid FROM \(target.quotedName) WHERE \(whereClause) LIMIT 1) RETURNING 1"
            : "UPDATE \(target.quotedName) SET \(sets.joined(separator: ", ")) WHERE \(whereClause) RETURNING 1"
        let updated = try await execute(sql, bindings)
        if updated == 0 {
            logger.warning("an update with unchanged TOAST values found no row on the target; it cannot be rebuilt and was skipped",
                           metadata: ["table": "\(target.quotedName)", "destination": "\(name)"])
            try conflict(.updateMissing, table: target.quotedName, key: target.isKeyless ? [] : target.key(of: match, schema: schema))
        }
    }

    /// Deletes one row equal (by text form) to `row`: tables without a key.
    private func deleteOne(_ target: Target, schema: TableSchema, row: Row) async throws {
        var bindings = PostgresBindings()
        var conditions: [String] = []
        for column in target.mapping(for: schema) {
            guard let index = column.target else { continue }
            if case .unchangedToast = row[column.source] { continue }
            bindings.append(row[column.source].postgresText)
            conditions.append("\(SQLQuoting.identifier(target.columns[index].name))::text IS NOT DISTINCT FROM $\(conditions.count + 1)")
        }
        try await execute("DELETE FROM \(target.quotedName) WHERE ctid = (SELECT ctid FROM \(target.quotedName) WHERE \(conditions.joined(separator: " AND ")) LIMIT 1)",
                          bindings)
    }

    static func keyFromJSON(_ text: String) -> [String?] {
        guard let array = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [Any] else { return [text] }
        return array.map { $0 as? String }
    }

    static let copyThreshold = 200

    /// A COPY … FROM STDIN (text format) on a context's connection, inside the savepoint
    /// `ferry_copy`: the rows of runs are fed to it while the destination takes the next
    /// changes, and the next runs of new rows of the same table go on in it (up to
    /// `commitRows` rows) rather than each paying for a COPY of its own (the round trips of
    /// the savepoint and the COPY, and the target waiting while the next run is gathered).
    /// It keeps the runs it took: if a key is already there the savepoint is rolled back and
    /// they are upserted (``finishCopy()``). Every other statement on the connection waits for
    /// it first (``readyConnection()``).
    struct CopyInFlight {
        let table: String
        let schema: TableSchema
        /// Rows for the COPY, in order; ``end()`` finishes it.
        let feed: AsyncStream<[Row]>.Continuation
        /// True when the rows went in; false when a key was already there (rolled back).
        let task: Task<Bool, any Error>
        var runs: [Run]
        var rows: Int

        /// Ends the feed and waits for the COPY.
        func end() async -> Result<Bool, any Error> {
            feed.finish()
            return await task.result
        }
    }

    /// Starts a COPY of a run of rows none of which should exist yet (``CopyInFlight``).
    /// Returns false when COPY cannot name the table (the caller upserts instead).
    private func copyNewRows(_ run: Run, columns: [(source: Int, target: Int?)], into target: Target) async throws -> Bool {
        // postgres-nio writes COPY "table" ("column", …) without escaping and without a schema:
        // names with a double quote take the upsert, and the schema comes from search_path.
        let names = columns.map { target.columns[$0.target!].name }
        guard !names.contains(where: { $0.contains("\"") }), !target.schema.contains("\""), !target.table.contains("\"") else { return false }
        try await execute("SAVEPOINT ferry_copy")
        try await execute("SET LOCAL search_path TO \(SQLQuoting.identifier(target.schema))")
        guard let connection, !connection.isClosed else { throw FerryError(.destination, "the connection to \(name) is closed") }
        let sources = columns.map(\.source)
        let table = target.table, logger = self.logger
        let (stream, feed) = AsyncStream<[Row]>.makeStream()
        feed.yield(run.rows)
        let task = Task {
            do {
                try await connection.copyFrom(table: table, columns: names, format: .text(.init()), logger: logger) { writer in
                    var text: [UInt8] = []
                    text.reserveCapacity(1 << 20)
                    var scratch: [UInt8] = []
                    for await rows in stream {
                        var next = rows.startIndex
                        while next < rows.endIndex {
                            let end = min(next + 2_000, rows.endIndex)
                            text.removeAll(keepingCapacity: true)
                            Self.appendCopyText(rows[next..<end], sources: sources, to: &text, scratch: &scratch)
                            try await writer.write(ByteBuffer(bytes: text))
                            next = end
                        }
                    }
                }
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                // Rolling back to the savepoint also undoes SET LOCAL.
                try await Self.run("ROLLBACK TO SAVEPOINT ferry_copy", on: connection, logger: logger)
                try await Self.run("RELEASE SAVEPOINT ferry_copy", on: connection, logger: logger)
                return false
            }
            try await Self.run("SET LOCAL search_path TO DEFAULT", on: connection, logger: logger)
            try await Self.run("RELEASE SAVEPOINT ferry_copy", on: connection, logger: logger)
            return true
        }
        copying = CopyInFlight(table: run.table, schema: run.schema, feed: feed, task: task, runs: [run], rows: run.rows.count)
        copies += 1
        return true
    }

    /// Waits for the COPY in flight on this context's connection (and throws its error); the
    /// runs it could not copy (a key already there) are upserted now.
    private func finishCopy() async throws {
        guard let open = copying else { return }
        copying = nil
        if try await open.end().get() {
            copiedRows += open.rows
        } else {
            for run in open.runs { try await apply(run, tryCopy: false) }
        }
    }

    /// Rows as COPY text lines: tab between columns, `\N` for NULL, backslash, tab, newline
    /// and carriage return escaped.
    static func appendCopyText(_ rows: ArraySlice<Row>, sources: [Int], to out: inout [UInt8], scratch: inout [UInt8]) {
        for row in rows {
            for (index, source) in sources.enumerated() {
                if index > 0 { out.append(UInt8(ascii: "\t")) }
                // Written in place; the rare value with a byte to escape is written again.
                let start = out.count
                guard row[source].appendPostgresText(to: &out) else {
                    out.append(UInt8(ascii: "\\"))
                    out.append(UInt8(ascii: "N"))
                    continue
                }
                guard out[start...].contains(where: { $0 == UInt8(ascii: "\\") || $0 < 0x0E && ($0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r")) }) else {
                    continue
                }
                scratch.removeAll(keepingCapacity: true)
                scratch.append(contentsOf: out[start...])
                out.removeSubrange(start...)
                for byte in scratch {
                    switch byte {
                    case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\\"))
                    case UInt8(ascii: "\t"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
                    case UInt8(ascii: "\n"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
                    case UInt8(ascii: "\r"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
                    default: out.append(byte)
                    }
                }
            }
            out.append(UInt8(ascii: "\n"))
        }
    }

    /// One statement on `connection` outside the actor's `execute` (a COPY in flight, a
    /// connection being set up or given back).
    private static func run(_ sql: String, on connection: PostgresConnection, logger: Logger) async throws {
        for try await _ in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) {}
    }

    /// Column `column` of `rows` as a text[] literal (`{"a","b\"c",NULL}`: every element
    /// quoted), built in bytes (the hot path of every set-based statement).
    static func arrayLiteral(_ rows: [Row], column: Int) -> String {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(rows.count * 12)
        var scratch: [UInt8] = []
        for (index, row) in rows.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            scratch.removeAll(keepingCapacity: true)
            guard row[column].appendPostgresText(to: &scratch) else {
                out.append(contentsOf: "NULL".utf8)
                continue
            }
            out.append(quote)
            for byte in scratch {
                if byte == quote || byte == backslash { out.append(backslash) }
                out.append(byte)
            }
            out.append(quote)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }


    // MARK: Target tables

    struct Target {
        struct Column {
            var name: String
            /// The type to cast text into (format_type without the modifier).
            var castType: String
            var typeOID: UInt32
            var isGenerated: Bool
        }
        var quotedName: String
        /// Unquoted schema and table names.
        var schema: String
        var table: String
        var columns: [Column]
        /// Indexes (into `columns`) of the primary key; empty: match rows on every column.
        var keyColumns: [Int]
        /// Created by Ferry for an initial load whose primary key is still to be added.
        var keyPending = false

        var isKeyless: Bool { keyColumns.isEmpty }

        /// For each source column, its index in the target (nil: the target lacks it).
        func mapping(for schema: TableSchema) -> [(source: Int, target: Int?)] {
            schema.columns.enumerated().map { index, column in (index, columns.firstIndex { $0.name == column.name }) }
        }

        /// The statements of runs into this table (``StatementShapes``).
        let shapes = StatementShapes()

        /// The key's text form (for RETURNING): the one key column's text, or the key columns'
        /// texts as one JSON array text.
        func keyText(prefix: String) -> String {
            let texts = keyColumns.map { "\(prefix)\(SQLQuoting.identifier(columns[$0].name))::text" }
            return texts.count == 1 ? texts[0] : "json_build_array(" + texts.joined(separator: ", ") + ")::text"
        }

        func key(of row: Row, schema: TableSchema) -> [String?] {
            Self.key(of: row, sources: keySources(for: schema))
        }

        /// The source column of each key column, by name (nil: the source lacks it).
        func keySources(for schema: TableSchema) -> [Int?] {
            keyColumns.map { keyIndex in schema.columns.firstIndex { $0.name == columns[keyIndex].name } }
        }

        /// The key of a row whose key columns are at `sources` (``keySources(for:)``).
        static func key(of row: Row, sources: [Int?]) -> [String?] {
            sources.map { $0.flatMap { row[$0].postgresText } }
        }
    }

    /// `"schema"."table"` of the source table's namesake on the target.
    static func quotedName(_ schema: TableSchema) -> String {
        SQLQuoting.identifier(schema.schema) + "." + SQLQuoting.identifier(schema.name)
    }

    private func target(for schema: TableSchema) async throws -> Target {
        if let known = targets[schema.qualifiedName] { return known }
        let quoted = Self.quotedName(schema)
        var target = try await describe(quoted, schema: schema.schema, table: schema.name)
        if target == nil {
            guard options.createTables else {
                throw FerryError(.destinationRejected, "table \(quoted) does not exist on the target \(name)",
                                 fix: "create it, or let Ferry create tables (drop the verify-only option)")
            }
            if let xid = activeStream {
                // Created inside the streamed transaction, the table would exist only once it
                // commits, not for whole transactions committed before: create it on the main
                // connection.
                leaveStream()
                beginTarget()
                try await create(schema, quoted: quoted)
                try await commitPending()
                enterStream(xid)
            } else {
                try await create(schema, quoted: quoted)
            }
            target = try await describe(quoted, schema: schema.schema, table: schema.name)
        }
        if target?.keyPending == true && !keysAfterLoad.contains(schema.qualifiedName) {
            // An initial load that did not end: rows of a chunk may be there twice.
            try await addPendingKey(schema, removingDuplicates: true)
            target = try await describe(quoted, schema: schema.schema, table: schema.name)
        }
        guard let target else { throw FerryError(.destinationRejected, "table \(quoted) could not be created on \(name)") }
        let missing = schema.columns.map(\.name).filter { name in !target.columns.contains { $0.name == name } }
        if !missing.isEmpty {
            throw FerryError(.destinationRejected, "table \(quoted) on the target lacks column(s) \(missing.joined(separator: ", ")) of the source",
                             fix: "ALTER TABLE \(quoted) ADD COLUMN … for each, with the source's type")
        }
        if target.isKeyless && schema.replicaIdentity != .full && !keysAfterLoad.contains(schema.qualifiedName) {
            throw FerryError(.destinationRejected,
                             "table \(schema.qualifiedName) has no primary key on the target and the source does not send whole old rows (REPLICA IDENTITY \(schema.replicaIdentity.rawValue.uppercased()))",
                             fix: "give \(quoted) a primary key on both sides, or ALTER TABLE \(schema.qualifiedName) REPLICA IDENTITY FULL on the source")
        }
        targets[schema.qualifiedName] = target
        return target
    }

    private func describe(_ quoted: String, schema: String, table: String) async throws -> Target? {
        var bindings = PostgresBindings()
        bindings.append(quoted)
        bindings.append(Self.pendingKeyComment)
        let rows = try await queryRows("""
            SELECT a.attname::text,
                   -- Values are cast to the type without its modifier and the column's own
                   -- assignment rules apply (an explicit cast to bit(n) or varchar(n) would
                   -- truncate silently); bit and character, whose bare names mean length 1, go
                   -- through varbit and bpchar.
                   CASE a.atttypid WHEN 'bit'::regtype THEN 'varbit' WHEN 'bpchar'::regtype THEN 'bpchar'
                        WHEN 'bit[]'::regtype THEN 'varbit[]' WHEN 'bpchar[]'::regtype THEN 'bpchar[]'
                        ELSE format_type(a.atttypid, NULL) END,
                   -- indkey is an int2vector, indexed from 0
                   CASE WHEN a.attnum = ANY(i.indkey) THEN array_position(i.indkey::int2[], a.attnum) - array_lower(i.indkey::int2[], 1) + 1
                        ELSE 0 END::int4,
                   a.atttypid::int8, a.attgenerated <> '',
                   coalesce(obj_description(a.attrelid, 'pg_class'), '') = $2
            FROM pg_attribute a
            LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, bindings)
        guard !rows.isEmpty else { return nil }
        var columns: [Target.Column] = []
        var keyed: [(position: Int, index: Int)] = []
        var keyPending = false
        for row in rows {
            let (name, type, keyPosition, typeOID, generated, pending) = try row.decode((String, String, Int32, Int64, Bool, Bool).self)
            keyPending = pending
            if keyPosition > 0 { keyed.append((Int(keyPosition), columns.count)) }
            columns.append(Target.Column(name: name, castType: type, typeOID: UInt32(typeOID), isGenerated: generated))
        }
        return Target(quotedName: quoted, schema: schema, table: table, columns: columns,
                      keyColumns: keyed.sorted { $0.position < $1.position }.map(\.index), keyPending: keyPending)
    }

    private func create(_ schema: TableSchema, quoted: String, deferKey: Bool = false) async throws {
        var definitions: [String] = []
        for column in schema.columns {
            let type = try await typeName(for: column)
            definitions.append("\(SQLQuoting.identifier(column.name)) \(type)" + (column.notNull == true ? " NOT NULL" : ""))
        }
        let keys = schema.columns.filter(\.isKey).map { SQLQuoting.identifier($0.name) }
        if schema.replicaIdentity != .full && !keys.isEmpty && !deferKey {
            definitions.append("PRIMARY KEY (\(keys.joined(separator: ", ")))")
        }
        try await execute("CREATE SCHEMA IF NOT EXISTS \(SQLQuoting.identifier(schema.schema))")
        try await execute("CREATE TABLE IF NOT EXISTS \(quoted) (\(definitions.joined(separator: ", ")))")
        if deferKey { try await execute("COMMENT ON TABLE \(quoted) IS \(SQLQuoting.literal(Self.pendingKeyComment))") }
        logger.info("target table created", metadata: ["table": "\(quoted)", "destination": "\(name)"])
    }

    /// Adds the primary key of a table created without it for its initial load, and clears the
    /// comment that said so (in the open target transaction). `removingDuplicates`: first
    /// keep one row per key (the physically last: a chunk loaded again reads newer rows).
    private func addPendingKey(_ schema: TableSchema, removingDuplicates: Bool) async throws {
        let quoted = Self.quotedName(schema)
        let keys = schema.columns.filter(\.isKey).map { SQLQuoting.identifier($0.name) }
        guard !keys.isEmpty else { return }
        if removingDuplicates {
            let removed = try await execute("DELETE FROM \(quoted) AS a USING \(quoted) AS b WHERE a.ctid < b.ctid AND "
                                            + keys.map { "a.\($0) = b.\($0)" }.joined(separator: " AND ") + " RETURNING 1")
            logger.info("finishing an interrupted initial load", metadata: ["table": "\(quoted)", "duplicates_removed": "\(removed)",
                                                                          "destination": "\(name)"])
        }
        try await execute("ALTER TABLE \(quoted) ADD PRIMARY KEY (\(keys.joined(separator: ", ")))")
        try await execute("COMMENT ON TABLE \(quoted) IS NULL")
        targets[schema.qualifiedName] = nil
        logger.info("primary key added after the initial load", metadata: ["table": "\(quoted)", "destination": "\(name)"])
    }

    /// The column's type on the target: built-in types by OID (the same in every PostgreSQL),
    /// others by name when the target knows the type, else text.
    private func typeName(for column: TableSchema.Column) async throws -> String {
        var bindings = PostgresBindings()
        bindings.append(Int64(column.typeOID))
        bindings.append(Int32(column.typeModifier))
        bindings.append(column.typeName ?? "")
        let rows = try await queryRows("""
            SELECT CASE WHEN $1::int8 < 16384 THEN format_type($1::int8::oid, nullif($2::int4, -1))
                        WHEN to_regtype(nullif($3::text, '')) IS NOT NULL THEN format_type(to_regtype($3::text), nullif($2::int4, -1))
                        ELSE 'text' END
            """, bindings)
        guard let row = rows.first else { return "text" }
        return try row.decode(String.self)
    }

    // MARK: Transactions and positions

    /// Waits for the loads in progress (on every loader, or on one).
    private func finishLoading(_ only: Int? = nil) async throws {
        for index in only.map({ [$0] }) ?? Array(loaders.indices) {
            guard let task = loading[index] else { continue }
            loading[index] = nil
            let done = try await task.value
            undecodedRows += done.rows
            if done.copied { copiedRows += done.rows }
        }
    }

    /// Opens a target transaction. BEGIN itself waits for the first statement
    /// (``sendPendingBegin()``): a transaction whose whole work reaches the target at commit
    /// commits in one statement and one round trip (``commitInOneStatement()``).
    private func beginTarget() {
        guard !targetTransactionOpen else { return }
        targetTransactionOpen = true
        beginPending = true
    }

    /// Sends the BEGIN of the open target transaction if it has not gone yet (before any
    /// statement of the transaction).
    private func sendPendingBegin() async throws {
        guard beginPending else { return }
        beginPending = false
        guard let connection, !connection.isClosed else { throw FerryError(.destination, "the connection to \(name) is closed") }
        try await Self.run("BEGIN", on: connection, logger: logger)
    }

    /// Ends the target transaction without committing it (nothing to send when its BEGIN never went).
    private func rollBackTarget() async throws {
        defer {
            targetTransactionOpen = false
            beginPending = false
        }
        guard targetTransactionOpen, !beginPending else { return }
        try await execute("ROLLBACK")
    }

    private func commitPending() async throws {
        guard targetTransactionOpen else {
            // Source transactions with nothing for the target (PostgreSQL 14 sends those of
            // unpublished tables): everything up to them is committed, so they are durable
            // as they are. Not writing their position only means a restart may see them again.
            if transaction == nil, let applied = appliedPosition, durablePosition.map({ applied > $0 }) ?? true { durablePosition = applied }
            return
        }
        if beginPending, try await commitInOneStatement() { return }
        try await applyRun()
        if let applied = appliedPosition, applied != durablePosition {
            var bindings = PostgresBindings()
            bindings.append(pipeline)
            bindings.append(applied.description)
            try await execute(Self.positionUpsert(parameters: (1, 2)), bindings)
        }
        if beginPending {
            beginPending = false  // nothing was sent: there is no transaction on the target
        } else {
            try await execute("COMMIT")
        }
        targetTransactionOpen = false
        pendingRows = 0
        durablePosition = appliedPosition
    }

    static func positionUpsert(parameters: (pipeline: Int, lsn: Int)) -> String {
        """
        INSERT INTO ferry.positions (pipeline, lsn, updated_at) VALUES ($\(parameters.pipeline), $\(parameters.lsn), now())
        ON CONFLICT (pipeline) DO UPDATE SET lsn = excluded.lsn, updated_at = now()
        """
    }

    /// Runs each on a table of its own, small, under ``ConflictPolicy/apply``, and nothing
    /// sent to the target yet in this transaction: the runs and the position row go as one
    /// statement (data-modifying CTEs), which commits by itself — one round trip instead of
    /// BEGIN, a statement per run, the position and COMMIT. The conflicts are counted from its
    /// rows afterwards (under `stop` they must be able to roll the transaction back, so that
    /// policy takes the usual path). The statement goes on the commit connection
    /// (``CommitConnection``, Ferry's own client); when that cannot be opened, the usual path.
    /// Returns false when the transaction does not qualify.
    private func commitInOneStatement() async throws -> Bool {
        guard beginPending, copying == nil, options.conflicts == .apply,
              Set(runs.map(\.table)).count == runs.count,
              runs.allSatisfy({ $0.rows.count < Self.copyThreshold }) else { return false }
        let runTargets = runs.compactMap { targets[$0.table] }
        guard runTargets.count == runs.count, !runTargets.contains(where: \.keyPending),
              await commitConnection.ready(on: EventLoopTaskExecutor.current?.eventLoop) else { return false }
        var statements: [RunStatement] = []
        var parameters: [String] = []
        for (run, target) in zip(runs, runTargets) {
            let statement = try Self.statement(for: run, into: target, parametersAfter: parameters.count)
            parameters += statement.parameters
            statements.append(statement)
        }
        var parts: [String] = []
        if let applied = appliedPosition, applied != durablePosition {
            parameters += [pipeline, applied.description]
            parts.append("ferry_position AS (\(Self.positionUpsert(parameters: (parameters.count - 1, parameters.count))))")
        }
        var selects: [String] = []
        for (index, statement) in statements.enumerated() {
            parts.append("ferry_run\(index) AS (\(statement.sql))")
            if statement.returnsRows { selects.append("SELECT '\(index)', ferry_key, ferry_inserted FROM ferry_run\(index)") }
        }
        // Whatever happens next, this transaction is over on the target: the statement commits
        // or fails by itself.
        beginPending = false
        targetTransactionOpen = false
        runs = []
        runRows = 0
        var returned = Array(repeating: [(key: [String?], inserted: Bool?)](), count: statements.count)
        if !parts.isEmpty {
            if selects.isEmpty { selects.append("SELECT NULL::text, NULL::text, NULL::text WHERE false") }
            let sql = "WITH " + parts.joined(separator: ", ") + " " + selects.joined(separator: " UNION ALL ")
            for row in try await commitConnection.run(sql, parameters, on: EventLoopTaskExecutor.current?.eventLoop) {
                guard row.count == 3, let index = row[0].flatMap({ Int($0) }), returned.indices.contains(index), let key = row[1] else { continue }
                returned[index].append(Self.touched(key: key, inserted: row[2], keyIsJSON: statements[index].keyIsJSON))
            }
        }
        pendingRows = 0
        durablePosition = appliedPosition
        oneStatementCommits += 1
        for (statement, rows) in zip(statements, returned) { try settle(statement, returned: rows) }
        return true
    }

    private func rollBack(after error: any Error) async {
        // Streamed transactions are dropped: the pipeline replays, and the source sends them
        // again from their start.
        leaveStream()
        await closeStreamedConnections()
        // The COPY in flight ends (it may be what failed) before anything else is sent.
        _ = await copying?.end()
        copying = nil
        // A query on a closed postgres-nio connection can wait forever: only roll back on a
        // connection that is still there (a lost one rolled back by itself).
        if targetTransactionOpen, !beginPending, let connection, !connection.isClosed, !Self.isConnectionLost(error) {
            _ = try? await execute("ROLLBACK")
        }
        forgetUncommitted()
        logger.error("write to the target failed; its uncommitted changes were rolled back",
                     metadata: ["destination": "\(name)", "error": "\(Redaction.redact(String(reflecting: error)))",
                                "position": "\(durablePosition?.description ?? "none")"])
        if Self.isConnectionLost(error) { await dropConnection() }
    }

    // MARK: Connection

    private func ensureConnection() async throws {
        if let connection, !connection.isClosed { return }
        await dropConnection()
        self.connection = try await connect()
        preparedStatements = [:]
        do {
            try await execute("CREATE SCHEMA IF NOT EXISTS ferry")
            try await execute("""
                CREATE TABLE IF NOT EXISTS ferry.positions (
                    pipeline text PRIMARY KEY, lsn text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())
                """)
            var bindings = PostgresBindings()
            bindings.append(pipeline)
            let rows = try await queryRows("SELECT lsn FROM ferry.positions WHERE pipeline = $1", bindings)
            if let row = rows.first {
                let text = try row.decode(String.self)
                guard let lsn = LSN(text) else {
                    throw FerryError(.destinationRejected, "ferry.positions on \(name) holds an invalid position \(text) for pipeline \(pipeline)",
                                     fix: "delete that row to re-deliver everything from the slot's position")
                }
                durablePosition = lsn
            }
        } catch {
            await dropConnection()
            throw classify(error)
        }
        forgetUncommitted()
    }

    /// A new connection to the target, with Ferry's session settings. Limited in time: seen
    /// here, a connection made while the target restarts can wait forever in postgres-nio.
    private func connect(onStreamLoop: Bool = true) async throws -> PostgresConnection {
        connectionNumber += 1
        let limit = max(configuration.connectTimeout ?? .seconds(30), .seconds(5))
        let (settings, id, logger, name) = (try Self.postgresConfiguration(configuration), connectionNumber, self.logger, self.name)
        // The pipeline streams on the replication connection's event loop: a connection on the
        // same loop takes statements from it without waking another thread.
        let eventLoop = (onStreamLoop ? EventLoopTaskExecutor.current?.eventLoop : nil) ?? PostgresConnection.defaultEventLoopGroup.next()
        let made = try await Self.within(limit) {
            try await Self.connect(settings, on: eventLoop, id: id, logger: logger, name: name)
        } abandoned: { late in
            try? await late.close()
        }
        guard let made else {
            throw FerryError(.destination, "cannot connect to the Postgres destination \(name): no answer within \(limit)",
                             fix: "check that the server runs and accepts connections; Ferry tries again")
        }
        return made
    }

    private static func connect(_ settings: PostgresConnection.Configuration, on eventLoop: any EventLoop, id: Int, logger: Logger,
                                name: String) async throws -> PostgresConnection {
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(on: eventLoop, configuration: settings, id: id, logger: logger)
        } catch {
            throw FerryError(.destination, "cannot connect to the Postgres destination \(name): \(Redaction.redact(String(reflecting: error)))",
                             fix: "check the destination URL, that the server runs and accepts the user")
        }
        do {
            // One statement at a time: postgres-nio's extended protocol takes no lists.
            for statement in Self.sessionSettings.split(separator: ";").map(String.init) where !statement.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                try await run(statement, on: connection, logger: logger)
            }
        } catch {
            try? await connection.close()
            throw FerryError(.destination, "cannot set up the connection to the Postgres destination \(name): \(Redaction.redact(String(reflecting: error)))",
                             fix: "Ferry tries again; check that the server runs")
        }
        return connection
    }

    /// `body`'s result, or nil once `limit` has passed; `body` is then left to end by itself
    /// and `abandoned` gets what it returns (it may not answer cancellation).
    static func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T,
                                    abandoned: @escaping @Sendable (T) async -> Void) async throws -> T? {
        let waiting = Mutex<CheckedContinuation<T?, any Error>?>(nil)
        let take: @Sendable () -> CheckedContinuation<T?, any Error>? = { waiting.withLock { state in defer { state = nil }; return state } }
        return try await withCheckedThrowingContinuation { continuation in
            waiting.withLock { $0 = continuation }
            let work = Task {
                do {
                    let value = try await body()
                    if let continuation = take() { continuation.resume(returning: value) } else { await abandoned(value) }
                } catch {
                    take()?.resume(throwing: error)
                }
            }
            Task {
                try? await Task.sleep(for: limit)
                if let continuation = take() {
                    work.cancel()
                    continuation.resume(returning: nil)
                }
            }
        }
    }

    /// Back to the durable state: nothing pending, no transaction open, table definitions
    /// read again (rolled-back DDL, or a new connection).
    private func forgetUncommitted() {
        targetTransactionOpen = false
        beginPending = false
        copying?.feed.finish()
        copying = nil
        runs = []
        runRows = 0
        pendingRows = 0
        transaction = nil
        skipping = false
        appliedPosition = durablePosition
        targets.removeAll()
    }

    private func dropConnection() async {
        if let connection { try? await connection.close() }
        connection = nil
        // A commit whose answer was lost may have happened: the position is read again from
        // the target on the next connection, and the commit connection starts afresh too.
        await commitConnection.close()
        preparedStatements = [:]
        targetTransactionOpen = false
        beginPending = false
    }

    /// Every target connection's session: the same text forms as the values Ferry decoded
    /// (keys are compared as text), and commits that wait for the target's WAL flush (the
    /// position confirmed to the source is only what the target has made durable).
    static let sessionSettings = "SET synchronous_commit = on; " + Pipeline.sessionSettings

    static func postgresConfiguration(_ configuration: ConnectionConfiguration) throws -> PostgresConnection.Configuration {
        let endpoint = configuration.endpoints[0]
        var result: PostgresConnection.Configuration
        if let socket = endpoint.unixSocketPath {
            result = .init(unixSocketPath: socket, username: configuration.user, password: configuration.effectivePassword,
                           database: configuration.database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch configuration.sslMode {
            case .disable:
                tls = .disable
            case .allow, .prefer, .require:
                var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
                tlsConfiguration.certificateVerification = .none
                let context = try NIOSSLContext(configuration: tlsConfiguration)
                tls = configuration.sslMode == .require ? .require(context) : .prefer(context)
            case .verifyCA, .verifyFull:
                var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
                tlsConfiguration.certificateVerification = configuration.sslMode == .verifyFull ? .fullVerification : .noHostnameVerification
                if case .file(let path)? = configuration.sslRootCertificate {
                    tlsConfiguration.trustRoots = .file(path)
                }
                tls = .require(try NIOSSLContext(configuration: tlsConfiguration))
            }
            result = .init(host: endpoint.hostaddr ?? endpoint.host, port: endpoint.port, username: configuration.user,
                           password: configuration.effectivePassword, database: configuration.database, tls: tls)
            if endpoint.hostaddr != nil { result.options.tlsServerName = endpoint.host }
        }
        if let timeout = configuration.connectTimeout {
            result.options.connectTimeout = .seconds(max(1, timeout.components.seconds))
        }
        return result
    }

    // MARK: Statements

    /// The connection, ready for this context's next statement: the COPY in flight finished,
    /// the pending BEGIN sent.
    private func readyConnection() async throws -> PostgresConnection {
        try await finishCopy()
        try await sendPendingBegin()
        guard let connection, !connection.isClosed else { throw FerryError(.destination, "the connection to \(name) is closed") }
        return connection
    }

    /// Runs one statement; returns the rows it returned (use RETURNING to count).
    @discardableResult
    private func execute(_ sql: String, _ bindings: PostgresBindings = PostgresBindings()) async throws -> Int {
        let connection = try await readyConnection()
        let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
        var count = 0
        for try await _ in rows { count += 1 }
        return count
    }

    private func queryRows(_ sql: String, _ bindings: PostgresBindings = PostgresBindings()) async throws -> [PostgresRow] {
        let connection = try await readyConnection()
        var result: [PostgresRow] = []
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger) {
            result.append(row)
        }
        return result
    }

    /// Runs a statement that recurs (a table's set-based statement, the one-statement commit)
    /// with text parameters: on the main connection as a named prepared statement, parsed and
    /// planned once per connection (for small flushes that is about half the target's work);
    /// elsewhere, or past ``preparedLimit`` statements, as an unnamed one.
    private func repeatedStatement(_ sql: String, _ parameters: [String]) async throws -> [PostgresRow] {
        let connection = try await readyConnection()
        var prepared = activeStream == nil ? preparedStatements[sql] : nil
        if prepared == nil, activeStream == nil, preparedStatements.count < Self.preparedLimit {
            prepared = try await connection.prepare(query: sql).get()
            preparedStatements[sql] = prepared
        }
        guard let prepared else {
            var bindings = PostgresBindings()
            for parameter in parameters { bindings.append(parameter) }
            return try await queryRows(sql, bindings)
        }
        let rows = NIOLockedValueBox<[PostgresRow]>([])
        try await prepared.execute(parameters.map { PostgresData(string: $0) }) { row in
            rows.withLockedValue { $0.append(row) }
        }.get()
        return rows.withLockedValue { $0 }
    }

    /// Prepared statements on the main connection (``repeatedStatement(_:_:)``), by SQL text;
    /// emptied with every new connection.
    private var preparedStatements: [String: PreparedQuery] = [:]
    static let preparedLimit = 256

    /// What the server said when it refused a statement, from either client: Ferry's own (the
    /// one-statement commit), postgres-nio's, or postgres-nio's older API (prepared statements).
    static func serverRefusal(_ error: any Error) -> (message: String, detail: String?, sqlState: String)? {
        switch error {
        case let error as PGConnectionError:
            return error.serverError.map { ($0.message, $0.detail, $0.sqlState) }
        case let error as PSQLError:
            guard let info = error.serverInfo, let message = info[.message] else { return nil }
            return (message, info[.detail], info[.sqlState] ?? "?")
        case PostgresError.server(let info):
            return (info.fields[.message] ?? "\(info)", info.fields[.detail], info.fields[.sqlState] ?? "?")
        default:
            return nil
        }
    }

    static func isConnectionLost(_ error: any Error) -> Bool {
        if let refusal = serverRefusal(error) {
            // Connection exceptions and operator intervention (a shutdown, a terminated backend).
            return refusal.sqlState.hasPrefix("08") || refusal.sqlState.hasPrefix("57")
        }
        switch error {
        case let error as PSQLError:
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown: return true
            default: return false
            }
        case is PostgresError:  // the older API's closed connection, unclean shutdown or garbled reply
            return true
        case is PGConnectionError, is IOError, is ChannelError:
            return true
        case let error as FerryError:
            return error.kind == .destination
        default:
            return false
        }
    }

    /// Connection losses are retryable (the pipeline replays from the stored position);
    /// a statement the target refuses is not.
    private func classify(_ error: any Error) -> any Error {
        if error is FerryError { return error }
        if Self.isConnectionLost(error) {
            return FerryError(.destination, "the connection to the Postgres destination \(name) was lost: \(Redaction.redact(String(reflecting: error)))",
                              fix: "Ferry reconnects and resumes from the position stored in ferry.positions")
        }
        if let refusal = Self.serverRefusal(error) {
            return FerryError(.destinationRejected,
                              "the Postgres destination \(name) refused a change: \(refusal.message)\(refusal.detail.map { " (\($0))" } ?? "") [SQLSTATE \(refusal.sqlState)]",
                              fix: "make the target table accept the source's values (types, constraints), then run again; nothing after the stored position was lost")
        }
        return FerryError(.destinationRejected, "the Postgres destination \(name) failed: \(Redaction.redact(String(reflecting: error)))")
    }
}


