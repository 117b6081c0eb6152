import NIOCore
import PostgresWire

/// Decodes `pgoutput` payloads, one message per payload, for protocol versions 1 to 4.
///
/// The decoder is a small value type that carries the only state the protocol needs:
/// whether a Stream Start/Stop block is open (inside one, Relation, Type, Insert, Update,
/// Delete, Truncate and Message carry a leading xid).
///
/// It is total: any bytes give a message or a ``PGOutputDecodingError``; it never traps and
/// never allocates more than the payload can justify (counts and lengths are checked
/// against the bytes left before anything is reserved).
///
/// It is also strict, like PostgreSQL's own reader (`proto.c`): flag bytes documented as
/// unused must be 0, enumerated bytes must have a documented value, Stream Start/Stop must
/// alternate, and streaming (v2) or two-phase (v3) messages are refused below their version.
/// It keeps no schema: caching Relation messages is the caller's job.
///
/// ```swift
/// var decoder = PGOutputDecoder(protocolVersion: 2)
/// for xlogData in stream {               // one pgoutput message per XLogData payload
///     var payload = xlogData.data
///     switch try decoder.decode(&payload) {
///     case .insert(let insert): ...      // insert.streamXid is set inside a stream block
///     default: ...
///     }
/// }
/// ```
public struct PGOutputDecoder: Sendable {
    /// What was negotiated in `START_REPLICATION`.
    public struct Options: Sendable, Hashable {
        /// `proto_version`: 1 (PG10+), 2 streaming (PG14+), 3 two-phase (PG15+),
        /// 4 parallel streaming (PG16+). Streaming messages are rejected below 2 and
        /// two-phase messages below 3.
        public var protocolVersion: Int
        /// `streaming 'parallel'` (needs version 4): Stream Abort then carries the abort LSN
        /// and timestamp. Ignored below version 4.
        public var parallelStreaming: Bool

        public init(protocolVersion: Int = 4, parallelStreaming: Bool = false) {
            self.protocolVersion = protocolVersion
            self.parallelStreaming = parallelStreaming
        }
    }

    public var options: Options

    /// The top-level xid of the open stream block (from its Stream Start), nil outside one.
    /// Messages inside the block carry their own `streamXid`, which is a subtransaction's
    /// xid for changes made under a savepoint.
    public private(set) var openStreamXid: UInt32?

    public init(options: Options = Options()) {
        self.options = options
    }

    public init(protocolVersion: Int, parallelStreaming: Bool = false) {
        self.init(options: Options(protocolVersion: protocolVersion, parallelStreaming: parallelStreaming))
    }

    /// Whether a Stream Start/Stop block is open.
    public var isStreaming: Bool { openStreamXid != nil }

    /// Decodes the one message in `payload` (an XLogData payload) and consumes it entirely.
    ///
    /// On error `payload` and the decoder state are left unchanged.
    public mutating func decode(_ payload: inout ByteBuffer) throws(PGOutputDecodingError) -> PGOutputMessage {
        let streamXid = self.openStreamXid
        let options = self.options
        let original = payload
        // One access to the bytes for the whole message: fields are read from the raw
        // pointer, values are sliced from `original` (no copy).
        let result = original.withUnsafeReadableBytes { bytes -> Result<PGOutputMessage, PGOutputDecodingError> in
            var reader = PayloadReader(bytes: bytes, payload: original)
            do throws(PGOutputDecodingError) {
                let message = try reader.readMessage(streamXid: streamXid, options: options)
                guard reader.remaining == 0 else {
                    throw reader.error(.trailingBytes, "\(reader.remaining) bytes left after the message")
                }
                return .success(message)
            } catch {
                return .failure(error)
            }
        }
        let message = try result.get()
        switch message {
        case .streamStart(let start): self.openStreamXid = start.xid
        case .streamStop: self.openStreamXid = nil
        default: break
        }
        payload.moveReaderIndex(to: payload.writerIndex)
        return message
    }
}

/// Reads the fields of one payload, bounds-checked, and builds located errors.
struct PayloadReader {
    /// The payload's readable bytes; valid only inside `withUnsafeReadableBytes`.
    let bytes: UnsafeRawBufferPointer
    /// The payload itself, to slice values from.
    let payload: ByteBuffer
    /// Offset of the next byte to read.
    private(set) var offset = 0
    private(set) var tag: UInt8?

