import Foundation
import NIOCore
import Testing
import PostgresWire

/// Golden bytes from the "Streaming Replication Protocol" page.
@Suite struct ReplicationMessageTests {
    static let xLogData: [UInt8] = [0x77]
        + [0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x48]   // walStart 16/B374D848
        + [0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD9, 0x00]   // walEnd   16/B374D900
        + [0x00, 0x02, 0xB0, 0xD5, 0xD4, 0xE9, 0x40, 0x00]   // sendTime 757382400000000 µs = 2024-01-01T00:00:00Z
        + [0x42, 0x01, 0x02, 0x03]                           // payload: a pgoutput Begin would start with 'B'

    @Test func decodesXLogData() throws {
        let message = try ReplicationMessage.decode(ByteBuffer(bytes: Self.xLogData))
        guard case .xLogData(let data) = message else {
            Issue.record("expected XLogData, got \(message)")
            return
        }
        #expect(data.walStart == LSN("16/B374D848"))
        #expect(data.walEnd == LSN("16/B374D900"))
        #expect(data.sendTime.rawValue == 757_382_400_000_000)
        #expect(data.sendTime.date == Date(timeIntervalSince1970: 1_704_067_200))
        #expect(Array(data.data.readableBytesView) == [0x42, 0x01, 0x02, 0x03])
    }

    @Test func xLogDataPayloadIsASliceNotACopy() throws {
        let buffer = ByteBuffer(bytes: Self.xLogData)
        let base = buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        guard case .xLogData(let data) = try ReplicationMessage.decode(buffer) else {
            Issue.record("expected XLogData")
            return
        }
        #expect(data.data.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == base + 25)
    }

    @Test func xLogDataMayBeEmpty() throws {
        let message = try ReplicationMessage.decode(ByteBuffer(bytes: Array(Self.xLogData.prefix(25))))
        guard case .xLogData(let data) = message else {
            Issue.record("expected XLogData")
            return
        }
        #expect(data.data.readableBytes == 0)
    }

