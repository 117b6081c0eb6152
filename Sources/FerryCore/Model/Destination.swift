import PostgresWire

/// Where a pipeline delivers changes: a SQLite replica, JSON lines, Kafka, another Postgres…
///
/// ## Contract
/// - `open()` is called once, before anything else. It prepares storage and returns the
///   position the destination has already made durable, if it stores one (destinations that
///   can store it atomically with their data — SQLite, Postgres — make delivery exactly-once
///   this way); the pipeline then skips every transaction at or below it.
/// - `write(_:)` receives events in source commit order. Deliveries may end inside a
///   transaction; the next delivery continues it. The destination may buffer, but must bound
///   its memory.
/// - `flush()` makes everything written so far durable, up to the last *complete*
///   transaction, and returns the durable position: the `endLSN` of the last durable commit
///   (cumulative; never moving backwards), or nil if nothing was committed yet. Only durable
///   positions move the flush LSN confirmed to PostgreSQL (the minimum over all destinations).
/// - Delivery is at-least-once: after a crash, transactions after the last confirmed position
///   are delivered again; resumed snapshot chunks deliver rows again.
/// - A change never loses information: `.unchangedToast` means "keep the existing value", never
///   NULL; a destination that cannot merge must say how it handles it.
public protocol Destination: AnyObject, Sendable {
    /// A short name for logs, metrics and the state store (unique within a pipeline).
    var name: String { get }

    func open() async throws -> DestinationResume

    func write(_ events: [PipelineEvent]) async throws

    func flush() async throws -> LSN?

    func close() async throws
    /// Whether the destination takes `table`'s snapshot rows undecoded, as
    /// ``PipelineEvent/snapshotCopyRows(table:rows:)`` (asked once per table before its first
    /// chunk is read; the default is no). Saying yes commits the destination to handle them.
    func acceptsBinaryCopyRows(for table: TableSchema) async throws -> Bool
    /// Whether the destination takes in-progress transactions as they run at the source
    /// (``PipelineEvent/streamStart(xid:first:)`` … ``PipelineEvent/streamCommit(_:endLSN:)``;
    /// the default is no). The pipeline asks PostgreSQL to stream them only when every
    /// destination says yes; otherwise a transaction arrives whole after its commit.
    /// Such a destination must keep each streamed transaction apart until its `streamCommit`,
    /// drop it at `streamAbort`, and report durable positions only of committed transactions.
    var acceptsStreamedTransactions: Bool { get }
    /// Whether the destination uses streamed values only through their PostgreSQL text form
    /// (``Value/postgresText``; the default is no). When every destination does, the pipeline
    /// hands over the text the source printed (``Value/unknown(typeOID:text:)``) without parsing
    /// it into a typed value.
    var takesSourceText: Bool { get }
    /// Whether `write` and `flush` only await and never block their thread (no synchronous
    /// file or network I/O; the default is no). When every destination says yes, the pipeline
    /// takes small transactions on the replication connection's event loop, which saves the
    /// hand-offs between threads on the way from the socket to the destination.
    var neverBlocks: Bool { get }
}

extension Destination {
    public func acceptsBinaryCopyRows(for table: TableSchema) async throws -> Bool { false }
    public var acceptsStreamedTransactions: Bool { false }
    public var takesSourceText: Bool { false }
    public var neverBlocks: Bool { false }
}

/// What a destination already has when the pipeline starts.
public struct DestinationResume: Sendable, Hashable {
    /// The `endLSN` of the last transaction durably applied, if the destination stores it.
    public var durablePosition: LSN?

    public init(durablePosition: LSN? = nil) {
        self.durablePosition = durablePosition
    }
}
