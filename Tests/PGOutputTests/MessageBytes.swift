// Building pgoutput payloads by hand: a big-endian byte builder and an encoder that is the
// decoder's inverse (for round-trip properties).
import NIOCore
import PostgresWire
@testable import PGOutput

/// Pieces of a hand-built message, written big-endian as PostgreSQL does.
enum Part {
    case tag(Character)
    case u8(UInt8)
    case i16(Int16)
    case i32(Int32)
    case u32(UInt32)
    case i64(Int64)
    case u64(UInt64)
    /// Zero-terminated string.
    case string(String)
    case raw([UInt8])
}

func bytes(_ parts: Part...) -> ByteBuffer {
    var buffer = ByteBuffer()
    for part in parts {
        switch part {
        case .tag(let c): buffer.writeInteger(c.asciiValue ?? 0)
        case .u8(let v): buffer.writeInteger(v)
        case .i16(let v): buffer.writeInteger(v, endianness: .big)
        case .i32(let v): buffer.writeInteger(v, endianness: .big)
        case .u32(let v): buffer.writeInteger(v, endianness: .big)
        case .i64(let v): buffer.writeInteger(v, endianness: .big)
        case .u64(let v): buffer.writeInteger(v, endianness: .big)
        case .string(let s):
            buffer.writeString(s)
            buffer.writeInteger(UInt8(0))
        case .raw(let b): buffer.writeBytes(b)
        }
    }
    return buffer
}

extension TupleValue {
    /// A text value from a string.
    static func t(_ string: String) -> TupleValue { .text(ByteBuffer(string: string)) }
    /// A binary value from bytes.
    static func b(_ bytes: [UInt8]) -> TupleValue { .binary(ByteBuffer(bytes: bytes)) }
}

/// A test-only encoder, the inverse of the decoder: used for round-trip properties.
enum TestEncoder {
    static func encode(_ message: PGOutputMessage) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeInteger(message.tag)
        func lsn(_ value: LSN) { out.writeInteger(value.rawValue, endianness: .big) }
        func ts(_ value: PostgresTimestamp) { out.writeInteger(value.rawValue, endianness: .big) }
        func u32(_ value: UInt32) { out.writeInteger(value, endianness: .big) }
        func u8(_ value: UInt8) { out.writeInteger(value) }
        func string(_ value: String) {
            out.writeString(value)
            out.writeInteger(UInt8(0))
        }
        func xid(_ value: UInt32?) { if let value { u32(value) } }
        func tuple(_ tuple: TupleData) {
            out.writeInteger(Int16(truncatingIfNeeded: tuple.count), endianness: .big)
            for value in tuple {
                switch value {
                case .null: u8(UInt8(ascii: "n"))
                case .unchangedToast: u8(UInt8(ascii: "u"))
                case .text(var bytes), .binary(var bytes):
                    u8(value.isText ? UInt8(ascii: "t") : UInt8(ascii: "b"))
                    out.writeInteger(Int32(truncatingIfNeeded: bytes.readableBytes), endianness: .big)
                    out.writeBuffer(&bytes)
                }
            }
        }
        func prepare(_ p: PGOutputMessage.Prepare) {
            lsn(p.prepareLSN); lsn(p.endLSN); ts(p.prepareTimestamp); u32(p.xid); string(p.gid)
        }
        switch message {
        case .begin(let m):
            lsn(m.finalLSN); ts(m.commitTimestamp); u32(m.xid)
        case .commit(let m):
            u8(0); lsn(m.commitLSN); lsn(m.endLSN); ts(m.commitTimestamp)
        case .origin(let m):
            lsn(m.commitLSN); string(m.name)
        case .relation(let m):
            xid(m.streamXid); u32(m.id); string(m.namespace); string(m.name); u8(m.replicaIdentity.rawValue)
            out.writeInteger(Int16(truncatingIfNeeded: m.columns.count), endianness: .big)
            for column in m.columns {
                u8(column.isKey ? 1 : 0); string(column.name); u32(column.typeOID)
                out.writeInteger(column.typeModifier, endianness: .big)
            }
        case .type(let m):
            xid(m.streamXid); u32(m.id); string(m.namespace); string(m.name)
        case .insert(let m):
            xid(m.streamXid); u32(m.relationID); u8(UInt8(ascii: "N")); tuple(m.newTuple)
        case .update(let m):
            xid(m.streamXid); u32(m.relationID)
            switch m.oldTuple {
            case .key(let old)?: u8(UInt8(ascii: "K")); tuple(old)
            case .full(let old)?: u8(UInt8(ascii: "O")); tuple(old)
            case nil: break
            }
            u8(UInt8(ascii: "N")); tuple(m.newTuple)
        case .delete(let m):
            xid(m.streamXid); u32(m.relationID)
            switch m.oldTuple {
            case .key(let old): u8(UInt8(ascii: "K")); tuple(old)
            case .full(let old): u8(UInt8(ascii: "O")); tuple(old)
            }
        case .truncate(let m):
            xid(m.streamXid)
            out.writeInteger(Int32(truncatingIfNeeded: m.relationIDs.count), endianness: .big)
            u8(m.options.rawValue)
            for id in m.relationIDs { u32(id) }
        case .message(let m):
            xid(m.streamXid); u8(m.isTransactional ? 1 : 0); lsn(m.lsn); string(m.prefix)
            var content = m.content
            out.writeInteger(Int32(truncatingIfNeeded: content.readableBytes), endianness: .big)
            out.writeBuffer(&content)
        case .streamStart(let m):
            u32(m.xid); u8(m.isFirstSegment ? 1 : 0)
        case .streamStop:
            break
        case .streamCommit(let m):
            u32(m.xid); u8(0); lsn(m.commitLSN); lsn(m.endLSN); ts(m.commitTimestamp)
        case .streamAbort(let m):
            u32(m.xid); u32(m.subtransactionXid)
            if let abortLSN = m.abortLSN { lsn(abortLSN) }
            if let abortTimestamp = m.abortTimestamp { ts(abortTimestamp) }
        case .beginPrepare(let m):
            prepare(m)
        case .prepare(let m), .streamPrepare(let m):
            u8(0); prepare(m)
        case .commitPrepared(let m):
            u8(0); lsn(m.commitLSN); lsn(m.endLSN); ts(m.commitTimestamp); u32(m.xid); string(m.gid)
        case .rollbackPrepared(let m):
            u8(0); lsn(m.prepareEndLSN); lsn(m.rollbackEndLSN); ts(m.prepareTimestamp); ts(m.rollbackTimestamp)
            u32(m.xid); string(m.gid)
        }
        return out
    }

    /// All strings of a message (to know whether invalid UTF-8 was repaired while decoding).
    static func strings(of message: PGOutputMessage) -> [String] {
        switch message {
        case .origin(let m): [m.name]
        case .relation(let m): [m.namespace, m.name] + m.columns.map(\.name)
        case .type(let m): [m.namespace, m.name]
        case .message(let m): [m.prefix]
        case .beginPrepare(let m), .prepare(let m), .streamPrepare(let m): [m.gid]
        case .commitPrepared(let m): [m.gid]
        case .rollbackPrepared(let m): [m.gid]
        default: []
        }
    }
}

extension TupleValue {
    var isText: Bool { if case .text = self { true } else { false } }
}

extension ByteBuffer {
    var bytes: [UInt8] { Array(readableBytesView) }
}
