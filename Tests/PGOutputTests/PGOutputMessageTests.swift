// Hand-built payloads for every message kind, laid out as in the PostgreSQL docs
// ("Logical Replication Message Formats").
import NIOCore
import PostgresWire
import Testing
@testable import PGOutput

@Suite struct PGOutputMessageTests {
    let lsn1 = LSN(0x0000_0001_0000_0010)
    let lsn2 = LSN(0x0000_0001_0000_0020)
    let time1 = PostgresTimestamp(rawValue: 757_479_845_000_000)
    let time2 = PostgresTimestamp(rawValue: -1)

    func decode(
        _ payload: ByteBuffer, version: Int = 4, parallel: Bool = false, streamXid: UInt32? = nil
    ) throws -> PGOutputMessage {
        var decoder = PGOutputDecoder(protocolVersion: version, parallelStreaming: parallel)
        if let streamXid {
            var start = bytes(.tag("S"), .u32(streamXid), .u8(1))
            _ = try decoder.decode(&start)
        }
        var consumed = payload
        let message = try decoder.decode(&consumed)
        #expect(consumed.readableBytes == 0)
        // The layout is canonical: encoding the message gives the payload back.
        #expect(TestEncoder.encode(message) == payload)
        return message
    }

    @Test func begin() throws {
        let payload = bytes(.tag("B"), .u64(lsn1.rawValue), .i64(time1.rawValue), .u32(0xFFFF_FFFE))
        #expect(try decode(payload) == .begin(.init(finalLSN: lsn1, commitTimestamp: time1, xid: 0xFFFF_FFFE)))
    }

    @Test func commit() throws {
        let payload = bytes(.tag("C"), .u8(0), .u64(lsn1.rawValue), .u64(lsn2.rawValue), .i64(time2.rawValue))
        #expect(try decode(payload) == .commit(.init(commitLSN: lsn1, endLSN: lsn2, commitTimestamp: time2)))
    }

    @Test func origin() throws {
        let payload = bytes(.tag("O"), .u64(lsn1.rawValue), .string("node-a"))
        #expect(try decode(payload) == .origin(.init(commitLSN: lsn1, name: "node-a")))
    }