    @Test func decodesPrimaryKeepalive() throws {
        let bytes: [UInt8] = [0x6B]
            + [0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]   // walEnd 0/1000000
            + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]   // sendTime -1 µs
            + [0x01]                                             // reply requested
        #expect(try ReplicationMessage.decode(ByteBuffer(bytes: bytes))
            == .primaryKeepalive(PrimaryKeepalive(walEnd: LSN("0/1000000")!, sendTime: PostgresTimestamp(rawValue: -1), replyRequested: true)))
        var quiet = bytes
        quiet[17] = 0
        #expect(try ReplicationMessage.decode(ByteBuffer(bytes: quiet))
            == .primaryKeepalive(PrimaryKeepalive(walEnd: LSN("0/1000000")!, sendTime: PostgresTimestamp(rawValue: -1), replyRequested: false)))
    }

    func error(_ bytes: [UInt8]) -> WireDecodingError? {
        do {
            _ = try ReplicationMessage.decode(ByteBuffer(bytes: bytes))
            return nil
        } catch {
            return error
        }
    }

    @Test func malformedFramesGiveTypedErrors() throws {
        let empty = try #require(error([]))
        #expect(empty.code == .truncated)
        let unknown = try #require(error([0x78, 1, 2]))
        #expect(unknown.code == .unknownReplicationMessage)
        #expect(unknown.messageType == 0x78)
        #expect(unknown.bytes == [0x78, 1, 2])
        let shortXLog = try #require(error(Array(Self.xLogData.prefix(20))))
        #expect(shortXLog.code == .truncated)
        #expect(shortXLog.offset == 17)
        #expect(shortXLog.messageType == 0x77)
        let shortKeepalive = try #require(error([0x6B, 0, 0, 0, 0, 0, 0, 0, 1]))
        #expect(shortKeepalive.code == .truncated)
        #expect(shortKeepalive.offset == 9)
        let longKeepalive = try #require(error([0x6B] + Array(repeating: 0, count: 17) + [0]))
        #expect(longKeepalive.code == .trailingBytes)
        let badFlag = try #require(error([0x6B] + Array(repeating: 0, count: 16) + [2]))
        #expect(badFlag.code == .invalidValue)
        #expect(badFlag.offset == 17)
    }

    @Test func everyTruncationOfAFrameIsAnError() {
        for length in 0..<25 {
            #expect(error(Array(Self.xLogData.prefix(length))) != nil, "length \(length)")
        }
    }

    @Test func throughTheBackendDecoder() throws {
        var buffer = ByteBuffer(bytes: [0x64, 0, 0, 0, UInt8(4 + Self.xLogData.count)] + Self.xLogData)
        var decoder = BackendMessageDecoder()
        guard case .copyData(let payload) = try decoder.next(from: &buffer),
              case .xLogData(let data) = try ReplicationMessage.decode(payload)
        else {
            Issue.record("expected CopyData carrying XLogData")
            return
        }
        #expect(data.walStart == LSN("16/B374D848"))
    }

    @Test func standbyStatusUpdateGoldenBytes() {
        let update = StandbyStatusUpdate(written: LSN("16/B374D900")!, flushed: LSN("16/B374D848")!, applied: LSN("0/0")!,
                                         clock: PostgresTimestamp(rawValue: 757_382_400_000_000), replyRequested: true)
        let payload: [UInt8] = [0x72]
            + [0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD9, 0x00]
            + [0x00, 0x00, 0x00, 0x16, 0xB3, 0x74, 0xD8, 0x48]
            + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
            + [0x00, 0x02, 0xB0, 0xD5, 0xD4, 0xE9, 0x40, 0x00]
            + [0x01]
        var buffer = ByteBuffer()
        update.encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == payload)
        #expect(payload.count == StandbyStatusUpdate.payloadLength)

        var framed = ByteBuffer()
        update.encodeAsCopyData(into: &framed)
        #expect(Array(framed.readableBytesView) == [0x64, 0x00, 0x00, 0x00, 38] + payload)

        // The same bytes as the generic CopyData encoder.
        var generic = ByteBuffer()
        FrontendMessage.encodeCopyData(ByteBuffer(bytes: payload), into: &generic)
        #expect(generic == framed)
    }

    @Test func noReplyRequestedByDefault() {
        var buffer = ByteBuffer()
        StandbyStatusUpdate(written: .invalid, flushed: .invalid, applied: .invalid, clock: .postgresEpoch).encode(into: &buffer)
        #expect(buffer.getInteger(at: 33, as: UInt8.self) == 0)
    }
}

@Suite struct PostgresTimestampTests {
    @Test func epochAndKnownDates() {
        #expect(PostgresTimestamp(Date(timeIntervalSince1970: 946_684_800)).rawValue == 0)
        #expect(PostgresTimestamp(Date(timeIntervalSince1970: 1_704_067_200)).rawValue == 757_382_400_000_000)
        #expect(PostgresTimestamp(Date(timeIntervalSince1970: 946_684_799.5)).rawValue == -500_000)
        #expect(PostgresTimestamp.postgresEpoch.date == Date(timeIntervalSince1970: 946_684_800))
        #expect(PostgresTimestamp(microsecondsSince1970: 1_704_067_200_000_000).rawValue == 757_382_400_000_000)
        #expect(PostgresTimestamp(rawValue: 757_382_400_000_000).microsecondsSince1970 == 1_704_067_200_000_000)
    }

    @Test func roundTripsToTheMicrosecond() {
        let timestamp = PostgresTimestamp(rawValue: 757_382_400_123_456)
        #expect(PostgresTimestamp(timestamp.date) == timestamp)
    }

    @Test func extremesSaturateInsteadOfTrapping() {
        #expect(PostgresTimestamp(Date(timeIntervalSince1970: 1e300)).rawValue == .max)
        #expect(PostgresTimestamp(Date(timeIntervalSince1970: -1e300)).rawValue == .min)
        #expect(PostgresTimestamp(Date(timeIntervalSince1970: .nan)).rawValue == 0)
        #expect(PostgresTimestamp(microsecondsSince1970: .min).rawValue == .min)
        #expect(PostgresTimestamp(rawValue: .max).microsecondsSince1970 == .max)
        _ = PostgresTimestamp(rawValue: .max).date
        _ = PostgresTimestamp(rawValue: .min).description
    }

    @Test func nowIsAfter2024() {
        #expect(PostgresTimestamp.now > PostgresTimestamp(rawValue: 757_382_400_000_000))
    }
}
