import PostgresWire
import NIOCore

/// One row's values, in the order of its table's columns.
///
/// A column may hold `.unchangedToast`: the value was not sent because it did not change. It
/// is never NULL; a destination keeps the value it has.
public typealias Row = [Value]

/// A change to a published table, typed by column type.
public enum Change: Sendable {
    case insert(table: TableSchema, row: Row)
    /// `old` is the previous row when the server sent one: only the key columns (the others
    /// `.null` meaning "not sent") when the key changed under DEFAULT/INDEX identity
    /// (`oldIsKeyOnly`), or the whole row under FULL identity. Nil when the key did not change.
    case update(table: TableSchema, old: Row?, oldIsKeyOnly: Bool, row: Row)
    /// `old` holds the key columns (others `.null`, "not sent") or the whole row under FULL.
    case delete(table: TableSchema, old: Row, oldIsKeyOnly: Bool)
    case truncate(tables: [TableSchema], cascade: Bool, restartIdentity: Bool)

    public var tables: [TableSchema] {
        switch self {
        case .insert(let table, _), .update(let table, _, _, _), .delete(let table, _, _): [table]
        case .truncate(let tables, _, _): tables
        }
    }
}

/// A committed (or committing) source transaction.
public struct TransactionInfo: Sendable, Hashable {
    public var xid: UInt32
    /// The LSN of the commit record (`Begin.finalLSN`).
    public var commitLSN: LSN
    /// Microseconds since 2000-01-01 (PostgreSQL's epoch).
    public var commitTime: PostgresTimestamp

    public init(xid: UInt32, commitLSN: LSN, commitTime: PostgresTimestamp) {
        self.xid = xid
        self.commitLSN = commitLSN
        self.commitTime = commitTime
    }
}

/// What a pipeline delivers to its destinations, in source commit order.
///
/// Streaming events come as `begin`, `change`s, `commit`; a large transaction may be split
/// over several deliveries (a delivery can end between `begin` and `commit`), so a
/// destination never has to hold a whole transaction. Snapshot rows come before any
/// streaming event of their table, as `snapshotRow`s framed by `snapshotTableStarted` and
/// `snapshotTableFinished`.
public enum PipelineEvent: Sendable {
    case begin(TransactionInfo)
    /// `lsn` is the WAL position of the change's record.
    case change(Change, lsn: LSN)
    /// `endLSN` is the position to confirm once this transaction is durable.
    case commit(TransactionInfo, endLSN: LSN)
    /// A table's definition changed (column added, dropped, renamed, type changed); delivered
    /// before the next change of that table.
    case schemaChange(SchemaChange)
    /// A row read by the initial snapshot (Debezium op `r`).
    case snapshotRow(table: TableSchema, row: Row)
    /// Rows read by the initial snapshot, undecoded: only for a destination that asked for them
    /// (``Destination/acceptsBinaryCopyRows(for:)``), instead of `snapshotRow`s of that table.
    case snapshotCopyRows(table: TableSchema, rows: BinaryCopyRows)
    case snapshotTableStarted(TableSchema)
    case snapshotTableFinished(TableSchema)
    /// A `pg_logical_emit_message` message (transactional ones come between begin and commit).
    case message(prefix: String, content: [UInt8], lsn: LSN, transactional: Bool)

    // Streaming of in-progress transactions: only for a destination that takes them
    // (``Destination/acceptsStreamedTransactions``). A large transaction then comes in blocks
    // while it runs at the source, before its commit is known: `streamStart`, its `change`s
    // (and `schemaChange`s, `subtransaction`s, transactional `message`s), `streamStop`. Blocks of
    // several transactions may alternate, with whole transactions (`begin`…`commit`) between
    // them; each streamed transaction ends with `streamCommit` or `streamAbort`. Everything
    // outside the blocks stays in commit order, and a `streamCommit` comes at its place in it.

    /// A block of in-progress transaction `xid` starts. `first` is its first block in this
    /// stream: a transaction sent again from its start (after a reconnect) has `first` again,
    /// and what an earlier stream delivered of it is to be dropped.
    case streamStart(xid: UInt32, first: Bool)
    /// Inside a block: the changes that follow were made by subtransaction `xid` (the
    /// transaction's own xid: by the transaction itself). A subtransaction can be aborted alone.
    case subtransaction(xid: UInt32)
    /// The block ends; the transaction is still in progress.
    case streamStop
    /// Streamed transaction `info.xid` committed: everything its blocks held is committed
    /// together, and `endLSN` is the position to confirm once it is durable.
    case streamCommit(TransactionInfo, endLSN: LSN)
    /// Streamed (sub)transaction aborted: drop what its blocks held. `subtransaction == xid`:
    /// the whole transaction; otherwise that subtransaction's changes (and its children's).
    case streamAbort(xid: UInt32, subtransaction: UInt32)
}

/// Snapshot rows exactly as PostgreSQL's `COPY … TO STDOUT (FORMAT binary)` sent them: tuples
/// back to back (Int16 field count, then per field an Int32 length, -1 for NULL, and the
/// type's binary "send" form), in the order of the table's columns, without the stream's
/// header and trailer. A Postgres destination whose columns have the same built-in types
/// loads them with `COPY … FROM STDIN (FORMAT binary)` without decoding a value.
public struct BinaryCopyRows: Sendable {
    /// The tuples.
    public var tuples: ByteBuffer
    /// How many tuples `tuples` holds.
    public var count: Int

    public init(tuples: ByteBuffer, count: Int) {
        self.tuples = tuples
        self.count = count
    }
}