    @Test func relation() throws {
        let payload = bytes(
            .tag("R"), .u32(16_385), .string(""), .string("t"), .u8(UInt8(ascii: "n")), .i16(2),
            .u8(1), .string("id"), .u32(20), .i32(-1),
            .u8(0), .string("ünï"), .u32(1043), .i32(14)
        )
        #expect(try decode(payload) == .relation(.init(
            id: 16_385, namespace: "", name: "t", replicaIdentity: .nothing,
            columns: [
                .init(isKey: true, name: "id", typeOID: 20, typeModifier: -1),
                .init(isKey: false, name: "ünï", typeOID: 1043, typeModifier: 14),
            ]
        )))
        // Zero columns is valid (a table with only generated or dropped columns).
        let empty = bytes(.tag("R"), .u32(1), .string("s"), .string("t"), .u8(UInt8(ascii: "f")), .i16(0))
        #expect(try decode(empty) == .relation(.init(id: 1, namespace: "s", name: "t", replicaIdentity: .full, columns: [])))
    }

    @Test func relationInsideStream() throws {
        let payload = bytes(.tag("R"), .u32(77), .u32(5), .string("s"), .string("t"), .u8(UInt8(ascii: "i")), .i16(0))
        #expect(try decode(payload, streamXid: 70) == .relation(.init(
            streamXid: 77, id: 5, namespace: "s", name: "t", replicaIdentity: .index, columns: []
        )))
    }

    @Test func type() throws {
        let payload = bytes(.tag("Y"), .u32(16_400), .string("public"), .string("mood"))
        #expect(try decode(payload) == .type(.init(id: 16_400, namespace: "public", name: "mood")))
        let streamed = bytes(.tag("Y"), .u32(9), .u32(16_400), .string("public"), .string("mood"))
        #expect(try decode(streamed, streamXid: 9) == .type(.init(streamXid: 9, id: 16_400, namespace: "public", name: "mood")))
    }

    @Test func insertWithEveryColumnKind() throws {
        let payload = bytes(
            .tag("I"), .u32(42), .tag("N"), .i16(5),
            .tag("n"), .tag("u"), .tag("t"), .i32(3), .raw(Array("abc".utf8)),
            .tag("b"), .i32(2), .raw([0, 0xFF]), .tag("t"), .i32(0)
        )
        let message = try decode(payload)
        #expect(message == .insert(.init(
            relationID: 42, newTuple: [.null, .unchangedToast, .t("abc"), .b([0, 0xFF]), .t("")]
        )))
        guard case .insert(let insert) = message else { return }
        #expect(insert.newTuple[2].string == "abc")
        #expect(insert.newTuple[3].bytes?.bytes == [0, 0xFF])
        #expect(insert.newTuple[0].bytes == nil && insert.newTuple[1].string == nil)
        // Read in place, as the pipeline reads it: each column's kind and bytes, in order.
        var columns: [(kind: TupleData.Kind, bytes: [UInt8])] = []
        insert.newTuple.forEachColumn { kind, bytes in columns.append((kind, Array(bytes))) }
        #expect(columns.map(\.kind) == [.null, .unchangedToast, .text, .binary, .text])
        #expect(columns.map(\.bytes) == [[], [], Array("abc".utf8), [0, 0xFF], []])
        #expect(insert.newTuple.count == 5 && insert.newTuple.values.count == 5)

        let streamed = bytes(.tag("I"), .u32(3), .u32(42), .tag("N"), .i16(0))
        #expect(try decode(streamed, streamXid: 2) == .insert(.init(streamXid: 3, relationID: 42, newTuple: [])))
    }

    @Test func updateVariants() throws {
        let plain = bytes(.tag("U"), .u32(1), .tag("N"), .i16(1), .tag("t"), .i32(1), .raw([0x31]))
        #expect(try decode(plain) == .update(.init(relationID: 1, oldTuple: nil, newTuple: [.t("1")])))

        let key = bytes(
            .tag("U"), .u32(1), .tag("K"), .i16(2), .tag("t"), .i32(1), .raw([0x31]), .tag("n"),
            .tag("N"), .i16(2), .tag("t"), .i32(1), .raw([0x32]), .tag("u")
        )
        #expect(try decode(key) == .update(.init(
            relationID: 1, oldTuple: .key([.t("1"), .null]), newTuple: [.t("2"), .unchangedToast]
        )))

        let full = bytes(
            .tag("U"), .u32(9), .u32(1), .tag("O"), .i16(1), .tag("b"), .i32(1), .raw([7]),
            .tag("N"), .i16(1), .tag("b"), .i32(1), .raw([8])
        )
        #expect(try decode(full, streamXid: 9) == .update(.init(
            streamXid: 9, relationID: 1, oldTuple: .full([.b([7])]), newTuple: [.b([8])]
        )))
    }

    @Test func deleteVariants() throws {
        let key = bytes(.tag("D"), .u32(1), .tag("K"), .i16(1), .tag("t"), .i32(1), .raw([0x31]))
        #expect(try decode(key) == .delete(.init(relationID: 1, oldTuple: .key([.t("1")]))))
        let full = bytes(.tag("D"), .u32(4), .u32(1), .tag("O"), .i16(1), .tag("n"))
        #expect(try decode(full, streamXid: 4) == .delete(.init(streamXid: 4, relationID: 1, oldTuple: .full([.null]))))
    }

    @Test func truncate() throws {
        let payload = bytes(.tag("T"), .i32(2), .u8(3), .u32(10), .u32(11))
        #expect(try decode(payload) == .truncate(.init(options: [.cascade, .restartIdentity], relationIDs: [10, 11])))
        let streamed = bytes(.tag("T"), .u32(5), .i32(1), .u8(1), .u32(10))
        #expect(try decode(streamed, streamXid: 5) == .truncate(.init(streamXid: 5, options: .cascade, relationIDs: [10])))
        let none = bytes(.tag("T"), .i32(0), .u8(0))
        #expect(try decode(none) == .truncate(.init(options: [], relationIDs: [])))
    }

    @Test func logicalMessage() throws {
        let payload = bytes(.tag("M"), .u8(1), .u64(lsn1.rawValue), .string("app"), .i32(3), .raw([0, 1, 2]))
        #expect(try decode(payload) == .message(.init(
            isTransactional: true, lsn: lsn1, prefix: "app", content: ByteBuffer(bytes: [0, 1, 2])
        )))
        let streamed = bytes(.tag("M"), .u32(8), .u8(0), .u64(lsn1.rawValue), .string(""), .i32(0))
        #expect(try decode(streamed, streamXid: 8) == .message(.init(
            streamXid: 8, isTransactional: false, lsn: lsn1, prefix: "", content: ByteBuffer()
        )))
    }

    @Test func streamStartStop() throws {
        var decoder = PGOutputDecoder(protocolVersion: 2)
        var start = bytes(.tag("S"), .u32(700), .u8(1))
        #expect(try decoder.decode(&start) == .streamStart(.init(xid: 700, isFirstSegment: true)))
        #expect(decoder.openStreamXid == 700 && decoder.isStreaming)
        var insert = bytes(.tag("I"), .u32(701), .u32(42), .tag("N"), .i16(0))
        #expect(try decoder.decode(&insert) == .insert(.init(streamXid: 701, relationID: 42, newTuple: [])))
        var stop = bytes(.tag("E"))
        #expect(try decoder.decode(&stop) == .streamStop)
        #expect(decoder.openStreamXid == nil && !decoder.isStreaming)
        // Outside the block the same insert has no xid.
        var plain = bytes(.tag("I"), .u32(42), .tag("N"), .i16(0))
        #expect(try decoder.decode(&plain) == .insert(.init(relationID: 42, newTuple: [])))
        var next = bytes(.tag("S"), .u32(700), .u8(0))
        #expect(try decoder.decode(&next) == .streamStart(.init(xid: 700, isFirstSegment: false)))
    }

    @Test func streamCommit() throws {
        let payload = bytes(.tag("c"), .u32(700), .u8(0), .u64(lsn1.rawValue), .u64(lsn2.rawValue), .i64(time1.rawValue))
        #expect(try decode(payload, version: 2) == .streamCommit(.init(
            xid: 700, commitLSN: lsn1, endLSN: lsn2, commitTimestamp: time1
        )))
    }

    @Test func streamAbort() throws {
        let payload = bytes(.tag("A"), .u32(700), .u32(701))
        let abort = try decode(payload, version: 2)
        #expect(abort == .streamAbort(.init(xid: 700, subtransactionXid: 701)))
        // Version 4 without parallel streaming has the version 2 layout.
        #expect(try decode(payload, version: 4, parallel: false) == abort)
        // Parallel streaming below version 4 is ignored (PostgreSQL refuses that combination).
        #expect(try decode(payload, version: 3, parallel: true) == abort)
    }

    @Test func parallelStreamAbort() throws {
        let payload = bytes(.tag("A"), .u32(700), .u32(700), .u64(lsn2.rawValue), .i64(time1.rawValue))
        let message = try decode(payload, version: 4, parallel: true)
        #expect(message == .streamAbort(.init(xid: 700, subtransactionXid: 700, abortLSN: lsn2, abortTimestamp: time1)))
        guard case .streamAbort(let abort) = message else { return }
        #expect(abort.isTopLevel)
        // The same bytes without the parallel option have 16 bytes too many.
        var decoder = PGOutputDecoder(protocolVersion: 4)
        var copy = payload
        #expect(throws: PGOutputDecodingError.self) { try decoder.decode(&copy) }
        do {
            _ = try decoder.decode(&copy)
        } catch {
            #expect(error.kind == .trailingBytes && error.offset == 9)
        }
        // And the parallel layout needs the extra fields.
        var decoderParallel = PGOutputDecoder(protocolVersion: 4, parallelStreaming: true)
        var short = bytes(.tag("A"), .u32(700), .u32(700))
        do {
            _ = try decoderParallel.decode(&short)
            Issue.record("short parallel abort decoded")
        } catch {
            #expect(error.kind == .truncated && error.offset == 9)
        }
    }

    @Test func beginPrepare() throws {
        let payload = bytes(.tag("b"), .u64(lsn1.rawValue), .u64(lsn2.rawValue), .i64(time1.rawValue), .u32(9), .string("gid-1"))
        #expect(try decode(payload, version: 3) == .beginPrepare(.init(
            prepareLSN: lsn1, endLSN: lsn2, prepareTimestamp: time1, xid: 9, gid: "gid-1"
        )))
    }

    @Test func prepareAndStreamPrepare() throws {
        let expected = PGOutputMessage.Prepare(prepareLSN: lsn1, endLSN: lsn2, prepareTimestamp: time1, xid: 9, gid: "g")
        let prepare = bytes(.tag("P"), .u8(0), .u64(lsn1.rawValue), .u64(lsn2.rawValue), .i64(time1.rawValue), .u32(9), .string("g"))
        #expect(try decode(prepare, version: 3) == .prepare(expected))
        let streamPrepare = bytes(.tag("p"), .u8(0), .u64(lsn1.rawValue), .u64(lsn2.rawValue), .i64(time1.rawValue), .u32(9), .string("g"))
        #expect(try decode(streamPrepare, version: 3) == .streamPrepare(expected))
    }

    @Test func commitPrepared() throws {
        let payload = bytes(.tag("K"), .u8(0), .u64(lsn1.rawValue), .u64(lsn2.rawValue), .i64(time1.rawValue), .u32(9), .string("g"))
        #expect(try decode(payload, version: 3) == .commitPrepared(.init(
            commitLSN: lsn1, endLSN: lsn2, commitTimestamp: time1, xid: 9, gid: "g"
        )))
    }

    @Test func rollbackPrepared() throws {
        let payload = bytes(
            .tag("r"), .u8(0), .u64(lsn1.rawValue), .u64(lsn2.rawValue), .i64(time1.rawValue), .i64(time2.rawValue),
            .u32(9), .string("g")
        )
        #expect(try decode(payload, version: 3) == .rollbackPrepared(.init(
            prepareEndLSN: lsn1, rollbackEndLSN: lsn2, prepareTimestamp: time1, rollbackTimestamp: time2, xid: 9, gid: "g"
        )))
    }

    @Test func consumesOnlyTheReadableBytes() throws {
        // A payload that is a slice of a larger buffer (as in an XLogData frame).
        var frame = bytes(.raw([0xAA, 0xBB]), .tag("E"))
        frame.moveReaderIndex(forwardBy: 2)
        var decoder = PGOutputDecoder()
        var start = bytes(.tag("S"), .u32(1), .u8(1))
        _ = try decoder.decode(&start)
        #expect(try decoder.decode(&frame) == .streamStop)
        #expect(frame.readableBytes == 0)
    }

    @Test func timestampsAreMicrosecondsSince2000() throws {
        // PostgresTimestamp comes from PostgresWire; check the unit the decoder relies on.
        let payload = bytes(.tag("B"), .u64(1), .i64(1_500_000), .u32(1))
        guard case .begin(let begin) = try decode(payload) else { Issue.record("not a begin"); return }
        #expect(begin.commitTimestamp.rawValue == 1_500_000)
        #expect(begin.commitTimestamp.date.timeIntervalSince1970 == 946_684_801.5)
    }

    @Test func tagsMatchTheWire() {
        let expectations: [(PGOutputMessage, Character)] = [
            (.streamStop, "E"),
            (.begin(.init(finalLSN: lsn1, commitTimestamp: time1, xid: 1)), "B"),
            (.streamAbort(.init(xid: 1, subtransactionXid: 1)), "A"),
        ]
        for (message, tag) in expectations { #expect(message.tag == tag.asciiValue) }
    }
}
