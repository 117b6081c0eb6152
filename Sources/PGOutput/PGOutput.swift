import NIOCore
import PostgresWire

/// One message of the `pgoutput` logical replication protocol, versions 1 to 4.
///
/// Every XLogData payload of a `pgoutput` replication stream (and every row of
/// `pg_logical_slot_{get,peek}_binary_changes`) is exactly one of these. Layouts follow the
/// PostgreSQL docs, "Logical Replication Message Formats", and `src/backend/replication/logical/proto.c`.
///
/// Decode with ``PGOutputDecoder``. Byte contents (tuple values, message content) are
/// `ByteBuffer` slices of the payload: no copy is made.
public enum PGOutputMessage: Sendable, Hashable {
    /// `B`: start of a (non-streamed) transaction.
    case begin(Begin)
    /// `C`: end of a (non-streamed) transaction.
    case commit(Commit)
    /// `O`: the transaction was replayed from another origin (follows Begin or Stream Start).
    case origin(Origin)
    /// `R`: the schema of a relation, sent before its first change and after it changes.
    case relation(Relation)
    /// `Y`: a non built-in data type used by a following Relation.
    case type(DataType)
    /// `I`
    case insert(Insert)
    /// `U`
    case update(Update)
    /// `D`
    case delete(Delete)
    /// `T`
    case truncate(Truncate)
    /// `M`: `pg_logical_emit_message()` output (needs the `messages` option).
    case message(LogicalMessage)
    /// `S` (v2+): start of a block of changes of an in-progress transaction.
    case streamStart(StreamStart)
    /// `E` (v2+): end of the current stream block.
    case streamStop
    /// `c` (v2+): a streamed transaction committed.
    case streamCommit(StreamCommit)
    /// `A` (v2+): a streamed (sub)transaction aborted.
    case streamAbort(StreamAbort)
    /// `b` (v3+): start of a transaction prepared for two-phase commit.
    case beginPrepare(Prepare)
    /// `P` (v3+): end of a prepared transaction (`PREPARE TRANSACTION`).
    case prepare(Prepare)
    /// `K` (v3+): `COMMIT PREPARED`.
    case commitPrepared(CommitPrepared)
    /// `r` (v3+): `ROLLBACK PREPARED`.
    case rollbackPrepared(RollbackPrepared)
    /// `p` (v3+): a streamed transaction was prepared.
    case streamPrepare(Prepare)

    /// The identifying byte of this message on the wire.
    public var tag: UInt8 {
        switch self {
        case .begin: UInt8(ascii: "B")
        case .commit: UInt8(ascii: "C")
        case .origin: UInt8(ascii: "O")
        case .relation: UInt8(ascii: "R")
        case .type: UInt8(ascii: "Y")
        case .insert: UInt8(ascii: "I")
        case .update: UInt8(ascii: "U")
        case .delete: UInt8(ascii: "D")
        case .truncate: UInt8(ascii: "T")
        case .message: UInt8(ascii: "M")
        case .streamStart: UInt8(ascii: "S")
        case .streamStop: UInt8(ascii: "E")
        case .streamCommit: UInt8(ascii: "c")
        case .streamAbort: UInt8(ascii: "A")
        case .beginPrepare: UInt8(ascii: "b")
        case .prepare: UInt8(ascii: "P")
        case .commitPrepared: UInt8(ascii: "K")
        case .rollbackPrepared: UInt8(ascii: "r")
        case .streamPrepare: UInt8(ascii: "p")
        }
    }
}

extension PGOutputMessage {
    /// `B`
    public struct Begin: Sendable, Hashable {
        /// The final LSN of the transaction (the LSN of its commit record).
        public var finalLSN: LSN
        public var commitTimestamp: PostgresTimestamp
        public var xid: UInt32

        public init(finalLSN: LSN, commitTimestamp: PostgresTimestamp, xid: UInt32) {
            self.finalLSN = finalLSN
            self.commitTimestamp = commitTimestamp
            self.xid = xid
        }
    }

