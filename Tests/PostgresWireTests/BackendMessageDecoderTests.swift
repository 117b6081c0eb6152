import NIOCore
import Testing
import PostgresWire

func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Decodes exactly one message from `bytes`, which must be consumed completely.
func decodeOne(_ bytes: [UInt8]) throws(WireDecodingError) -> BackendMessage? {
    var decoder = BackendMessageDecoder()
    var buffer = ByteBuffer(bytes: bytes)
    let message = try decoder.next(from: &buffer)
    if message != nil, buffer.readableBytes != 0 { return nil }
    return message
}

func decodingError(_ bytes: [UInt8], decoder: BackendMessageDecoder = BackendMessageDecoder()) -> WireDecodingError? {
    var decoder = decoder
    var buffer = ByteBuffer(bytes: bytes)
    let start = buffer.readerIndex
    do {
        _ = try decoder.next(from: &buffer)
        return nil
    } catch {
        // Nothing is consumed on error.
        #expect(buffer.readerIndex == start)
        return error
    }
}

/// Golden bytes written by hand from the protocol's "Message Formats" page.
@Suite struct BackendMessageGoldenTests {
    @Test func authenticationMessages() throws {
        #expect(try decodeOne([0x52, 0, 0, 0, 8, 0, 0, 0, 0]) == .authentication(.ok))
        #expect(try decodeOne([0x52, 0, 0, 0, 8, 0, 0, 0, 3]) == .authentication(.cleartextPassword))
        #expect(try decodeOne([0x52, 0, 0, 0, 12, 0, 0, 0, 5, 0xDE, 0xAD, 0xBE, 0xEF])
            == .authentication(.md5Password(salt: [0xDE, 0xAD, 0xBE, 0xEF])))
        // 4 + 4 + "SCRAM-SHA-256-PLUS\0" 19 + "SCRAM-SHA-256\0" 14 + 1 = 42
        #expect(try decodeOne([0x52, 0, 0, 0, 42, 0, 0, 0, 10] + ascii("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0") + [0])
            == .authentication(.sasl(mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])))
        #expect(try decodeOne([0x52, 0, 0, 0, 13, 0, 0, 0, 11] + ascii("r=abc"))
            == .authentication(.saslContinue(data: ascii("r=abc"))))
        #expect(try decodeOne([0x52, 0, 0, 0, 12, 0, 0, 0, 12] + ascii("v=xy"))
            == .authentication(.saslFinal(data: ascii("v=xy"))))
        #expect(try decodeOne([0x52, 0, 0, 0, 8, 0, 0, 0, 7]) == .authentication(.unsupported(code: 7)))
        #expect(try decodeOne([0x52, 0, 0, 0, 10, 0, 0, 0, 8, 1, 2]) == .authentication(.unsupported(code: 8)))
    }

    @Test func authenticationErrors() {
        // MD5 with a 3-byte salt.
        #expect(decodingError([0x52, 0, 0, 0, 11, 0, 0, 0, 5, 1, 2, 3])?.code == .truncated)
        // AuthenticationOk with trailing bytes.
        #expect(decodingError([0x52, 0, 0, 0, 9, 0, 0, 0, 0, 1])?.code == .trailingBytes)
        // SASL list without its final NUL.
        #expect(decodingError([0x52, 0, 0, 0, 12, 0, 0, 0, 10] + ascii("ABCD"))?.code == .truncated)
    }

    @Test func backendKeyData() throws {
        #expect(try decodeOne([0x4B, 0, 0, 0, 12, 0, 0, 0x30, 0x39, 1, 2, 3, 4])
            == .backendKeyData(BackendKeyData(processID: 12345, secretKey: [1, 2, 3, 4])))
        let longKey = (0..<32).map { UInt8($0) }
        #expect(try decodeOne([0x4B, 0, 0, 0, 40, 0, 0, 0, 7] + longKey)
            == .backendKeyData(BackendKeyData(processID: 7, secretKey: longKey)))
        let short = decodingError([0x4B, 0, 0, 0, 10, 0, 0, 0, 7, 1, 2])
        #expect(short?.code == .invalidValue)
        #expect(short?.offset == 9)
    }

    @Test func simpleMessages() throws {
        #expect(try decodeOne([0x31, 0, 0, 0, 4]) == .parseComplete)
        #expect(try decodeOne([0x32, 0, 0, 0, 4]) == .bindComplete)
        #expect(try decodeOne([0x33, 0, 0, 0, 4]) == .closeComplete)
        #expect(try decodeOne([0x6E, 0, 0, 0, 4]) == .noData)
        #expect(try decodeOne([0x49, 0, 0, 0, 4]) == .emptyQueryResponse)
        #expect(try decodeOne([0x73, 0, 0, 0, 4]) == .portalSuspended)
        #expect(try decodeOne([0x63, 0, 0, 0, 4]) == .copyDone)
        #expect(decodingError([0x31, 0, 0, 0, 5, 0])?.code == .trailingBytes)
    }

    @Test func commandCompleteAndParameterStatus() throws {
        #expect(try decodeOne([0x43, 0, 0, 0, 13] + ascii("SELECT 1\0")) == .commandComplete(tag: "SELECT 1"))
        #expect(try decodeOne([0x53, 0, 0, 0, 24] + ascii("server_version\0") + ascii("16.4\0"))
            == .parameterStatus(name: "server_version", value: "16.4"))
        #expect(decodingError([0x43, 0, 0, 0, 8] + ascii("SELE"))?.code == .truncated)
    }

    @Test func readyForQuery() throws {
        #expect(try decodeOne([0x5A, 0, 0, 0, 5, 0x49]) == .readyForQuery(.idle))
        #expect(try decodeOne([0x5A, 0, 0, 0, 5, 0x54]) == .readyForQuery(.inTransaction))
        #expect(try decodeOne([0x5A, 0, 0, 0, 5, 0x45]) == .readyForQuery(.failedTransaction))
        let bad = decodingError([0x5A, 0, 0, 0, 5, 0x58])
        #expect(bad?.code == .invalidValue)
        #expect(bad?.offset == 5)
        #expect(bad?.messageType == 0x5A)
    }

    @Test func rowDescription() throws {
        let field: [UInt8] = ascii("id\0")
            + [0, 0, 0x40, 0x01]    // table OID 16385
            + [0, 1]                // column 1
            + [0, 0, 0, 23]         // int4
            + [0, 4]                // size 4
            + [0xFF, 0xFF, 0xFF, 0xFF] // typmod -1
            + [0, 1]                // binary
        let body: [UInt8] = [0, 1] + field
        #expect(try decodeOne([0x54, 0, 0, 0, UInt8(4 + body.count)] + body) == .rowDescription([
            .init(name: "id", tableOID: 16385, columnAttributeNumber: 1, typeOID: 23, typeSize: 4, typeModifier: -1, format: .binary),
        ]))
        #expect(try decodeOne([0x54, 0, 0, 0, 6, 0, 0]) == .rowDescription([]))
        // A huge field count with no bytes behind it is a truncation, not an allocation.
        #expect(decodingError([0x54, 0, 0, 0, 6, 0x7F, 0xFF])?.code == .truncated)
        #expect(decodingError([0x54, 0, 0, 0, 6, 0xFF, 0xFF])?.code == .invalidValue)
        var badFormat = [UInt8]([0x54, 0, 0, 0, UInt8(4 + body.count)] + body)
        badFormat[badFormat.count - 1] = 2
        let error = decodingError(badFormat)
        #expect(error?.code == .invalidValue)
        #expect(error?.offset == badFormat.count - 2)
    }

    @Test func dataRow() throws {
        // 2 columns: "42" and NULL.
        let bytes: [UInt8] = [0x44, 0, 0, 0, 16, 0, 2, 0, 0, 0, 2, 0x34, 0x32, 0xFF, 0xFF, 0xFF, 0xFF]
        #expect(try decodeOne(bytes) == .dataRow(DataRow(columns: [ByteBuffer(bytes: [0x34, 0x32]), nil])))
        #expect(try decodeOne([0x44, 0, 0, 0, 6, 0, 0]) == .dataRow(DataRow(columns: [])))
        #expect(try decodeOne([0x44, 0, 0, 0, 10, 0, 1, 0, 0, 0, 0]) == .dataRow(DataRow(columns: [ByteBuffer()])))
    }

    @Test func dataRowErrorsAreLocatedAndCarryTheBytes() throws {
        // The column claims 100 bytes; only 2 follow.
        let bytes: [UInt8] = [0x44, 0, 0, 0, 12, 0, 1, 0, 0, 0, 100, 0x34, 0x32]
        let error = try #require(decodingError(bytes))
        #expect(error.code == .truncated)
        #expect(error.messageType == 0x44)
        #expect(error.offset == 11)
        #expect(error.bytes == bytes)
        #expect(error.description.contains("'D'"))
        #expect(error.description.contains("44 00 00 00 0c"))
        #expect(decodingError([0x44, 0, 0, 0, 10, 0, 1, 0xFF, 0xFF, 0xFF, 0xFE])?.code == .invalidValue)
        #expect(decodingError([0x44, 0, 0, 0, 6, 0x80, 0x00])?.code == .invalidValue)
    }

    @Test func errorBytesAreBoundedTo64() throws {
        let body: [UInt8] = [0, 1, 0, 0, 0x10, 0] + Array(repeating: 0x41, count: 200)
        let bytes: [UInt8] = [0x44, 0, 0, 0, UInt8(4 + body.count)] + body
        let error = try #require(decodingError(bytes))
        #expect(error.bytes.count == 64)
        #expect(error.bytes == Array(bytes.prefix(64)))
    }

    @Test func copyResponses() throws {
        #expect(try decodeOne([0x57, 0, 0, 0, 7, 0, 0, 0]) == .copyBothResponse(CopyResponse(format: .text, columnFormats: [])))
        #expect(try decodeOne([0x48, 0, 0, 0, 11, 1, 0, 2, 0, 1, 0, 1])
            == .copyOutResponse(CopyResponse(format: .binary, columnFormats: [.binary, .binary])))
        #expect(try decodeOne([0x47, 0, 0, 0, 9, 0, 0, 1, 0, 0]) == .copyInResponse(CopyResponse(format: .text, columnFormats: [.text])))
        #expect(decodingError([0x57, 0, 0, 0, 7, 2, 0, 0])?.code == .invalidValue)
        #expect(decodingError([0x57, 0, 0, 0, 7, 0, 0, 1])?.code == .truncated)
    }

    @Test func copyDataIsASliceOfTheReceiveBuffer() throws {
        var buffer = ByteBuffer(bytes: [0x64, 0, 0, 0, 7, 0x77, 0x01, 0x02])
        let base = buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        var decoder = BackendMessageDecoder()
        guard case .copyData(let payload) = try decoder.next(from: &buffer) else {
            Issue.record("expected CopyData")
            return
        }
        #expect(Array(payload.readableBytesView) == [0x77, 0x01, 0x02])
        let payloadBase = payload.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        #expect(payloadBase == base + 5)
        #expect(buffer.readableBytes == 0)
    }

    @Test func errorAndNoticeResponses() throws {
        let fields: [UInt8] = [0x53] + ascii("ERROR\0") + [0x56] + ascii("ERROR\0") + [0x43] + ascii("42P01\0")
            + [0x4D] + ascii("relation \"t\" does not exist\0") + [0x50] + ascii("15\0") + [0x46] + ascii("parse_relation.c\0")
            + [0x4C] + ascii("1449\0") + [0x52] + ascii("parserOpenTable\0") + [0x5A] + ascii("future\0") + [0]
        guard case .errorResponse(let decoded) = try decodeOne([0x45, 0, 0, 0, UInt8(4 + fields.count)] + fields) else {
            Issue.record("expected ErrorResponse")
            return
        }
        let error = PostgresServerError(fields: decoded)
        #expect(error.severity == "ERROR")
        #expect(error.sqlState == "42P01")
        #expect(error.message == "relation \"t\" does not exist")
        #expect(error.position == 15)
        #expect(error.file == "parse_relation.c")
        #expect(error.line == 1449)
        #expect(error.routine == "parserOpenTable")
        #expect(error.detail == nil)
        #expect(!error.isFatal)
        #expect(decoded[ServerMessageField(rawValue: 0x5A)] == "future")
        #expect(error.description == "ERROR: relation \"t\" does not exist (SQLSTATE 42P01)")

        let notice: [UInt8] = [0x53] + ascii("NOTICE\0") + [0x43] + ascii("00000\0") + [0x4D] + ascii("hi\0")
            + [0x44] + ascii("d\0") + [0x48] + ascii("h\0") + [0x57] + ascii("w\0") + [0x73] + ascii("public\0")
            + [0x74] + ascii("t\0") + [0x63] + ascii("c\0") + [0x64] + ascii("int4\0") + [0x6E] + ascii("pk\0") + [0]
        guard case .noticeResponse(let noticeFields) = try decodeOne([0x4E, 0, 0, 0, UInt8(4 + notice.count)] + notice) else {
            Issue.record("expected NoticeResponse")
            return
        }
        let parsed = PostgresServerError(fields: noticeFields)
        #expect(parsed.severity == "NOTICE")
        #expect(parsed.detail == "d")
        #expect(parsed.hint == "h")
        #expect(parsed.where == "w")
        #expect(parsed.schemaName == "public")
        #expect(parsed.tableName == "t")
        #expect(parsed.columnName == "c")
        #expect(parsed.dataTypeName == "int4")
        #expect(parsed.constraintName == "pk")
        #expect(parsed.description.contains("DETAIL: d"))
        #expect(parsed.description.contains("HINT: h"))

        // Fields without the terminating NUL.
        #expect(decodingError([0x45, 0, 0, 0, 9] + [0x53] + ascii("ERR\0"))?.code == .truncated)
        #expect(PostgresServerError(fields: [.localizedSeverity: "FATAL"]).isFatal)
    }

    @Test func otherMessages() throws {
        #expect(try decodeOne([0x41, 0, 0, 0, 17, 0, 0, 0, 9] + ascii("ch\0") + ascii("hello\0"))
            == .notificationResponse(NotificationResponse(processID: 9, channel: "ch", payload: "hello")))
        #expect(try decodeOne([0x74, 0, 0, 0, 14, 0, 2, 0, 0, 0, 23, 0, 0, 0, 25]) == .parameterDescription(typeOIDs: [23, 25]))
        #expect(try decodeOne([0x76, 0, 0, 0, 22, 0, 3, 0, 0, 0, 0, 0, 1] + ascii("_pq_.test\0"))
            == .negotiateProtocolVersion(NegotiateProtocolVersion(protocolVersion: .v3_0, unrecognizedOptions: ["_pq_.test"])))
        #expect(decodingError([0x76, 0, 0, 0, 12, 0, 3, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])?.code == .invalidValue)
        #expect(try decodeOne([0x56, 0, 0, 0, 8, 0xFF, 0xFF, 0xFF, 0xFF]) == .functionCallResponse(nil))
        #expect(try decodeOne([0x56, 0, 0, 0, 9, 0, 0, 0, 1, 7]) == .functionCallResponse(ByteBuffer(bytes: [7])))
    }

    @Test func invalidUTF8IsRepairedNotRejected() throws {
        #expect(try decodeOne([0x43, 0, 0, 0, 7, 0x41, 0xFF, 0]) == .commandComplete(tag: "A\u{FFFD}"))
    }
}

