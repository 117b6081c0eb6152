// Golden bytes captured from PostgreSQL 15 (Fixtures/capture.sh). LSNs, xids, timestamps and
// relation OIDs change when the fixtures are regenerated, so they are checked by consistency;
// everything else is checked exactly.
import Foundation
import NIOCore
import PostgresWire
import Testing
@testable import PGOutput

@Suite struct PGOutputFixtureTests {
    // MARK: Helpers

    /// The messages of a fixture, decoded.
    func decoded(_ name: String) throws -> [PGOutputMessage] {
        try Fixture.load(name).decodeAll()
    }

    func tags(_ messages: [PGOutputMessage]) -> String {
        String(decoding: messages.map(\.tag), as: UTF8.self)
    }

    func relations(_ messages: [PGOutputMessage]) -> [String: PGOutputMessage.Relation] {
        var result: [String: PGOutputMessage.Relation] = [:]
        for case .relation(let relation) in messages { result[relation.name] = relation }
        return result
    }

    func columns(_ relation: PGOutputMessage.Relation?) -> [String] {
        relation?.columns.map { "\($0.name):\($0.typeOID):\($0.typeModifier)\($0.isKey ? ":key" : "")" } ?? []
    }

    // MARK: Invariants over every fixture

    @Test(arguments: Fixture.names)
    func everyFixtureDecodesConsistently(_ name: String) throws {
        let fixture = try Fixture.load(name)
        let messages = try fixture.decodeAll()
        #expect(messages.count == fixture.messages.count)
        #expect(!messages.isEmpty)

        var known: [UInt32: PGOutputMessage.Relation] = [:]
        var openBegin: PGOutputMessage.Begin?
        var openBeginPrepare: PGOutputMessage.Prepare?
        var streamXid: UInt32?
        for message in messages {
            // Inside a stream block every data message carries an xid; outside none does.
            let carried: UInt32?? = switch message {
            case .relation(let m): .some(m.streamXid)
            case .type(let m): .some(m.streamXid)
            case .insert(let m): .some(m.streamXid)
            case .update(let m): .some(m.streamXid)
            case .delete(let m): .some(m.streamXid)
            case .truncate(let m): .some(m.streamXid)
            case .message(let m): .some(m.streamXid)
            default: .none
            }
            if let carried { #expect((carried != nil) == (streamXid != nil), "\(name): \(message.tag)") }

            // Changes refer to a relation described earlier, with a matching column count.
            func check(_ relationID: UInt32, _ tuples: TupleData...) {
                let relation = known[relationID]
                #expect(relation != nil, "\(name): unknown relation \(relationID)")
                for tuple in tuples { #expect(tuple.count == relation?.columns.count) }
            }
            switch message {
            case .relation(let m): known[m.id] = m
            case .insert(let m): check(m.relationID, m.newTuple)
            case .update(let m):
                check(m.relationID, m.newTuple)
                if let old = m.oldTuple { check(m.relationID, old.tuple) }
            case .delete(let m): check(m.relationID, m.oldTuple.tuple)
            case .truncate(let m): for id in m.relationIDs { check(id) }
            case .begin(let m):
                #expect(openBegin == nil && streamXid == nil)
                openBegin = m
            case .commit(let m):
                #expect(openBegin?.finalLSN == m.commitLSN)
                #expect(openBegin?.commitTimestamp == m.commitTimestamp)
                #expect(m.endLSN > m.commitLSN)
                openBegin = nil
            case .beginPrepare(let m):
                openBeginPrepare = m
            case .prepare(let m):
                #expect(openBeginPrepare == m)
                openBeginPrepare = nil
            case .streamStart(let m):
                #expect(streamXid == nil)
                streamXid = m.xid
            case .streamStop:
                #expect(streamXid != nil)
                streamXid = nil
            default: break
            }
        }
        #expect(openBegin == nil && streamXid == nil && openBeginPrepare == nil)
    }

    @Test(arguments: Fixture.names)
    func everyFixtureMessageReencodesToTheSameBytes(_ name: String) throws {
        let fixture = try Fixture.load(name)
        let messages = try fixture.decodeAll()
        for (message, original) in zip(messages, fixture.messages) {
            #expect(TestEncoder.encode(message) == original)
        }
    }

    // MARK: Scenarios

    @Test func replicaIdentityDefault() throws {
        let messages = try decoded("replica_identity_default")
        #expect(tags(messages) == "BRIICBUCBDC")
        guard case .relation(let item) = messages[1] else { Issue.record("no relation"); return }
        #expect(item.namespace == "public" && item.name == "item")
        #expect(item.replicaIdentity == .default)
        #expect(item.streamXid == nil)
        // numeric(10,2): typmod ((10 << 16) | 2) + 4
        #expect(columns(item) == ["id:23:-1:key", "name:25:-1", "price:1700:655366"])
        #expect(messages[2] == .insert(.init(relationID: item.id, newTuple: [.t("1"), .t("apple"), .t("1.50")])))
        #expect(messages[3] == .insert(.init(relationID: item.id, newTuple: [.t("2"), .null, .t("2.00")])))
        #expect(messages[6] == .update(.init(relationID: item.id, oldTuple: nil, newTuple: [.t("1"), .t("pear"), .t("1.50")])))
        // Under the default identity a delete sends the key; other columns come as `n` (not sent).
        #expect(messages[9] == .delete(.init(relationID: item.id, oldTuple: .key([.t("2"), .null, .null]))))

        guard case .begin(let b1) = messages[0], case .begin(let b2) = messages[5], case .begin(let b3) = messages[8]
        else { Issue.record("no begins"); return }
        #expect(b2.xid == b1.xid &+ 1 && b3.xid == b2.xid &+ 1)
        #expect(b1.finalLSN < b2.finalLSN && b2.finalLSN < b3.finalLSN)
        #expect(b1.commitTimestamp <= b2.commitTimestamp)
        // Captured recently: after 2020, before 2100.
        let seconds = b1.commitTimestamp.date.timeIntervalSince1970
        #expect(seconds > 1_577_836_800 && seconds < 4_102_444_800)
    }

    @Test func replicaIdentityFull() throws {
        let messages = try decoded("replica_identity_full")
        #expect(tags(messages) == "BRICBUCBDC")
        guard case .relation(let item) = messages[1] else { Issue.record("no relation"); return }
        #expect(item.replicaIdentity == .full)
        // Under FULL every column is part of the identity.
        #expect(columns(item) == ["id:23:-1:key", "name:25:-1:key", "qty:23:-1:key"])
        #expect(messages[2] == .insert(.init(relationID: item.id, newTuple: [.t("1"), .t("apple"), .t("3")])))
        #expect(messages[5] == .update(.init(
            relationID: item.id,
            oldTuple: .full([.t("1"), .t("apple"), .t("3")]),
            newTuple: [.t("1"), .t("apple"), .t("4")]
        )))
        #expect(messages[8] == .delete(.init(relationID: item.id, oldTuple: .full([.t("1"), .t("apple"), .t("4")]))))
    }

    @Test func replicaIdentityIndex() throws {
        let messages = try decoded("replica_identity_index")
        #expect(tags(messages) == "BRICBUCBUCBDC")
        guard case .relation(let item) = messages[1] else { Issue.record("no relation"); return }
        #expect(item.replicaIdentity == .index)
        // The key is the index column, not the primary key.
        #expect(columns(item) == ["id:23:-1", "code:25:-1:key", "name:25:-1"])
        #expect(messages[2] == .insert(.init(relationID: item.id, newTuple: [.t("1"), .t("A-1"), .t("apple")])))
        // Key unchanged: no old tuple.
        #expect(messages[5] == .update(.init(
            relationID: item.id, oldTuple: nil, newTuple: [.t("1"), .t("A-1"), .t("green apple")]
        )))
        // Key changed: K with only the index column.
        #expect(messages[8] == .update(.init(
            relationID: item.id,
            oldTuple: .key([.null, .t("A-1"), .null]),
            newTuple: [.t("1"), .t("A-2"), .t("green apple")]
        )))
        #expect(messages[11] == .delete(.init(relationID: item.id, oldTuple: .key([.null, .t("A-2"), .null]))))
    }

    @Test func primaryKeyChange() throws {
        let messages = try decoded("primary_key_change")
        #expect(tags(messages) == "BRICBUC")
        guard case .relation(let account) = messages[1] else { Issue.record("no relation"); return }
        #expect(columns(account) == ["id:23:-1:key", "region:25:-1:key", "balance:23:-1"])
        #expect(messages[2] == .insert(.init(relationID: account.id, newTuple: [.t("7"), .t("eu"), .t("100")])))
        #expect(messages[5] == .update(.init(
            relationID: account.id,
            oldTuple: .key([.t("7"), .t("eu"), .null]),
            newTuple: [.t("8"), .t("eu"), .t("90")]
        )))
    }

    @Test func unchangedToast() throws {
        let messages = try decoded("unchanged_toast")
        #expect(tags(messages) == "BRUC")
        guard case .relation(let doc) = messages[1] else { Issue.record("no relation"); return }
        #expect(columns(doc) == ["id:23:-1:key", "title:25:-1", "body:25:-1"])
        // The untouched out-of-line body is `u`: not sent, and not NULL.
        #expect(messages[2] == .update(.init(
            relationID: doc.id, oldTuple: nil, newTuple: [.t("1"), .t("renamed"), .unchangedToast]
        )))
    }

    @Test func truncate() throws {
        let messages = try decoded("truncate")
        #expect(tags(messages) == "BRTCBRTCBRRTCBRRRTC")
        let byName = relations(messages)
        let solo = try #require(byName["solo"]?.id)
        let parent = try #require(byName["parent"]?.id)
        let child = try #require(byName["child"]?.id)
        #expect(columns(byName["child"]) == ["id:23:-1:key", "parent_id:23:-1"])
        let truncates = messages.compactMap { message -> PGOutputMessage.Truncate? in
            if case .truncate(let t) = message { t } else { nil }
        }
        #expect(truncates == [
            .init(options: [], relationIDs: [solo]),
            .init(options: [.restartIdentity], relationIDs: [solo]),
            .init(options: [.cascade], relationIDs: [parent, child]),
            .init(options: [.cascade, .restartIdentity], relationIDs: [parent, solo, child]),
        ])
    }

    @Test func logicalMessages() throws {
        let messages = try decoded("logical_messages")
        #expect(tags(messages) == "MBRIMMC")
        // Non-transactional: on its own, outside Begin/Commit.
        guard case .message(let heartbeat) = messages[0] else { Issue.record("no message"); return }
        #expect(!heartbeat.isTransactional)
        #expect(heartbeat.prefix == "ferry.heartbeat")
        #expect(heartbeat.content.readableBytes == 0)
        #expect(heartbeat.streamXid == nil)

        guard case .message(let audit) = messages[4], case .message(let raw) = messages[5],
              case .commit(let commit) = messages[6]
        else { Issue.record("no transactional messages"); return }
        #expect(audit.isTransactional && raw.isTransactional)
        #expect(audit.prefix == "ferry.audit")
        #expect(String(buffer: audit.content) == "hello, world")
        #expect(raw.prefix == "ferry.bytes")
        #expect(raw.content.bytes == [0x00, 0xFF, 0x0A])
        #expect(heartbeat.lsn < audit.lsn && audit.lsn < raw.lsn && raw.lsn <= commit.commitLSN)
    }

    @Test func customTypes() throws {
        let messages = try decoded("custom_type")
        #expect(tags(messages) == "BYYYRIC")
        guard case .type(let mood) = messages[1], case .type(let moods) = messages[2],
              case .type(let domain) = messages[3], case .relation(let person) = messages[4]
        else { Issue.record("unexpected messages"); return }
        #expect(mood.namespace == "public" && mood.name == "mood")
        #expect(moods.namespace == "public" && moods.name == "_mood")
        // A domain is announced under its own OID with its base type's name.
        #expect(domain.namespace == "" && domain.name == "int4")
        #expect(mood.id >= 16384 && moods.id >= 16384 && domain.id >= 16384)
        #expect(columns(person) == [
            "id:23:-1:key", "mood:\(mood.id):-1", "moods:\(moods.id):-1", "score:\(domain.id):-1",
            "name:1043:24",
        ])
        #expect(messages[5] == .insert(.init(
            relationID: person.id, newTuple: [.t("1"), .t("happy"), .t("{sad,ok}"), .t("5"), .t("ada")]
        )))
    }

    @Test func origin() throws {
        let messages = try decoded("origin")
        #expect(tags(messages) == "BORIC")
        guard case .begin(let begin) = messages[0], case .origin(let origin) = messages[1] else {
            Issue.record("unexpected messages"); return
        }
        #expect(origin == .init(commitLSN: LSN(0x1234_5678), name: "ferry_origin"))
        // pg_replication_origin_xact_setup('0/12345678', '2024-01-02 03:04:05+00') sets the commit time.
        #expect(begin.commitTimestamp.date == Date(timeIntervalSince1970: 1_704_164_645))
        #expect(begin.commitTimestamp.rawValue == 757_479_845_000_000)
    }

    @Test func binaryValues() throws {
        let messages = try decoded("binary")
        #expect(tags(messages) == "BRIC")
        guard case .relation(let sample) = messages[1], case .insert(let insert) = messages[2] else {
            Issue.record("unexpected messages"); return
        }
        #expect(columns(sample) == [
            "id:23:-1:key", "big:20:-1", "flag:16:-1", "label:25:-1", "raw:17:-1", "amount:1700:-1",
            "at:1184:-1", "ratio:701:-1", "uid:2950:-1", "doc:3802:-1", "nums:1007:-1", "missing:25:-1",
        ])
        let array: [UInt8] = [
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x17, 0, 0, 0, 2, 0, 0, 0, 1,  // ndim 1, no nulls, int4, 2 items from 1
            0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2,
        ]
        #expect(insert.newTuple == [
            .b([0, 0, 0, 1]),
            .b([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]),
            .b([1]),
            .b(Array("héllo".utf8)),
            .b([0xDE, 0xAD, 0xBE, 0xEF]),
            .b([0, 2, 0, 0, 0, 0, 0, 1, 0, 12, 0x13, 0x88]),  // numeric 12.5: 2 digits, weight 0, dscale 1
            .b([0, 0, 0, 0, 0, 0x0F, 0x42, 0x40]),  // 1 s after 2000-01-01
            .b([0x3F, 0xE0, 0, 0, 0, 0, 0, 0]),  // 0.5
            .b([0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF]),
            .b([1] + Array(#"{"a": 1}"#.utf8)),  // jsonb version 1
            .b(array),
            .null,
        ])
        #expect(insert.newTuple[3].string == nil)
    }

    @Test func streamingWithSubtransactionAbort() throws {
        let messages = try decoded("streaming")
        // Block 1 of T1: top-level rows 1...300, then rows of the savepoint's subtransaction.
        guard case .streamStart(let start1) = messages[0], case .relation(let big) = messages[1] else {
            Issue.record("unexpected start"); return
        }
        let t1 = start1.xid
        #expect(start1.isFirstSegment)
        #expect(big.name == "big" && big.streamXid == t1)
        #expect(columns(big) == ["id:23:-1"])
        var index = 2
        var rows: [(xid: UInt32?, value: String?)] = []
        while index < messages.count, case .insert(let insert) = messages[index] {
            #expect(insert.relationID == big.id)
            rows.append((insert.streamXid, insert.newTuple.values.first?.string))
            index += 1
        }
        #expect(rows.prefix(300).allSatisfy { $0.xid == t1 })
        #expect(rows.prefix(300).map(\.value) == (1...300).map { String($0) })
        let sub = try #require(rows.dropFirst(300).first?.xid)
        #expect(sub != t1)
        #expect(rows.count > 300 && rows.count < 600)
        #expect(rows.dropFirst(300).allSatisfy { $0.xid == sub })
        #expect(rows.dropFirst(300).map(\.value) == (301..<(rows.count + 1)).map { String($0) })

        // ROLLBACK TO SAVEPOINT: only the subtransaction is aborted.
        #expect(Array(messages[index...].prefix(3)) == [
            .streamStop,
            .streamAbort(.init(xid: t1, subtransactionXid: sub)),
            .streamStart(.init(xid: t1, isFirstSegment: false)),
        ])
        index += 3
        // The re-established savepoint is a new subtransaction with its own xid.
        guard case .relation(let small) = messages[index], case .insert(let smallInsert) = messages[index + 1] else {
            Issue.record("unexpected second block"); return
        }
        let sub2 = try #require(small.streamXid)
        #expect(sub2 != t1 && sub2 != sub)
        #expect(small.name == "small")
        #expect(smallInsert == .init(streamXid: sub2, relationID: small.id, newTuple: [.t("1")]))
        #expect(messages[index + 2] == .streamStop)
        guard case .streamCommit(let commit) = messages[index + 3] else { Issue.record("no stream commit"); return }
        #expect(commit.xid == t1 && commit.endLSN > commit.commitLSN)
        index += 4

        // T2 rolls back entirely: Stream Abort names the top-level xid twice.
        guard case .streamStart(let start2) = messages[index] else { Issue.record("no second txn"); return }
        let t2 = start2.xid
        #expect(start2.isFirstSegment && t2 != t1)
        index += 1
        #expect(messages[index] == .relation(.init(
            streamXid: t2, id: big.id, namespace: "public", name: "big", replicaIdentity: .default, columns: big.columns
        )))
        index += 1
        var t2Rows = 0
        while index < messages.count, case .insert(let insert) = messages[index] {
            t2Rows += 1
            #expect(insert == .init(streamXid: t2, relationID: big.id, newTuple: [.t(String(t2Rows))]))
            index += 1
        }
        #expect(t2Rows > 0 && t2Rows < 500)
        guard case .streamAbort(let abort) = messages[index + 1] else { Issue.record("no abort"); return }
        #expect(messages[index] == .streamStop)
        #expect(abort == .init(xid: t2, subtransactionXid: t2))
        #expect(abort.isTopLevel && abort.abortLSN == nil && abort.abortTimestamp == nil)
        index += 2

        // A small transaction afterwards is not streamed.
        #expect(tags(Array(messages[index...])) == "BIC")
        #expect(messages[index + 1] == .insert(.init(relationID: small.id, newTuple: [.t("2")])))
    }

    @Test func twoPhase() throws {
        let messages = try decoded("two_phase")
        #expect(tags(messages) == "bRIPKbIPr")
        guard case .beginPrepare(let begin1) = messages[0], case .relation(let item) = messages[1],
              case .prepare(let prepare1) = messages[3], case .commitPrepared(let commit) = messages[4],
              case .beginPrepare(let begin2) = messages[5], case .prepare(let prepare2) = messages[7],
              case .rollbackPrepared(let rollback) = messages[8]
        else { Issue.record("unexpected messages"); return }
        #expect(begin1.gid == "ferry-commit" && begin1 == prepare1)
        #expect(prepare1.endLSN > prepare1.prepareLSN)
        #expect(messages[2] == .insert(.init(relationID: item.id, newTuple: [.t("1")])))
        #expect(commit.gid == "ferry-commit" && commit.xid == prepare1.xid)
        #expect(commit.commitLSN >= prepare1.endLSN && commit.endLSN > commit.commitLSN)
        #expect(commit.commitTimestamp >= prepare1.prepareTimestamp)

        #expect(begin2.gid == "ferry-rollback" && begin2 == prepare2)
        #expect(messages[6] == .insert(.init(relationID: item.id, newTuple: [.t("2")])))
        #expect(rollback.gid == "ferry-rollback" && rollback.xid == prepare2.xid)
        #expect(rollback.prepareEndLSN == prepare2.endLSN)
        #expect(rollback.prepareTimestamp == prepare2.prepareTimestamp)
        #expect(rollback.rollbackEndLSN > rollback.prepareEndLSN)
        #expect(rollback.rollbackTimestamp >= rollback.prepareTimestamp)
    }

    @Test func streamedPrepare() throws {
        let messages = try decoded("stream_prepare")
        guard case .streamStart(let start) = messages[0], case .relation(let big) = messages[1] else {
            Issue.record("unexpected start"); return
        }
        #expect(start.isFirstSegment && big.streamXid == start.xid)
        var values: [String] = []
        var blocks = 0
        var index = 0
        while index < messages.count, case .streamStart(let block) = messages[index] {
            #expect(block.xid == start.xid && block.isFirstSegment == (blocks == 0))
            blocks += 1
            index += 1
            while index < messages.count, messages[index] != .streamStop {
                switch messages[index] {
                case .relation(let r): #expect(r.id == big.id)
                case .insert(let insert):
                    #expect(insert.streamXid == start.xid && insert.relationID == big.id)
                    values.append(insert.newTuple.values.first?.string ?? "?")
                default: Issue.record("unexpected \(messages[index].tag)")
                }
                index += 1
            }
            index += 1
        }
        #expect(blocks == 2)
        #expect(values == (1...500).map { String($0) })
        guard case .streamPrepare(let prepare) = messages[index], case .commitPrepared(let commit) = messages[index + 1]
        else { Issue.record("no stream prepare"); return }
        #expect(index + 2 == messages.count)
        #expect(prepare.gid == "ferry-streamed" && prepare.xid == start.xid)
        #expect(prepare.endLSN > prepare.prepareLSN)
        #expect(commit.gid == "ferry-streamed" && commit.xid == start.xid && commit.commitLSN >= prepare.endLSN)
    }

    @Test func fixtureHeadersRecordTheirSQL() throws {
        for fixture in try Fixture.loadAll() {
            #expect(fixture.comments.contains { $0.contains("pg_logical_slot_peek_binary_changes") }, "\(fixture)")
            #expect(fixture.comments.contains { $0.contains("Captured SQL") }, "\(fixture)")
        }
    }
}
