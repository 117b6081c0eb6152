import NIOCore

/// Reads PostgreSQL's binary `COPY … TO STDOUT (FORMAT binary)` stream incrementally.
///
/// The layout (PostgreSQL docs, "COPY", Binary Format): an 11-byte signature
/// `PGCOPY\n\xFF\r\n\0`, an Int32 flags field (bit 16: OIDs included; bits 17-31 are
/// critical and must be zero), an Int32 header-extension length and that many bytes; then per
/// tuple an Int16 field count (-1 is the trailer that ends the data) and per field an Int32
/// length (-1 is NULL) followed by that many bytes.
///
/// CopyData messages split the stream anywhere — inside a length word, inside a field — so
/// bytes are kept until a whole tuple is present; ``nextTuple()`` hands out complete tuples
/// only. Memory: the unread bytes of the stream, at most the largest tuple plus one CopyData
/// message. Total over arbitrary input: malformed bytes throw ``SnapshotError`` with code
/// `malformedCopyData` and the offset, never trap.
public struct BinaryCopyParser: Sendable {
    /// A complete tuple: its field count and the bytes of its fields.
    public struct Tuple: Sendable {
        public let fieldCount: Int
        /// The tuple's size in the stream, framing included.
        public let byteCount: Int
        /// The field frames (Int32 length + bytes, each).
        let fields: ByteBuffer

        /// Calls `body` with each field's index and bytes (nil for NULL), in order.
        public func forEachField(_ body: (Int, ByteBuffer?) throws -> Void) rethrows {
            var reader = fields
            for index in 0..<fieldCount {
                let length = Int(reader.readInteger(as: Int32.self)!)
                if length < 0 {
                    try body(index, nil)
                } else {
                    try body(index, reader.readSlice(length: length)!)
                }
            }
        }

        /// Appends the tuple as it came in the stream (field count, then the field frames).
        public func write(to buffer: inout ByteBuffer) {
            buffer.writeInteger(Int16(fieldCount))
            var fields = fields
            buffer.writeBuffer(&fields)
        }

        /// The fields as an array (nil for NULL).
        public var fieldBytes: [ByteBuffer?] {
            var result: [ByteBuffer?] = []
            result.reserveCapacity(fieldCount)
            forEachField { result.append($1) }
            return result
        }
    }

    static let signature: [UInt8] = [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00]
    /// What opens a binary COPY stream Ferry writes: the signature, flags 0, no header extension.
    public static let header: [UInt8] = signature + [0, 0, 0, 0, 0, 0, 0, 0]
    /// What ends one: a field count of -1.
    public static let trailer: [UInt8] = [0xFF, 0xFF]

    private enum State: Sendable {
        case header
        case tuples
        case finished
    }

    private var buffer = ByteBuffer()
    private var state = State.header
    /// Stream offset of `buffer.readerIndex`, for error messages.
    private var consumed = 0

    public init() {}

    /// Whether the trailer was read.
    public var isFinished: Bool { if case .finished = state { true } else { false } }

    /// Bytes received and not yet handed out as tuples.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// Adds the next piece of the stream (a CopyData payload, or any split of it).
    public mutating func append(_ bytes: ByteBuffer) throws {
        guard bytes.readableBytes > 0 else { return }
        if case .finished = state {
            throw malformed("\(bytes.readableBytes) bytes after the trailer", at: consumed + buffer.readableBytes)
        }
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            if buffer.readerIndex > 0 { buffer.discardReadBytes() }
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next complete tuple, or nil when more bytes are needed (or the trailer was read:
    /// see ``isFinished``).
    public mutating func nextTuple() throws -> Tuple? {
        if case .header = state {
            guard try readHeader() else { return nil }
        }
        guard case .tuples = state else { return nil }
        let start = buffer.readerIndex
        guard let count = buffer.getInteger(at: start, as: Int16.self) else { return nil }
        if count == -1 {
            buffer.moveReaderIndex(forwardBy: 2)
            consumed += 2
            state = .finished
            if buffer.readableBytes > 0 {
                throw malformed("\(buffer.readableBytes) bytes after the trailer", at: consumed)
            }
            return nil
        }
        guard count >= 0 else { throw malformed("negative field count \(count)", at: consumed) }
        var index = start + 2
        for field in 0..<Int(count) {
            guard let length = buffer.getInteger(at: index, as: Int32.self) else { return nil }
            index += 4
            if length == -1 { continue }
            guard length >= 0 else {
                throw malformed("field \(field + 1) has length \(length)", at: consumed + index - 4 - start)
            }
            guard buffer.writerIndex - index >= Int(length) else { return nil }
            index += Int(length)
        }
        let size = index - start
        let fields = buffer.getSlice(at: start + 2, length: size - 2)!
        buffer.moveReaderIndex(to: index)
        consumed += size
        if buffer.readableBytes == 0 { buffer.clear() }
        return Tuple(fieldCount: Int(count), byteCount: size, fields: fields)
    }

    /// Checks that the stream ended properly: the trailer was read and nothing follows it.
    public func finish() throws {
        guard isFinished else {
            throw malformed("the COPY data ended without its trailer (\(buffer.readableBytes) bytes of an incomplete tuple or header left)",
                            at: consumed)
        }
    }

    private mutating func readHeader() throws -> Bool {
        let fixed = Self.signature.count + 8
        guard buffer.readableBytes >= fixed else {
            // Reject a wrong signature as soon as its first bytes are there.
            let present = buffer.readableBytes
            if let prefix = buffer.getBytes(at: buffer.readerIndex, length: min(present, Self.signature.count)),
               prefix != Array(Self.signature.prefix(prefix.count)) {
                throw malformed("not binary COPY data (wrong signature)", at: 0)
            }
            return false
        }
        let start = buffer.readerIndex
        guard buffer.getBytes(at: start, length: Self.signature.count) == Self.signature else {
            throw malformed("not binary COPY data (wrong signature)", at: 0)
        }
        let flags = buffer.getInteger(at: start + Self.signature.count, as: UInt32.self)!
        if flags & (1 << 16) != 0 {
            throw malformed("the data includes OIDs (flag bit 16), which Ferry does not ask for", at: Self.signature.count)
        }
        if flags >> 17 != 0 {
            throw malformed("unknown critical flags 0x\(String(flags, radix: 16)) in the header", at: Self.signature.count)
        }
        let extensionLength = buffer.getInteger(at: start + Self.signature.count + 4, as: Int32.self)!
        guard extensionLength >= 0 else {
            throw malformed("negative header extension length \(extensionLength)", at: Self.signature.count + 4)
        }
        guard buffer.readableBytes >= fixed + Int(extensionLength) else { return false }
        buffer.moveReaderIndex(forwardBy: fixed + Int(extensionLength))
        consumed += fixed + Int(extensionLength)
        state = .tuples
        return true
    }

    private func malformed(_ what: String, at offset: Int) -> SnapshotError {
        SnapshotError(.malformedCopyData, "malformed binary COPY data at byte \(offset): \(what)",
                      fix: "check that the source is PostgreSQL (not a proxy that rewrites COPY); report it if it is")
    }
}