    init(bytes: UnsafeRawBufferPointer, payload: ByteBuffer) {
        self.bytes = bytes
        self.payload = payload
    }

    /// Bytes not read yet (never negative: `offset` only moves after a bounds check).
    var remaining: Int { bytes.count &- offset }

    // MARK: Errors (cold path)

    @inline(never)
    func error(_ kind: PGOutputDecodingError.Kind, at offset: Int? = nil, _ detail: String) -> PGOutputDecodingError {
        PGOutputDecodingError(
            kind: kind,
            messageTag: tag,
            offset: offset ?? self.offset,
            payloadLength: bytes.count,
            bytes: Array(bytes.prefix(PGOutputDecodingError.maximumCopiedBytes)),
            detail: detail
        )
    }

    @inline(never)
    func truncated(_ field: StaticString, needed: Int) -> PGOutputDecodingError {
        error(.truncated, "\(field): needed \(needed) bytes, \(remaining) left")
    }

    // MARK: Fields

    /// A big-endian integer.
    @inline(__always)
    mutating func read<Integer: FixedWidthInteger>(
        _ field: StaticString, as: Integer.Type = Integer.self
    ) throws(PGOutputDecodingError) -> Integer {
        let size = MemoryLayout<Integer>.size
        guard remaining >= size else { throw truncated(field, needed: size) }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: Integer.self)
        offset &+= size
        return Integer(bigEndian: value)
    }

    @inline(__always)
    mutating func readUInt8(_ field: StaticString) throws(PGOutputDecodingError) -> UInt8 {
        try read(field)
    }

    @inline(__always)
    mutating func readInt16(_ field: StaticString) throws(PGOutputDecodingError) -> Int16 {
        try read(field)
    }

    @inline(__always)
    mutating func readInt32(_ field: StaticString) throws(PGOutputDecodingError) -> Int32 {
        try read(field)
    }

    @inline(__always)
    mutating func readUInt32(_ field: StaticString) throws(PGOutputDecodingError) -> UInt32 {
        try read(field)
    }

    @inline(__always)
    mutating func readLSN(_ field: StaticString) throws(PGOutputDecodingError) -> LSN {
        LSN(try read(field, as: UInt64.self))
    }

    @inline(__always)
    mutating func readTimestamp(_ field: StaticString) throws(PGOutputDecodingError) -> PostgresTimestamp {
        PostgresTimestamp(rawValue: try read(field, as: Int64.self))
    }

    /// A zero-terminated string (`String` in the docs). Invalid UTF-8 is repaired.
    mutating func readString(_ field: StaticString) throws(PGOutputDecodingError) -> String {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        guard let zero = rest.firstIndex(of: 0) else {
            throw error(.unterminatedString, "\(field): no terminating zero in the \(rest.count) bytes left")
        }
        let string = String(decoding: UnsafeRawBufferPointer(rebasing: rest[..<zero]), as: UTF8.self)
        offset &+= zero &+ 1
        return string
    }

    /// A flags byte that PostgreSQL documents as unused and always 0.
    mutating func readZeroFlags(_ field: StaticString) throws(PGOutputDecodingError) {
        let at = offset
        let flags = try readUInt8(field)
        guard flags == 0 else { throw error(.invalidFlags, at: at, "\(field): \(flags), expected 0") }
    }

    /// Passes over an Int32 length and that many bytes, checking that they are there.
    mutating func skipLengthPrefixedBytes(_ field: StaticString) throws(PGOutputDecodingError) {
        let at = offset
        let length = try readInt32(field)
        guard length >= 0, Int(length) <= remaining else {
            throw error(.invalidLength, at: at, "\(field): length \(length), \(remaining) bytes left")
        }
        offset &+= Int(length)
    }

    /// An Int32 length followed by that many bytes, as a slice of the payload.
    mutating func readLengthPrefixedBytes(_ field: StaticString) throws(PGOutputDecodingError) -> ByteBuffer {
        let start = offset &+ 4  // after the length
        try skipLengthPrefixedBytes(field)
        return slice(from: start)
    }

    /// The payload's bytes from `start` (an offset at or before the current one) to the current offset.
    func slice(from start: Int) -> ByteBuffer {
        // Cannot fail: the range lies inside the payload's readable bytes (checked as it was read).
        payload.getSlice(at: payload.readerIndex &+ start, length: offset &- start) ?? ByteBuffer()
    }

    // MARK: Messages

    mutating func readMessage(
        streamXid: UInt32?, options: PGOutputDecoder.Options
    ) throws(PGOutputDecodingError) -> PGOutputMessage {
        guard remaining > 0 else { throw error(.emptyPayload, "no message tag") }
        let tag = try readUInt8("message tag")
        self.tag = tag
        let inStream = streamXid != nil

        switch tag {
        case UInt8(ascii: "B"):
            return .begin(.init(
                finalLSN: try readLSN("final LSN"),
                commitTimestamp: try readTimestamp("commit timestamp"),
                xid: try readUInt32("xid")
            ))

        case UInt8(ascii: "C"):
            try readZeroFlags("commit flags")
            return .commit(.init(
                commitLSN: try readLSN("commit LSN"),
                endLSN: try readLSN("end LSN"),
                commitTimestamp: try readTimestamp("commit timestamp")
            ))

        case UInt8(ascii: "O"):
            return .origin(.init(commitLSN: try readLSN("origin commit LSN"), name: try readString("origin name")))

        case UInt8(ascii: "R"):
            let xid = try readStreamXid(inStream)
            return .relation(try readRelation(streamXid: xid))

        case UInt8(ascii: "Y"):
            let xid = try readStreamXid(inStream)
            return .type(.init(
                streamXid: xid,
                id: try readUInt32("type OID"),
                namespace: try readString("type namespace"),
                name: try readString("type name")
            ))

        case UInt8(ascii: "I"):
            let xid = try readStreamXid(inStream)
            let relationID = try readUInt32("relation OID")
            try expectMarker(UInt8(ascii: "N"), "insert new tuple marker")
            return .insert(.init(streamXid: xid, relationID: relationID, newTuple: try readTuple()))

        case UInt8(ascii: "U"):
            let xid = try readStreamXid(inStream)
            let relationID = try readUInt32("relation OID")
            let at = offset
            let marker = try readUInt8("update tuple marker")
            let oldTuple: PGOutputMessage.OldTuple?
            switch marker {
            case UInt8(ascii: "K"):
                oldTuple = .key(try readTuple())
                try expectMarker(UInt8(ascii: "N"), "update new tuple marker")
            case UInt8(ascii: "O"):
                oldTuple = .full(try readTuple())
                try expectMarker(UInt8(ascii: "N"), "update new tuple marker")
            case UInt8(ascii: "N"):
                oldTuple = nil
            default:
                throw error(.invalidTupleMarker, at: at, "update tuple marker \(marker), expected K, O or N")
            }
            return .update(.init(streamXid: xid, relationID: relationID, oldTuple: oldTuple, newTuple: try readTuple()))

        case UInt8(ascii: "D"):
            let xid = try readStreamXid(inStream)
            let relationID = try readUInt32("relation OID")
            let at = offset
            let marker = try readUInt8("delete tuple marker")
            let oldTuple: PGOutputMessage.OldTuple
            switch marker {
            case UInt8(ascii: "K"): oldTuple = .key(try readTuple())
            case UInt8(ascii: "O"): oldTuple = .full(try readTuple())
            default:
                throw error(.invalidTupleMarker, at: at, "delete tuple marker \(marker), expected K or O")
            }
            return .delete(.init(streamXid: xid, relationID: relationID, oldTuple: oldTuple))

        case UInt8(ascii: "T"):
            let xid = try readStreamXid(inStream)
            return .truncate(try readTruncate(streamXid: xid))

        case UInt8(ascii: "M"):
            let xid = try readStreamXid(inStream)
            let at = offset
            let flags = try readUInt8("message flags")
            guard flags <= 1 else { throw error(.invalidFlags, at: at, "message flags \(flags), expected 0 or 1") }
            return .message(.init(
                streamXid: xid,
                isTransactional: flags == 1,
                lsn: try readLSN("message LSN"),
                prefix: try readString("message prefix"),
                content: try readLengthPrefixedBytes("message content")
            ))

        case UInt8(ascii: "S"):
            try require(version: 2, options)
            guard !inStream else {
                throw error(.unexpectedStreamBoundary, at: 0, "Stream Start while the block of xid \(streamXid ?? 0) is open")
            }
            let xid = try readUInt32("stream xid")
            let at = offset
            let first = try readUInt8("first segment")
            guard first <= 1 else { throw error(.invalidValue, at: at, "first segment \(first), expected 0 or 1") }
            return .streamStart(.init(xid: xid, isFirstSegment: first == 1))

        case UInt8(ascii: "E"):
            try require(version: 2, options)
            guard inStream else { throw error(.unexpectedStreamBoundary, at: 0, "Stream Stop outside a stream block") }
            return .streamStop

        case UInt8(ascii: "c"):
            try require(version: 2, options)
            let xid = try readUInt32("stream xid")
            try readZeroFlags("stream commit flags")
            return .streamCommit(.init(
                xid: xid,
                commitLSN: try readLSN("commit LSN"),
                endLSN: try readLSN("end LSN"),
                commitTimestamp: try readTimestamp("commit timestamp")
            ))

        case UInt8(ascii: "A"):
            try require(version: 2, options)
            let xid = try readUInt32("stream xid")
            let subxid = try readUInt32("subtransaction xid")
            if options.parallelStreaming && options.protocolVersion >= 4 {
                return .streamAbort(.init(
                    xid: xid,
                    subtransactionXid: subxid,
                    abortLSN: try readLSN("abort LSN"),
                    abortTimestamp: try readTimestamp("abort timestamp")
                ))
            }
            return .streamAbort(.init(xid: xid, subtransactionXid: subxid))

        case UInt8(ascii: "b"):
            try require(version: 3, options)
            return .beginPrepare(try readPrepareFields())

        case UInt8(ascii: "P"):
            try require(version: 3, options)
            try readZeroFlags("prepare flags")
            return .prepare(try readPrepareFields())

        case UInt8(ascii: "p"):
            try require(version: 3, options)
            try readZeroFlags("stream prepare flags")
            return .streamPrepare(try readPrepareFields())

        case UInt8(ascii: "K"):
            try require(version: 3, options)
            try readZeroFlags("commit prepared flags")
            return .commitPrepared(.init(
                commitLSN: try readLSN("commit LSN"),
                endLSN: try readLSN("end LSN"),
                commitTimestamp: try readTimestamp("commit timestamp"),
                xid: try readUInt32("xid"),
                gid: try readString("gid")
            ))

        case UInt8(ascii: "r"):
            try require(version: 3, options)
            try readZeroFlags("rollback prepared flags")
            return .rollbackPrepared(.init(
                prepareEndLSN: try readLSN("prepare end LSN"),
                rollbackEndLSN: try readLSN("rollback end LSN"),
                prepareTimestamp: try readTimestamp("prepare timestamp"),
                rollbackTimestamp: try readTimestamp("rollback timestamp"),
                xid: try readUInt32("xid"),
                gid: try readString("gid")
            ))

        default:
            throw error(.unknownMessageTag, at: 0, "tag \(PGOutputDecodingError.tagDescription(tag))")
        }
    }

    func require(version: Int, _ options: PGOutputDecoder.Options) throws(PGOutputDecodingError) {
        guard options.protocolVersion >= version else {
            throw error(
                .unsupportedByProtocolVersion, at: 0,
                "needs protocol version \(version), negotiated \(options.protocolVersion)"
            )
        }
    }

    mutating func readStreamXid(_ inStream: Bool) throws(PGOutputDecodingError) -> UInt32? {
        inStream ? try readUInt32("stream xid") : nil
    }

    mutating func expectMarker(_ expected: UInt8, _ field: StaticString) throws(PGOutputDecodingError) {
        let at = offset
        let marker = try readUInt8(field)
        guard marker == expected else {
            throw error(.invalidTupleMarker, at: at, "\(field): \(marker), expected \(expected)")
        }
    }

    mutating func readPrepareFields() throws(PGOutputDecodingError) -> PGOutputMessage.Prepare {
        .init(
            prepareLSN: try readLSN("prepare LSN"),
            endLSN: try readLSN("end LSN"),
            prepareTimestamp: try readTimestamp("prepare timestamp"),
            xid: try readUInt32("xid"),
            gid: try readString("gid")
        )
    }

    mutating func readRelation(streamXid: UInt32?) throws(PGOutputDecodingError) -> PGOutputMessage.Relation {
        let id = try readUInt32("relation OID")
        let namespace = try readString("relation namespace")
        let name = try readString("relation name")
        var at = offset
        let identityByte = try readUInt8("replica identity")
        guard let identity = PGOutputMessage.ReplicaIdentity(rawValue: identityByte) else {
            throw error(.invalidValue, at: at, "replica identity \(identityByte), expected d, n, f or i")
        }
        at = offset
        let count = try readInt16("column count")
        // Each column takes at least 10 bytes: flags, an empty name's zero, type OID, typmod.
        guard count >= 0, Int(count) <= remaining / 10 else {
            throw error(.invalidCount, at: at, "column count \(count), \(remaining) bytes left")
        }
        var columns: [PGOutputMessage.Relation.Column] = []
        columns.reserveCapacity(Int(count))
        for _ in 0..<Int(count) {
            at = offset
            let flags = try readUInt8("column flags")
            guard flags <= 1 else { throw error(.invalidFlags, at: at, "column flags \(flags), expected 0 or 1") }
            columns.append(.init(
                isKey: flags == 1,
                name: try readString("column name"),
                typeOID: try readUInt32("column type OID"),
                typeModifier: try readInt32("column type modifier")
            ))
        }
        return .init(
            streamXid: streamXid, id: id, namespace: namespace, name: name,
            replicaIdentity: identity, columns: columns
        )
    }

    mutating func readTruncate(streamXid: UInt32?) throws(PGOutputDecodingError) -> PGOutputMessage.Truncate {
        var at = offset
        let count = try readInt32("relation count")
        // After the options byte, each relation takes 4 bytes.
        guard count >= 0, Int(count) <= (remaining &- 1) / 4 else {
            throw error(.invalidCount, at: at, "relation count \(count), \(remaining) bytes left")
        }
        at = offset
        let optionBits = try readUInt8("truncate options")
        let options = PGOutputMessage.TruncateOptions(rawValue: optionBits)
        guard options.isSubset(of: [.cascade, .restartIdentity]) else {
            throw error(.invalidFlags, at: at, "truncate options \(optionBits), expected bits 1 and 2 only")
        }
        var relationIDs: [UInt32] = []
        relationIDs.reserveCapacity(Int(count))
        for _ in 0..<Int(count) {
            relationIDs.append(try readUInt32("truncated relation OID"))
        }
        return .init(streamXid: streamXid, options: options, relationIDs: relationIDs)
    }

    /// TupleData: Int16 column count, then per column `n`, `u`, or `t`/`b` + Int32 length + bytes.
    mutating func readTuple() throws(PGOutputDecodingError) -> TupleData {
        var at = offset
        let count = try readInt16("tuple column count")
        // Each column takes at least its kind byte.
        guard count >= 0, Int(count) <= remaining else {
            throw error(.invalidCount, at: at, "tuple column count \(count), \(remaining) bytes left")
        }
        // Every length checked here; the columns stay where they are (one slice for the row).
        let start = offset
        for _ in 0..<Int(count) {
            at = offset
            let kind = try readUInt8("tuple column kind")
            switch kind {
            case UInt8(ascii: "n"), UInt8(ascii: "u"):
                break
            case UInt8(ascii: "t"):
                try skipLengthPrefixedBytes("text column value")
            case UInt8(ascii: "b"):
                try skipLengthPrefixedBytes("binary column value")
            default:
                throw error(.invalidColumnKind, at: at, "tuple column kind \(kind), expected n, u, t or b")
            }
        }
        return TupleData(checked: slice(from: start), count: Int(count))
    }
}