    /// `C`. The flags byte is unused and must be 0.
    public struct Commit: Sendable, Hashable {
        /// The LSN of the commit record.
        public var commitLSN: LSN
        /// The end LSN of the transaction: what to confirm as flushed once it is durable.
        public var endLSN: LSN
        public var commitTimestamp: PostgresTimestamp

        public init(commitLSN: LSN, endLSN: LSN, commitTimestamp: PostgresTimestamp) {
            self.commitLSN = commitLSN
            self.endLSN = endLSN
            self.commitTimestamp = commitTimestamp
        }
    }

    /// `O`
    public struct Origin: Sendable, Hashable {
        /// The LSN of the commit on the origin server (`0/0` after a Stream Start).
        public var commitLSN: LSN
        public var name: String

        public init(commitLSN: LSN, name: String) {
            self.commitLSN = commitLSN
            self.name = name
        }
    }

    /// `pg_class.relreplident` as sent in a Relation message.
    public enum ReplicaIdentity: UInt8, Sendable, Hashable {
        /// `d`: the primary key, if any.
        case `default` = 0x64
        /// `n`: nothing.
        case nothing = 0x6E
        /// `f`: all columns.
        case full = 0x66
        /// `i`: the columns of a chosen unique index.
        case index = 0x69
    }

    /// `R`
    public struct Relation: Sendable, Hashable {
        /// The transaction (or subtransaction) xid, present only inside a Stream Start/Stop block.
        public var streamXid: UInt32?
        /// The relation OID; Insert/Update/Delete/Truncate refer to it.
        public var id: UInt32
        /// The schema name; empty for `pg_catalog`.
        public var namespace: String
        public var name: String
        public var replicaIdentity: ReplicaIdentity
        /// The published columns, in order (generated columns are not sent).
        public var columns: [Column]

        public struct Column: Sendable, Hashable {
            /// Part of the replica identity key (column flag 1).
            public var isKey: Bool
            public var name: String
            public var typeOID: UInt32
            /// `pg_attribute.atttypmod`; -1 when none.
            public var typeModifier: Int32

            public init(isKey: Bool, name: String, typeOID: UInt32, typeModifier: Int32) {
                self.isKey = isKey
                self.name = name
                self.typeOID = typeOID
                self.typeModifier = typeModifier
            }
        }

        public init(
            streamXid: UInt32? = nil, id: UInt32, namespace: String, name: String,
            replicaIdentity: ReplicaIdentity, columns: [Column]
        ) {
            self.streamXid = streamXid
            self.id = id
            self.namespace = namespace
            self.name = name
            self.replicaIdentity = replicaIdentity
            self.columns = columns
        }
    }

    /// `Y`: sent for column types that are not built in (OID ≥ 16384).
    /// For a domain, PostgreSQL sends the name of its base type.
    public struct DataType: Sendable, Hashable {
        public var streamXid: UInt32?
        public var id: UInt32
        /// The schema name; empty for `pg_catalog`.
        public var namespace: String
        public var name: String

        public init(streamXid: UInt32? = nil, id: UInt32, namespace: String, name: String) {
            self.streamXid = streamXid
            self.id = id
            self.namespace = namespace
            self.name = name
        }
    }

    /// `I`
    public struct Insert: Sendable, Hashable {
        public var streamXid: UInt32?
        public var relationID: UInt32
        public var newTuple: TupleData

        public init(streamXid: UInt32? = nil, relationID: UInt32, newTuple: TupleData) {
            self.streamXid = streamXid
            self.relationID = relationID
            self.newTuple = newTuple
        }
    }

    /// The old row sent with an Update or Delete.
    public enum OldTuple: Sendable, Hashable {
        /// `K`: only the replica identity key columns are meaningful; other columns come as
        /// ``TupleValue/null`` and mean "not sent", not NULL.
        case key(TupleData)
        /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
        case full(TupleData)

        public var tuple: TupleData {
            switch self {
            case .key(let tuple), .full(let tuple): tuple
            }
        }
    }