@Suite struct BackendMessageFramingTests {
    /// A stream of several kinds of message, as a server would send during a query and a copy.
    static let stream: [UInt8] = [0x52, 0, 0, 0, 8, 0, 0, 0, 0]
        + [0x53, 0, 0, 0, 24] + ascii("server_version\0") + ascii("16.4\0")
        + [0x4B, 0, 0, 0, 12, 0, 0, 0x30, 0x39, 1, 2, 3, 4]
        + [0x5A, 0, 0, 0, 5, 0x49]
        + [0x44, 0, 0, 0, 16, 0, 2, 0, 0, 0, 2, 0x34, 0x32, 0xFF, 0xFF, 0xFF, 0xFF]
        + [0x57, 0, 0, 0, 7, 0, 0, 0]
        + [0x64, 0, 0, 0, 7, 0x6B, 0x01, 0x02]
        + [0x64, 0, 0, 0, 4]
        + [0x63, 0, 0, 0, 4]
        + [0x43, 0, 0, 0, 13] + ascii("SELECT 1\0")
        + [0x5A, 0, 0, 0, 5, 0x49]

    static func decodeAll(_ bytes: [UInt8]) throws -> [BackendMessage] {
        var decoder = BackendMessageDecoder()
        var buffer = ByteBuffer(bytes: bytes)
        var messages: [BackendMessage] = []
        while let message = try decoder.next(from: &buffer) { messages.append(message) }
        #expect(buffer.readableBytes == 0)
        return messages
    }

