// Malformed input: every failure is a typed, located PGOutputDecodingError, never a trap.
import NIOCore
import PostgresWire
import Testing
@testable import PGOutput

@Suite struct PGOutputErrorTests {
    /// Decodes and returns the error, recording an issue if decoding succeeded.
    func failure(
        _ payload: ByteBuffer, version: Int = 4, parallel: Bool = false, streamXid: UInt32? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> PGOutputDecodingError? {
        var decoder = PGOutputDecoder(protocolVersion: version, parallelStreaming: parallel)
        if let streamXid {
            var start = bytes(.tag("S"), .u32(streamXid), .u8(1))
            _ = try? decoder.decode(&start)
        }
        let before = decoder.openStreamXid
        var copy = payload
        do {
            let message = try decoder.decode(&copy)
            Issue.record("decoded \(message)", sourceLocation: sourceLocation)
            return nil
        } catch {
            // On error nothing is consumed and the decoder state is unchanged.
            #expect(copy == payload, sourceLocation: sourceLocation)
            #expect(copy.readerIndex == payload.readerIndex, sourceLocation: sourceLocation)
            #expect(decoder.openStreamXid == before, sourceLocation: sourceLocation)
            #expect(error.offset >= 0 && error.offset <= payload.readableBytes, sourceLocation: sourceLocation)
            #expect(error.payloadLength == payload.readableBytes, sourceLocation: sourceLocation)
            #expect(error.bytes == Array(payload.readableBytesView.prefix(64)), sourceLocation: sourceLocation)
            #expect(error.messageTag == payload.readableBytesView.first, sourceLocation: sourceLocation)
            return error
        }
    }

    // MARK: Truncation and trailing bytes, over every fixture message

    @Test(arguments: Fixture.names)
    func everyPrefixOfEveryFixtureMessageFails(_ name: String) throws {
        let fixture = try Fixture.load(name)
        let allowed: Set<PGOutputDecodingError.Kind> = [
            .emptyPayload, .truncated, .unterminatedString, .invalidLength, .invalidCount,
        ]
        for (payload, decoder) in try fixture.messagesWithDecoderState() {
            for length in 0..<payload.readableBytes {
                var state = decoder
                var prefix = payload.getSlice(at: payload.readerIndex, length: length) ?? ByteBuffer()
                do {
                    let message = try state.decode(&prefix)
                    Issue.record("\(name): prefix \(length) of \(payload.readableBytes) decoded as \(message.tag)")
                } catch {
                    #expect(allowed.contains(error.kind), "\(name): prefix \(length): \(error)")
                    #expect(error.offset <= length)
                    #expect(state.openStreamXid == decoder.openStreamXid)
                    if length == 0 { #expect(error.kind == .emptyPayload && error.messageTag == nil) }
                }
            }
        }
    }

    @Test(arguments: Fixture.names)
    func trailingBytesAfterEveryFixtureMessageFail(_ name: String) throws {
        let fixture = try Fixture.load(name)
        for (payload, decoder) in try fixture.messagesWithDecoderState() {
            for extra in [[0x00], [0x4E], [0xFF, 0xFF, 0xFF, 0xFF]] as [[UInt8]] {
                var state = decoder
                var longer = payload
                longer.writeBytes(extra)
                do {
                    _ = try state.decode(&longer)
                    Issue.record("\(name): trailing bytes accepted")
                } catch {
                    #expect(error.kind == .trailingBytes, "\(name): \(error)")
                    #expect(error.offset == payload.readableBytes)
                }
            }
        }
    }

    // MARK: Counts and lengths from the network

    @Test func hugeTupleColumnCount() {
        let error = failure(bytes(.tag("I"), .u32(1), .tag("N"), .i16(.max), .tag("n")))
        #expect(error?.kind == .invalidCount)
        #expect(error?.offset == 6)
    }

    @Test func negativeTupleColumnCount() {
        #expect(failure(bytes(.tag("I"), .u32(1), .tag("N"), .i16(-1)))?.kind == .invalidCount)
        #expect(failure(bytes(.tag("I"), .u32(1), .tag("N"), .i16(.min)))?.kind == .invalidCount)
    }

    @Test func hugeAndNegativeValueLengths() {
        for length: Int32 in [.max, 5, -1, -2, .min] {
            let error = failure(bytes(.tag("I"), .u32(1), .tag("N"), .i16(1), .tag("t"), .i32(length), .raw([1, 2, 3, 4])))
            #expect(error?.kind == .invalidLength, "length \(length)")
            #expect(error?.offset == 9)
            let binary = failure(bytes(.tag("U"), .u32(1), .tag("N"), .i16(1), .tag("b"), .i32(length)))
            #expect(binary?.kind == .invalidLength, "length \(length)")
        }
    }

    @Test func hugeRelationColumnCount() {
        let error = failure(bytes(.tag("R"), .u32(1), .string("s"), .string("t"), .u8(UInt8(ascii: "d")), .i16(.max), .u8(0)))
        #expect(error?.kind == .invalidCount)
        #expect(error?.offset == 10)
        // 2 columns need at least 20 bytes; 19 are left.
        let short = failure(bytes(
            .tag("R"), .u32(1), .string("s"), .string("t"), .u8(UInt8(ascii: "d")), .i16(2), .raw(Array(repeating: 0, count: 19))
        ))
        #expect(short?.kind == .invalidCount)
        #expect(failure(bytes(.tag("R"), .u32(1), .string("s"), .string("t"), .u8(UInt8(ascii: "d")), .i16(-3)))?.kind == .invalidCount)
    }

    @Test func hugeTruncateRelationCount() {
        for count: Int32 in [.max, -1, .min, 3] {
            let error = failure(bytes(.tag("T"), .i32(count), .u8(0), .u32(1), .u32(2)))
            #expect(error?.kind == .invalidCount, "count \(count)")
            #expect(error?.offset == 1)
        }
    }

    @Test func hugeMessageContentLength() {
        let error = failure(bytes(.tag("M"), .u8(1), .u64(1), .string("p"), .i32(.max), .raw([1])))
        #expect(error?.kind == .invalidLength)
        #expect(error?.offset == 12)
        #expect(failure(bytes(.tag("M"), .u8(1), .u64(1), .string("p"), .i32(-1)))?.kind == .invalidLength)
    }

    // MARK: Bytes PostgreSQL never sends

    @Test func emptyPayload() {
        let error = failure(ByteBuffer())
        #expect(error?.kind == .emptyPayload && error?.offset == 0 && error?.bytes == [])
    }

    @Test(arguments: [UInt8(0), 0x61, 0x5A, 0x6E, 0x4E, 0xFF])
    func unknownTags(_ tag: UInt8) {
        let error = failure(bytes(.u8(tag), .u32(1)))
        #expect(error?.kind == .unknownMessageTag && error?.offset == 0 && error?.messageTag == tag)
    }

    @Test func unterminatedStrings() {
        #expect(failure(bytes(.tag("O"), .u64(1), .raw(Array("origin".utf8))))?.kind == .unterminatedString)
        #expect(failure(bytes(.tag("Y"), .u32(1), .string("ns"), .raw([0x41])))?.kind == .unterminatedString)
        let error = failure(bytes(.tag("b"), .u64(1), .u64(2), .i64(3), .u32(4), .raw(Array("gid".utf8))))
        #expect(error?.kind == .unterminatedString && error?.offset == 29)
    }

    @Test func nonZeroUnusedFlags() {
        let commit = failure(bytes(.tag("C"), .u8(1), .u64(1), .u64(2), .i64(3)))
        #expect(commit?.kind == .invalidFlags && commit?.offset == 1)
        for tag: Character in ["P", "p", "K", "r"] {
            #expect(failure(bytes(.tag(tag), .u8(2), .raw(Array(repeating: 0, count: 40))))?.kind == .invalidFlags)
        }
        #expect(failure(bytes(.tag("c"), .u32(1), .u8(1), .u64(1), .u64(2), .i64(3)))?.kind == .invalidFlags)
        #expect(failure(bytes(.tag("M"), .u8(2), .u64(1), .string("p"), .i32(0)))?.kind == .invalidFlags)
        #expect(failure(bytes(.tag("T"), .i32(0), .u8(4)))?.kind == .invalidFlags)
        let column = failure(bytes(.tag("R"), .u32(1), .string(""), .string("t"), .u8(UInt8(ascii: "d")), .i16(1),
                                   .u8(2), .string("c"), .u32(23), .i32(-1)))
        #expect(column?.kind == .invalidFlags && column?.offset == 11)
    }

    @Test func invalidEnumeratedValues() {
        let identity = failure(bytes(.tag("R"), .u32(1), .string(""), .string("t"), .u8(UInt8(ascii: "x")), .i16(0)))
        #expect(identity?.kind == .invalidValue && identity?.offset == 8)
        let segment = failure(bytes(.tag("S"), .u32(1), .u8(2)))
        #expect(segment?.kind == .invalidValue && segment?.offset == 5)
    }

    @Test func invalidTupleMarkers() {
        #expect(failure(bytes(.tag("I"), .u32(1), .tag("K"), .i16(0)))?.kind == .invalidTupleMarker)
        #expect(failure(bytes(.tag("U"), .u32(1), .tag("X"), .i16(0)))?.kind == .invalidTupleMarker)
        // After an old tuple only N may follow.
        let update = failure(bytes(.tag("U"), .u32(1), .tag("K"), .i16(0), .tag("K"), .i16(0)))
        #expect(update?.kind == .invalidTupleMarker && update?.offset == 8)
        #expect(failure(bytes(.tag("D"), .u32(1), .tag("N"), .i16(0)))?.kind == .invalidTupleMarker)
    }

    @Test func invalidColumnKind() {
        let error = failure(bytes(.tag("I"), .u32(1), .tag("N"), .i16(2), .tag("n"), .tag("x")))
        #expect(error?.kind == .invalidColumnKind && error?.offset == 9)
    }

    // MARK: Protocol version and stream state

    @Test func messagesAboveTheNegotiatedVersion() {
        let streaming: [ByteBuffer] = [
            bytes(.tag("S"), .u32(1), .u8(1)), bytes(.tag("c"), .u32(1), .u8(0), .u64(1), .u64(2), .i64(3)),
            bytes(.tag("A"), .u32(1), .u32(1)),
        ]
        for payload in streaming {
            #expect(failure(payload, version: 1)?.kind == .unsupportedByProtocolVersion)
        }
        let gid = bytes(.u64(1), .u64(2), .i64(3), .u32(4), .string("g"))
        let twoPhase: [ByteBuffer] = [
            bytes(.tag("b"), .raw(gid.bytes)), bytes(.tag("P"), .u8(0), .raw(gid.bytes)),
            bytes(.tag("p"), .u8(0), .raw(gid.bytes)), bytes(.tag("K"), .u8(0), .raw(gid.bytes)),
            bytes(.tag("r"), .u8(0), .u64(1), .u64(2), .i64(3), .i64(4), .u32(5), .string("g")),
        ]
        for payload in twoPhase {
            #expect(failure(payload, version: 2)?.kind == .unsupportedByProtocolVersion)
            var decoder = PGOutputDecoder(protocolVersion: 3)
            var copy = payload
            #expect(throws: Never.self) { try decoder.decode(&copy) }
        }
    }

    @Test func streamBoundariesMustNest() {
        let stop = failure(bytes(.tag("E")))
        #expect(stop?.kind == .unexpectedStreamBoundary)
        let nested = failure(bytes(.tag("S"), .u32(2), .u8(1)), streamXid: 1)
        #expect(nested?.kind == .unexpectedStreamBoundary)
        // Inside a block the xid is mandatory: a plain insert is misread and rejected.
        #expect(failure(bytes(.tag("I"), .u32(1), .tag("N"), .i16(0)), streamXid: 1)?.kind == .truncated)
    }

    @Test func failedDecodeKeepsStreamState() throws {
        var decoder = PGOutputDecoder(protocolVersion: 2)
        var start = bytes(.tag("S"), .u32(9), .u8(1))
        _ = try decoder.decode(&start)
        var badStop = bytes(.tag("E"), .u8(0))
        #expect(throws: PGOutputDecodingError.self) { try decoder.decode(&badStop) }
        #expect(decoder.openStreamXid == 9)
        var stop = bytes(.tag("E"))
        _ = try decoder.decode(&stop)
        #expect(decoder.openStreamXid == nil)
    }

    // MARK: Error presentation

    @Test func descriptionHidesPayloadBytes() {
        let secret = Array("s3cr3t-row-value".utf8)
        let error = failure(bytes(.tag("I"), .u32(1), .tag("N"), .i16(1), .tag("t"), .i32(99), .raw(secret)))
        let text = error.map { String(describing: $0) } ?? ""
        #expect(text.contains("invalid length") && text.contains("'I'") && text.contains("byte 9"))
        #expect(!text.contains("s3cr3t") && !text.contains("733363723374"))
        let debug = error.map { String(reflecting: $0) } ?? ""
        #expect(debug.contains("733363723374"))  // hex of "s3cr3t"
        #expect(debug.contains("text column value"))
    }

    @Test func copiedBytesAreBounded() {
        let big = bytes(.tag("I"), .u32(1), .tag("N"), .i16(1), .tag("q"), .raw(Array(repeating: 7, count: 100_000)))
        let error = failure(big)
        #expect(error?.kind == .invalidColumnKind)
        #expect(error?.bytes.count == PGOutputDecodingError.maximumCopiedBytes)
        #expect(error?.payloadLength == big.readableBytes)
    }
}