    /// `U`
    public struct Update: Sendable, Hashable {
        public var streamXid: UInt32?
        public var relationID: UInt32
        /// Present when the key changed (`K`) or under `REPLICA IDENTITY FULL` (`O`).
        public var oldTuple: OldTuple?
        public var newTuple: TupleData

        public init(streamXid: UInt32? = nil, relationID: UInt32, oldTuple: OldTuple?, newTuple: TupleData) {
            self.streamXid = streamXid
            self.relationID = relationID
            self.oldTuple = oldTuple
            self.newTuple = newTuple
        }
    }

    /// `D`
    public struct Delete: Sendable, Hashable {
        public var streamXid: UInt32?
        public var relationID: UInt32
        public var oldTuple: OldTuple

        public init(streamXid: UInt32? = nil, relationID: UInt32, oldTuple: OldTuple) {
            self.streamXid = streamXid
            self.relationID = relationID
            self.oldTuple = oldTuple
        }
    }

    /// Option bits of a Truncate message.
    public struct TruncateOptions: OptionSet, Sendable, Hashable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        public static let cascade = TruncateOptions(rawValue: 1)
        public static let restartIdentity = TruncateOptions(rawValue: 2)
    }

    /// `T`
    public struct Truncate: Sendable, Hashable {
        public var streamXid: UInt32?
        public var options: TruncateOptions
        public var relationIDs: [UInt32]

        public init(streamXid: UInt32? = nil, options: TruncateOptions, relationIDs: [UInt32]) {
            self.streamXid = streamXid
            self.options = options
            self.relationIDs = relationIDs
        }
    }

    /// `M`
    public struct LogicalMessage: Sendable, Hashable {
        public var streamXid: UInt32?
        /// Flag 1: emitted with `transactional => true`, delivered inside its transaction.
        /// A non-transactional message arrives on its own, outside Begin/Commit.
        public var isTransactional: Bool
        public var lsn: LSN
        public var prefix: String
        public var content: ByteBuffer

        public init(streamXid: UInt32? = nil, isTransactional: Bool, lsn: LSN, prefix: String, content: ByteBuffer) {
            self.streamXid = streamXid
            self.isTransactional = isTransactional
            self.lsn = lsn
            self.prefix = prefix
            self.content = content
        }
    }

    /// `S`
    public struct StreamStart: Sendable, Hashable {
        /// The top-level transaction whose changes follow.
        public var xid: UInt32
        /// True for the first block of this transaction.
        public var isFirstSegment: Bool

        public init(xid: UInt32, isFirstSegment: Bool) {
            self.xid = xid
            self.isFirstSegment = isFirstSegment
        }
    }

    /// `c`. The flags byte is unused and must be 0.
    public struct StreamCommit: Sendable, Hashable {
        public var xid: UInt32
        public var commitLSN: LSN
        public var endLSN: LSN
        public var commitTimestamp: PostgresTimestamp

        public init(xid: UInt32, commitLSN: LSN, endLSN: LSN, commitTimestamp: PostgresTimestamp) {
            self.xid = xid
            self.commitLSN = commitLSN
            self.endLSN = endLSN
            self.commitTimestamp = commitTimestamp
        }
    }

    /// `A`
    public struct StreamAbort: Sendable, Hashable {
        /// The top-level transaction.
        public var xid: UInt32
        /// The aborted (sub)transaction: equal to ``xid`` when the whole transaction aborted,
        /// otherwise only the changes of this subtransaction are discarded.
        public var subtransactionXid: UInt32
        /// Present only with protocol version 4 and `streaming 'parallel'`.
        public var abortLSN: LSN?
        /// Present only with protocol version 4 and `streaming 'parallel'`.
        public var abortTimestamp: PostgresTimestamp?

        public init(xid: UInt32, subtransactionXid: UInt32, abortLSN: LSN? = nil, abortTimestamp: PostgresTimestamp? = nil) {
            self.xid = xid
            self.subtransactionXid = subtransactionXid
            self.abortLSN = abortLSN
            self.abortTimestamp = abortTimestamp
        }

        /// True when the whole transaction aborted rather than one subtransaction.
        public var isTopLevel: Bool { xid == subtransactionXid }
    }

    /// The fields of Begin Prepare `b`, Prepare `P` and Stream Prepare `p` (the latter two
    /// have a flags byte, unused and required to be 0).
    public struct Prepare: Sendable, Hashable {
        /// The LSN of the prepare record.
        public var prepareLSN: LSN
        /// The end LSN of the prepared transaction.
        public var endLSN: LSN
        public var prepareTimestamp: PostgresTimestamp
        public var xid: UInt32
        /// The global transaction identifier given to `PREPARE TRANSACTION`.
        public var gid: String

        public init(prepareLSN: LSN, endLSN: LSN, prepareTimestamp: PostgresTimestamp, xid: UInt32, gid: String) {
            self.prepareLSN = prepareLSN
            self.endLSN = endLSN
            self.prepareTimestamp = prepareTimestamp
            self.xid = xid
            self.gid = gid
        }
    }

    /// `K`. The flags byte is unused and must be 0.
    public struct CommitPrepared: Sendable, Hashable {
        public var commitLSN: LSN
        public var endLSN: LSN
        public var commitTimestamp: PostgresTimestamp
        public var xid: UInt32
        public var gid: String

        public init(commitLSN: LSN, endLSN: LSN, commitTimestamp: PostgresTimestamp, xid: UInt32, gid: String) {
            self.commitLSN = commitLSN
            self.endLSN = endLSN
            self.commitTimestamp = commitTimestamp
            self.xid = xid
            self.gid = gid
        }
    }

    /// `r`. The flags byte is unused and must be 0.
    public struct RollbackPrepared: Sendable, Hashable {
        public var prepareEndLSN: LSN
        public var rollbackEndLSN: LSN
        public var prepareTimestamp: PostgresTimestamp
        public var rollbackTimestamp: PostgresTimestamp
        public var xid: UInt32
        public var gid: String

        public init(
            prepareEndLSN: LSN, rollbackEndLSN: LSN, prepareTimestamp: PostgresTimestamp,
            rollbackTimestamp: PostgresTimestamp, xid: UInt32, gid: String
        ) {
            self.prepareEndLSN = prepareEndLSN
            self.rollbackEndLSN = rollbackEndLSN
            self.prepareTimestamp = prepareTimestamp
            self.rollbackTimestamp = rollbackTimestamp
            self.xid = xid
            self.gid = gid
        }
    }
}