    @Test func oneBigBufferYieldsEveryMessage() throws {
        let messages = try Self.decodeAll(Self.stream)
        #expect(messages.count == 11)
        #expect(messages.first == .authentication(.ok))
        #expect(messages[6] == .copyData(ByteBuffer(bytes: [0x6B, 0x01, 0x02])))
        #expect(messages[7] == .copyData(ByteBuffer()))
        #expect(messages.last == .readyForQuery(.idle))
    }

    @Test func dripFedByteByByteGivesTheSameResult() throws {
        let expected = try Self.decodeAll(Self.stream)
        var decoder = BackendMessageDecoder()
        var buffer = ByteBuffer()
        var messages: [BackendMessage] = []
        for byte in Self.stream {
            buffer.writeInteger(byte)
            while true {
                let before = buffer.readerIndex
                guard let message = try decoder.next(from: &buffer) else {
                    #expect(buffer.readerIndex == before, "a partial message must not be consumed")
                    break
                }
                messages.append(message)
            }
        }
        #expect(messages == expected)
        #expect(buffer.readableBytes == 0)
    }

    @Test(arguments: [2, 3, 7, 13, 64])
    func fedInChunksGivesTheSameResult(chunk: Int) throws {
        let expected = try Self.decodeAll(Self.stream)
        var decoder = BackendMessageDecoder()
        var buffer = ByteBuffer()
        var messages: [BackendMessage] = []
        var index = 0
        while index < Self.stream.count {
            buffer.writeBytes(Self.stream[index..<min(index + chunk, Self.stream.count)])
            index += chunk
            while let message = try decoder.next(from: &buffer) { messages.append(message) }
            buffer.discardReadBytes()
        }
        #expect(messages == expected)
    }

