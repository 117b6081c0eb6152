import NIOCore
import Testing
import PostgresWire

/// Golden bytes written by hand from the protocol's "Message Formats" page.
@Suite struct FrontendMessageTests {
    func encoded(_ message: FrontendMessage) throws -> [UInt8] {
        var buffer = ByteBuffer()
        try message.encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func sslRequest() throws {
        // Int32(8), Int32(80877103) = 0x04D2162F
        #expect(try encoded(.sslRequest) == [0x00, 0x00, 0x00, 0x08, 0x04, 0xD2, 0x16, 0x2F])
    }

    @Test func startupMessage() throws {
        let startup = StartupMessage(user: "ferry", database: "app", replication: "database")
        // 4 (length) + 4 (version) + "user\0ferry\0" 11 + "database\0app\0" 13
        // + "replication\0database\0" 21 + "client_encoding\0UTF8\0" 21 + final NUL 1 = 75
        let expected: [UInt8] = [0x00, 0x00, 0x00, 75, 0x00, 0x03, 0x00, 0x00]
            + ascii("user\0ferry\0") + ascii("database\0app\0") + ascii("replication\0database\0")
            + ascii("client_encoding\0UTF8\0") + [0x00]
        #expect(try encoded(.startup(startup)) == expected)
    }

    @Test func startupParameterOrderAndProtocolVersion() throws {
        let startup = StartupMessage(user: "u", database: nil, applicationName: "ferry", options: "-c x=1", clientEncoding: nil,
                                     additional: [.init("DateStyle", "ISO")], protocolVersion: .v3_2)
        #expect(startup.parameters.map(\.name) == ["user", "application_name", "options", "DateStyle"])
        let bytes = try encoded(.startup(startup))
        #expect(Array(bytes[4..<8]) == [0x00, 0x03, 0x00, 0x02])
        #expect(ProtocolVersion.v3_0.rawValue == 196_608)
        #expect(ProtocolVersion(rawValue: 196_610) == .v3_2)
    }

    @Test func passwordMessage() throws {
        #expect(try encoded(.password("md5abc")) == [0x70, 0x00, 0x00, 0x00, 0x0B] + ascii("md5abc\0"))
    }

    @Test func saslInitialResponse() throws {
        let data = ascii("n,,n=,r=abc")
        // 'p', length 4 + 14 ("SCRAM-SHA-256\0") + 4 + 11 = 33
        #expect(try encoded(.saslInitialResponse(mechanism: "SCRAM-SHA-256", initialResponse: data))
            == [0x70, 0x00, 0x00, 0x00, 33] + ascii("SCRAM-SHA-256\0") + [0x00, 0x00, 0x00, 11] + data)
        #expect(try encoded(.saslInitialResponse(mechanism: "X", initialResponse: nil))
            == [0x70, 0x00, 0x00, 0x00, 10, 0x58, 0x00, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(try encoded(.saslInitialResponse(mechanism: "X", initialResponse: []))
            == [0x70, 0x00, 0x00, 0x00, 10, 0x58, 0x00, 0x00, 0x00, 0x00, 0x00])
    }

    @Test func saslResponse() throws {
        #expect(try encoded(.saslResponse([1, 2, 3])) == [0x70, 0x00, 0x00, 0x00, 0x07, 1, 2, 3])
    }

    @Test func query() throws {
        #expect(try encoded(.query("SELECT 1")) == [0x51, 0x00, 0x00, 0x00, 0x0D] + ascii("SELECT 1\0"))
    }

    @Test func copyMessages() throws {
        #expect(try encoded(.copyData(ByteBuffer(bytes: [9, 8, 7]))) == [0x64, 0x00, 0x00, 0x00, 0x07, 9, 8, 7])
        #expect(try encoded(.copyDone) == [0x63, 0x00, 0x00, 0x00, 0x04])
        #expect(try encoded(.copyFail(message: "no")) == [0x66, 0x00, 0x00, 0x00, 0x07] + ascii("no\0"))
        var buffer = ByteBuffer()
        FrontendMessage.encodeCopyData(ByteBuffer(bytes: [1]), into: &buffer)
        FrontendMessage.encodeCopyDone(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0x64, 0x00, 0x00, 0x00, 0x05, 1, 0x63, 0x00, 0x00, 0x00, 0x04])
    }

    @Test func emptyMessages() throws {
        #expect(try encoded(.sync) == [0x53, 0x00, 0x00, 0x00, 0x04])
        #expect(try encoded(.flush) == [0x48, 0x00, 0x00, 0x00, 0x04])
        #expect(try encoded(.terminate) == [0x58, 0x00, 0x00, 0x00, 0x04])
    }