/// One column of a tuple in an Insert, Update or Delete.
public enum TupleValue: Sendable, Hashable {
    /// `n`: NULL — or, in a `K` old tuple, "not part of the key, not sent".
    case null
    /// `u`: an unchanged TOAST value that was **not sent**. It is not NULL: the destination
    /// must keep the value it has.
    case unchangedToast
    /// `t`: the value in the type's text output format.
    case text(ByteBuffer)
    /// `b`: the value in the type's binary send format (`binary 'true'`).
    case binary(ByteBuffer)

    /// The bytes of a `text` or `binary` value.
    public var bytes: ByteBuffer? {
        switch self {
        case .text(let bytes), .binary(let bytes): bytes
        case .null, .unchangedToast: nil
        }
    }

    /// A `text` value as a Swift string (invalid UTF-8 is repaired); nil for other kinds.
    public var string: String? {
        if case .text(let bytes) = self { String(buffer: bytes) } else { nil }
    }
}

/// The column values of one row, in the order of the Relation's columns.
///
/// Kept as pgoutput sent them, in one buffer (one reference for the whole row, not one per
/// column): per column a kind byte (`n`, `u`, `t`, `b`), then for `t` and `b` an Int32 length
/// and that many bytes. The decoder checks every length before it makes one;
/// ``forEachColumn(_:)`` reads the columns in place, ``values`` and the subscript as
/// ``TupleValue``s.
public struct TupleData: Sendable, Hashable, Sequence, ExpressibleByArrayLiteral {
    /// The columns' kind bytes, lengths and values, back to back.
    public let bytes: ByteBuffer
    /// How many columns `bytes` holds.
    public let count: Int