    @Test func manyMessagesInOneBuffer() throws {
        var bytes: [UInt8] = []
        for value in 0..<2000 {
            let text = ascii(String(value))
            bytes += [0x44, 0, 0, 0, UInt8(10 + text.count), 0, 1, 0, 0, 0, UInt8(text.count)] + text
        }
        bytes += [0x5A, 0, 0, 0, 5, 0x49]
        let messages = try Self.decodeAll(bytes)
        #expect(messages.count == 2001)
        #expect(messages[1999] == .dataRow(DataRow(columns: [ByteBuffer(bytes: ascii("1999"))])))
    }

    @Test func everyProperPrefixIsIncomplete() throws {
        for length in 0..<Self.stream.count where length < 9 {
            var decoder = BackendMessageDecoder()
            var buffer = ByteBuffer(bytes: Self.stream.prefix(length))
            #expect(try decoder.next(from: &buffer) == nil)
            #expect(buffer.readableBytes == length)
        }
    }
}

@Suite struct BackendMessageHostileInputTests {
    @Test func lengthBelowFourIsRejected() {
        for length: [UInt8] in [[0, 0, 0, 0], [0, 0, 0, 3], [0xFF, 0xFF, 0xFF, 0xFF], [0x80, 0, 0, 0]] {
            let error = decodingError([0x44] + length)
            #expect(error?.code == .invalidLength)
            #expect(error?.offset == 1)
        }
    }