    @Test func cancelRequest() throws {
        // Int32(16), Int32(80877102) = 0x04D2162E, pid, 4-byte key
        #expect(try encoded(.cancelRequest(BackendKeyData(processID: 0x0102_0304, secretKey: [0xA, 0xB, 0xC, 0xD])))
            == [0x00, 0x00, 0x00, 0x10, 0x04, 0xD2, 0x16, 0x2E, 0x01, 0x02, 0x03, 0x04, 0x0A, 0x0B, 0x0C, 0x0D])
        #expect(throws: WireEncodingError.self) {
            try encoded(.cancelRequest(BackendKeyData(processID: 1, secretKey: [1])))
        }
    }

    @Test func extendedQueryMessages() throws {
        // 'P', length 4 + "s1\0" 3 + "SELECT $1\0" 10 + Int16(1) 2 + Int32(23) 4 = 23
        #expect(try encoded(.parse(statement: "s1", query: "SELECT $1", parameterTypes: [23]))
            == [0x50, 0x00, 0x00, 0x00, 23] + ascii("s1\0SELECT $1\0") + [0x00, 0x01, 0x00, 0x00, 0x00, 23])
        // 'B', length 4 + "\0" + "s1\0" + Int16(0) formats + Int16(2) + (Int32(2) "ab") + Int32(-1) + Int16(0) = 24
        #expect(try encoded(.bind(portal: "", statement: "s1", parameters: ["ab", nil]))
            == [0x42, 0x00, 0x00, 0x00, 24, 0x00] + ascii("s1\0") + [0x00, 0x00, 0x00, 0x02]
                + [0x00, 0x00, 0x00, 0x02] + ascii("ab") + [0xFF, 0xFF, 0xFF, 0xFF] + [0x00, 0x00])
        // A parameter's length counts UTF-8 bytes.
        #expect(try encoded(.bind(portal: "", statement: "", parameters: ["é"]))
            == [0x42, 0x00, 0x00, 0x00, 18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0xC3, 0xA9, 0x00, 0x00])
        #expect(try encoded(.execute(portal: "", maxRows: 0)) == [0x45, 0x00, 0x00, 0x00, 9, 0x00, 0x00, 0x00, 0x00, 0x00])
        #expect(throws: WireEncodingError.self) { try encoded(.parse(statement: "a\0b", query: "SELECT 1", parameterTypes: [])) }
        // Counts travel in 16 bits: one parameter too many is refused, not wrapped around.
        #expect(throws: WireEncodingError.self) { try encoded(.bind(portal: "", statement: "", parameters: Array(repeating: nil, count: 65_536))) }
        #expect(try encoded(.bind(portal: "", statement: "", parameters: Array(repeating: nil, count: 65_535))).count == 1 + 4 + 1 + 1 + 2 + 2 + 65_535 * 4 + 2)
        // Parameter values are not printed (they are the rows' data).
        #expect("\(FrontendMessage.bind(portal: "", statement: "s1", parameters: ["secret"]))" == "Bind(unnamed, s1, 1 parameters)")
    }

    @Test func nulInAStringIsRejectedAndNothingIsWritten() {
        var buffer = ByteBuffer(bytes: [0xAA])
        #expect(throws: WireEncodingError.self) { try FrontendMessage.query("SELECT '\0'").encode(into: &buffer) }
        #expect(Array(buffer.readableBytesView) == [0xAA])
        do {
            try FrontendMessage.password("hunter\0two").encode(into: &buffer)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .nulInString)
            #expect(error.field == "password")
            #expect(!error.description.contains("hunter"))
        }
        #expect(throws: WireEncodingError.self) {
            try FrontendMessage.startup(StartupMessage(user: "u\0", database: nil)).encode(into: &buffer)
        }
        #expect(Array(buffer.readableBytesView) == [0xAA])
    }

    @Test func messagesAppendToExistingBytes() throws {
        var buffer = ByteBuffer()
        try FrontendMessage.sync.encode(into: &buffer)
        try FrontendMessage.query("x").encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0x53, 0, 0, 0, 4, 0x51, 0, 0, 0, 6, 0x78, 0])
    }
}

@Suite struct SecretRedactionTests {
    @Test func secretsNeverPrint() {
        var dumped = ""
        let messages: [FrontendMessage] = [
            .password("hunter2"),
            .saslInitialResponse(mechanism: "SCRAM-SHA-256", initialResponse: Array("hunter2".utf8)),
            .saslResponse(Array("hunter2".utf8)),
        ]
        for message in messages {
            #expect(!"\(message)".contains("hunter2"))
            #expect(!String(reflecting: message).contains("hunter2"))
            dump(message, to: &dumped)
        }
        let client = SCRAMClient(password: "hunter2", channelBinding: .notSupportedByClient)
        #expect(!"\(client)".contains("hunter2"))
        dump(client, to: &dumped)
        let file = PasswordFile(contents: "h:1:d:u:hunter2")
        #expect("\(file)" == #"PasswordFile(["h:1:d:u:****"])"#)
        dump(file, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        #expect(!dumped.contains("104, 117, 110")) // the password's bytes
    }
}