    /// What one column holds.
    public enum Kind: Sendable, Hashable {
        case null, unchangedToast, text, binary
    }

    /// `bytes` as ``PGOutputDecoder`` checked them: `count` columns, each length inside `bytes`.
    init(checked bytes: ByteBuffer, count: Int) {
        self.bytes = bytes
        self.count = count
    }

    public init(_ values: [TupleValue]) {
        var bytes = ByteBuffer()
        for value in values {
            switch value {
            case .null: bytes.writeInteger(UInt8(ascii: "n"))
            case .unchangedToast: bytes.writeInteger(UInt8(ascii: "u"))
            case .text(var column), .binary(var column):
                if case .text = value { bytes.writeInteger(UInt8(ascii: "t")) } else { bytes.writeInteger(UInt8(ascii: "b")) }
                bytes.writeInteger(Int32(truncatingIfNeeded: column.readableBytes))
                bytes.writeBuffer(&column)
            }
        }
        self.init(checked: bytes, count: values.count)
    }

    public init(arrayLiteral elements: TupleValue...) { self.init(elements) }

    /// Calls `body` with each column's kind and bytes (empty for `null` and `unchangedToast`),
    /// read in place: no copy, no allocation.
    public func forEachColumn(_ body: (Kind, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try bytes.withUnsafeReadableBytes { raw in
            var at = 0
            for _ in 0..<count {
                guard let column = Self.column(at: at, in: raw) else { return }
                try body(column.kind, UnsafeRawBufferPointer(rebasing: raw[column.value]))
                at = column.next
            }
        }
    }

    /// The column that starts at `offset` of `raw`: its kind, where its value's bytes are and
    /// where the next column starts; nil past the end or where the bytes are cut short.
    private static func column(at offset: Int, in raw: UnsafeRawBufferPointer) -> (kind: Kind, value: Range<Int>, next: Int)? {
        guard offset < raw.count else { return nil }
        let kind = raw[offset]
        switch kind {
        case UInt8(ascii: "t"), UInt8(ascii: "b"):
            let start = offset + 5  // after the kind and the Int32 length
            guard start <= raw.count else { return nil }
            let length = Int(Int32(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 1, as: Int32.self)))
            guard length >= 0, length <= raw.count - start else { return nil }
            return (kind == UInt8(ascii: "t") ? .text : .binary, start..<(start + length), start + length)
        case UInt8(ascii: "u"):
            return (.unchangedToast, (offset + 1)..<(offset + 1), offset + 1)
        default:
            return (.null, (offset + 1)..<(offset + 1), offset + 1)
        }
    }

    /// The columns as ``TupleValue``s (each `text` or `binary` one a slice of ``bytes``).
    public var values: [TupleValue] { Array(self) }

    /// Column `position`, `0..<count` (found by walking the columns before it).
    public subscript(position: Int) -> TupleValue {
        precondition(position >= 0 && position < count, "column \(position) of a tuple of \(count)")
        var iterator = makeIterator()
        for _ in 0..<position { _ = iterator.next() }
        return iterator.next() ?? .null
    }

    public struct Iterator: IteratorProtocol {
        let bytes: ByteBuffer
        var offset = 0
        var left: Int

        public mutating func next() -> TupleValue? {
            guard left > 0, let column = bytes.withUnsafeReadableBytes({ TupleData.column(at: offset, in: $0) }) else { return nil }
            left -= 1
            offset = column.next
            switch column.kind {
            case .null: return .null
            case .unchangedToast: return .unchangedToast
            case .text, .binary:
                let value = bytes.getSlice(at: bytes.readerIndex + column.value.lowerBound, length: column.value.count) ?? ByteBuffer()
                return column.kind == .text ? .text(value) : .binary(value)
            }
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes: bytes, left: count) }
    public var underestimatedCount: Int { count }
}