    @Test func oversizeLengthsAreRejectedBeforeWaitingOrAllocating() {
        // 2 GiB - 1 CopyData: rejected from the 5-byte header alone, not "need more bytes".
        #expect(decodingError([0x64, 0x7F, 0xFF, 0xFF, 0xFF])?.code == .messageTooLarge)
        // A ReadyForQuery claiming 40 000 bytes is corrupt (short-message limit, like libpq).
        #expect(decodingError([0x5A, 0, 0, 0x9C, 0x40])?.code == .messageTooLarge)
        // A configurable limit.
        let small = BackendMessageDecoder(maximumMessageLength: 100)
        #expect(decodingError([0x44, 0, 0, 0, 101], decoder: small)?.code == .messageTooLarge)
        #expect(decodingError([0x44, 0, 0, 0, 100], decoder: small) == nil)
        #expect(small.maximumShortMessageLength == 100)
    }

    @Test func unknownTypeBytesAreRejectedAtOnce() {
        let error = decodingError([0x51])
        #expect(error?.code == .unknownMessageType)
        #expect(error?.messageType == 0x51)
        #expect(error?.offset == 0)
        #expect(decodingError([0x00, 0, 0, 0, 4])?.code == .unknownMessageType)
        #expect(decodingError([0x51, 0, 0, 0, 4])?.description.contains("'Q'") == true)
    }

    @Test func randomGarbageNeverTraps() {
        var generator = SplitMix64(seed: 0xF3_44_11)
        var errors = 0
        var incomplete = 0
        for _ in 0..<5000 {
            let length = Int(generator.next() % 40)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            // Bias toward plausible headers so the body decoders get exercised too.
            if !bytes.isEmpty, generator.next() % 2 == 0 {
                let types: [UInt8] = Array("RKCdcGHWDIEVvnNAtS1sZT23".utf8)
                bytes[0] = types[Int(generator.next() % UInt64(types.count))]
                if bytes.count >= 5 {
                    bytes[1] = 0
                    bytes[2] = 0
                    bytes[3] = 0
                    bytes[4] = UInt8(truncatingIfNeeded: 4 + generator.next() % UInt64(bytes.count))
                }
            }
            var decoder = BackendMessageDecoder()
            var buffer = ByteBuffer(bytes: bytes)
            do {
                while try decoder.next(from: &buffer) != nil {}
                incomplete += 1
            } catch {
                errors += 1
                #expect(error.bytes.count <= 64)
            }
        }
        #expect(errors + incomplete == 5000)
        #expect(errors > 0)
    }

    @Test func everyCorruptionOfAValidStreamIsHandled() {
        // Flip each byte of the stream in turn: an error, a message, or nil — never a trap.
        let stream = BackendMessageFramingTests.stream
        for index in stream.indices {
            for replacement: UInt8 in [0x00, 0xFF, 0x7F, 0x80] {
                var bytes = stream
                bytes[index] = replacement
                var decoder = BackendMessageDecoder()
                var buffer = ByteBuffer(bytes: bytes)
                do {
                    while try decoder.next(from: &buffer) != nil {}
                } catch {
                    #expect(error.offset >= 0)
                }
            }
        }
    }
}

/// A tiny deterministic PRNG for reproducible fuzz-style tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct BackendMessageProcessorTests {
    @Test func worksWithNIOSingleStepByteToMessageProcessor() throws {
        let processor = NIOSingleStepByteToMessageProcessor(BackendMessageDecoder())
        var messages: [BackendMessage] = []
        let stream = BackendMessageFramingTests.stream
        for chunk in stride(from: 0, to: stream.count, by: 5) {
            try processor.process(buffer: ByteBuffer(bytes: stream[chunk..<min(chunk + 5, stream.count)])) { messages.append($0) }
        }
        #expect(messages == (try BackendMessageFramingTests.decodeAll(stream)))
    }
}
