import Testing
import PostgresWire

/// RFC 7677 §3 example exchange, and variants computed independently with Python's hashlib
/// (`hashlib.pbkdf2_hmac('sha256', …)`, `hmac`) for the channel-binding headers.
@Suite struct SCRAMTests {
    static let clientNonce = "rOprNGfwEbeRWgbNEkqO"
    static let serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"

    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test func rfc7677ExampleExactly() throws {
        var client = SCRAMClient(username: "user", password: "pencil", channelBinding: .notSupportedByClient, nonce: Self.clientNonce)
        #expect(client.mechanism == "SCRAM-SHA-256")
        #expect(text(try client.clientFirstMessage()) == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        let final = try client.handleServerFirst(Array(Self.serverFirst.utf8))
        #expect(text(final) == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        #expect(!client.isAuthenticated)
        try client.verifyServerFinal(Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8))
        #expect(client.isAuthenticated)
    }

    @Test func scramSHA256PlusBindsTheCertificateHash() throws {
        let certificate = (0..<200).map { UInt8($0) }
        let hash = SCRAMClient.tlsServerEndPointHash(certificateDER: certificate, signatureHash: .sha256)
        var client = SCRAMClient(password: "pencil", channelBinding: .tlsServerEndPoint(certificateHash: hash), nonce: Self.clientNonce)
        #expect(client.mechanism == "SCRAM-SHA-256-PLUS")
        #expect(text(try client.clientFirstMessage()) == "p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO")
        let final = text(try client.handleServerFirst(Array(Self.serverFirst.utf8)))
        // c= is base64("p=tls-server-end-point,," + hash).
        #expect(final == "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsGQHaHJ9pm0j2smNuZcv3Or+Z0EQe9n9cVApC9wUd7G8=,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=yPqKDdZkww5kvpcTuVG70SY6NYl2clB7NS4lKb3+qrg=")
        try client.verifyServerFinal(Array("v=Z93w1Esm97sGOQ1+BIqngM0HNbaPnm025diORUagyOo=".utf8))
        #expect(client.isAuthenticated)
    }

    @Test func clientSupportsButServerDidNotSendsY() throws {
        var client = SCRAMClient(password: "pencil", channelBinding: .clientSupportsButServerDidNot, nonce: Self.clientNonce)
        #expect(client.mechanism == "SCRAM-SHA-256")
        #expect(text(try client.clientFirstMessage()) == "y,,n=,r=rOprNGfwEbeRWgbNEkqO")
        let final = text(try client.handleServerFirst(Array(Self.serverFirst.utf8)))
        #expect(final == "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=VpuC5DGQa5ro9tXE9MnKs69NH1nxnuregZZcclqIGfM=")
        try client.verifyServerFinal(Array("v=FOmOj9BpTGwvnzwBtWQjBaPmVxT9I8IeHBOhcIPu3us=".utf8))
    }

    @Test func channelBindingInputs() {
        #expect(SCRAMClient.ChannelBinding.notSupportedByClient.gs2Header == "n,,")
        #expect(SCRAMClient.ChannelBinding.clientSupportsButServerDidNot.gs2Header == "y,,")
        #expect(SCRAMClient.ChannelBinding.tlsServerEndPoint(certificateHash: [1, 2]).channelBindingInput
            == Array("p=tls-server-end-point,,".utf8) + [1, 2])
    }

    @Test func usernameIsEscaped() throws {
        var client = SCRAMClient(username: "a=b,c", password: "p", channelBinding: .notSupportedByClient, nonce: "abc")
        #expect(text(try client.clientFirstMessage()) == "n,,n=a=3Db=2Cc,r=abc")
    }

    @Test func wrongServerSignatureIsRejected() throws {
        var client = SCRAMClient(username: "user", password: "pencil", channelBinding: .notSupportedByClient, nonce: Self.clientNonce)
        _ = try client.clientFirstMessage()
        _ = try client.handleServerFirst(Array(Self.serverFirst.utf8))
        #expect(throws: SCRAMError.self) {
            try client.verifyServerFinal(Array("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8))
        }
        #expect(!client.isAuthenticated)
        // The state machine is now failed: nothing more is accepted.
        #expect(throws: SCRAMError.self) {
            try client.verifyServerFinal(Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8))
        }
    }

    func serverFinalError(_ message: String) throws -> SCRAMError? {
        var client = SCRAMClient(username: "user", password: "pencil", channelBinding: .notSupportedByClient, nonce: Self.clientNonce)
        _ = try client.clientFirstMessage()
        _ = try client.handleServerFirst(Array(Self.serverFirst.utf8))
        do {
            try client.verifyServerFinal(Array(message.utf8))
            return nil
        } catch {
            return error
        }
    }

    @Test func serverFinalErrorsAreSurfaced() throws {
        let rejected = try #require(try serverFinalError("e=channel-bindings-dont-match"))
        #expect(rejected.code == .serverError)
        #expect(rejected.reason.contains("channel-bindings-dont-match"))
        #expect(try serverFinalError("v=!!!!")?.code == .malformedServerMessage)
        #expect(try serverFinalError("x=1")?.code == .malformedServerMessage)
        #expect(try serverFinalError("")?.code == .malformedServerMessage)
        #expect(try serverFinalError("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")  == nil)
    }

    func serverFirstError(_ message: String) throws -> SCRAMError? {
        var client = SCRAMClient(username: "user", password: "pencil", channelBinding: .notSupportedByClient, nonce: Self.clientNonce)
        _ = try client.clientFirstMessage()
        do {
            _ = try client.handleServerFirst(Array(message.utf8))
            return nil
        } catch {
            return error
        }
    }

    @Test func malformedServerFirstMessages() throws {
        let n = Self.clientNonce
        #expect(try serverFirstError("r=\(n)XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0")?.code == .iterationCountOutOfRange)
        #expect(try serverFirstError("r=\(n)XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001")?.code == .iterationCountOutOfRange)
        #expect(try serverFirstError("r=\(n)XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999")?.code == .iterationCountOutOfRange)
        #expect(try serverFirstError("r=\(n)XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1")?.code == .iterationCountOutOfRange)
        #expect(try serverFirstError("r=\(n)XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=abc")?.code == .iterationCountOutOfRange)
        #expect(try serverFirstError("r=\(n)XYZ,s=not base64,i=4096")?.code == .malformedServerMessage)
        #expect(try serverFirstError("r=\(n)XYZ,s=,i=4096")?.code == .malformedServerMessage)
        #expect(try serverFirstError("r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")?.code == .nonceMismatch)
        #expect(try serverFirstError("r=\(n),s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")?.code == .nonceMismatch)
        #expect(try serverFirstError("m=ext,r=\(n)XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")?.code == .malformedServerMessage)
        #expect(try serverFirstError("s=W22ZaJ0SNY7soEsUEjb6gQ==,r=\(n)XYZ,i=4096")?.code == .malformedServerMessage)
        #expect(try serverFirstError("e=other-error")?.code == .serverError)
        #expect(try serverFirstError("")?.code == .malformedServerMessage)
        #expect(try serverFirstError("garbage")?.code == .malformedServerMessage)
        // Extensions after i= are allowed.
        #expect(try serverFirstError("r=\(n)XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1,x=ext") == nil)
    }

    @Test func callsOutOfOrderAreErrors() throws {
        var client = SCRAMClient(password: "p", channelBinding: .notSupportedByClient)
        #expect(throws: SCRAMError.self) { try client.handleServerFirst(Array("r=x,s=AA==,i=1".utf8)) }
        var again = SCRAMClient(password: "p", channelBinding: .notSupportedByClient)
        _ = try again.clientFirstMessage()
        #expect(throws: SCRAMError.self) { try again.clientFirstMessage() }
        var early = SCRAMClient(password: "p", channelBinding: .notSupportedByClient)
        #expect(throws: SCRAMError.self) { try early.verifyServerFinal(Array("v=AA==".utf8)) }
    }

    @Test func invalidInjectedNonceIsRejected() {
        for nonce in ["", "a,b", "with space", "é"] {
            var client = SCRAMClient(password: "p", channelBinding: .notSupportedByClient, nonce: nonce)
            #expect(throws: SCRAMError.self) { try client.clientFirstMessage() }
        }
    }

    @Test func randomNoncesArePrintableAndDistinct() {
        let nonces = (0..<20).map { _ in SCRAMClient.randomNonce() }
        #expect(Set(nonces).count == 20)
        for nonce in nonces {
            #expect(nonce.utf8.count == 24)
            #expect(nonce.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") })
        }
    }
}

@Suite struct SASLprepTests {
    @Test func asciiPassesThroughByteForByte() {
        #expect(SASLprep.prepare("pencil") == Array("pencil".utf8))
        // Even ASCII control characters: PostgreSQL does not SASLprep pure ASCII.
        #expect(SASLprep.prepare("a\u{7}b\u{7F}") == [0x61, 0x07, 0x62, 0x7F])
    }

    @Test func mapsAndNormalizesNonASCII() {
        #expect(SASLprep.normalize("I\u{00AD}X") == "IX")          // soft hyphen maps to nothing
        #expect(SASLprep.normalize("\u{2168}") == "IX")            // ROMAN NUMERAL NINE, NFKC
        #expect(SASLprep.normalize("a\u{00A0}b") == "a b")         // non-ASCII space → space
        #expect(SASLprep.normalize("e\u{0301}") == "\u{00E9}")     // composed
        #expect(SASLprep.prepare("pâss") == Array("pâss".utf8))
    }

    @Test func prohibitedOutputFallsBackToTheRawBytes() {
        #expect(SASLprep.normalize("a\u{7}é") == nil)              // control character
        #expect(SASLprep.prepare("a\u{7}é") == Array("a\u{7}é".utf8))
        #expect(SASLprep.normalize("é\u{E000}") == nil)            // private use
        #expect(SASLprep.normalize("\u{00AD}") == nil)             // empty after mapping
        #expect(SASLprep.normalize("\u{0627}1") == nil)            // RandAL must also end the string
        #expect(SASLprep.normalize("\u{0627}a\u{0627}") == nil)    // RandAL mixed with L
        #expect(SASLprep.normalize("\u{0627}1\u{0628}") == "\u{0627}1\u{0628}")
    }

    @Test func scramUsesThePreparedPassword() throws {
        // Python: same exchange with the password "IX" (what SASLprep makes of "I\u00ADX").
        var client = SCRAMClient(password: "I\u{00AD}X", channelBinding: .notSupportedByClient, nonce: "abc")
        _ = try client.clientFirstMessage()
        let final = String(decoding: try client.handleServerFirst(Array("r=abcdef,s=QSXCR+Q6sek8bf92,i=4096".utf8)), as: UTF8.self)
        #expect(final == "c=biws,r=abcdef,p=1Kd2twyoaTDDg6bzNT/gV1JG1AFOIq2Jt2rXd/b1PHA=")
        try client.verifyServerFinal(Array("v=Z35JOOILC0jUGtL6o2DDU3cg9ZA2s3rQ1JQYCUWhdxo=".utf8))

        // Python: the raw UTF-8 bytes of "a\x07é", since SASLprep rejects it.
        var raw = SCRAMClient(password: "a\u{7}é", channelBinding: .notSupportedByClient, nonce: "abc")
        _ = try raw.clientFirstMessage()
        let rawFinal = String(decoding: try raw.handleServerFirst(Array("r=abcdef,s=QSXCR+Q6sek8bf92,i=4096".utf8)), as: UTF8.self)
        #expect(rawFinal == "c=biws,r=abcdef,p=DjaZKgWjVLMQohtVNCGRg80j+FuCoXZaMdXRZEu8tts=")
    }
}

@Suite struct ChannelBindingHashTests {
    let certificate = (0..<200).map { UInt8($0) }

    func hex(_ bytes: [UInt8]) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    @Test func md5AndSHA1CertificatesUseSHA256() {
        let expected = "1901da1c9f699b48f6b2636e65cbf73abf99d0441ef67f5c540a42f7051dec6f"
        for algorithm in [CertificateSignatureHash.md5, .sha1, .sha256] {
            #expect(hex(SCRAMClient.tlsServerEndPointHash(certificateDER: certificate, signatureHash: algorithm)) == expected)
        }
    }

    @Test func sha384AndSHA512UseTheirOwnHash() {
        let h384 = SCRAMClient.tlsServerEndPointHash(certificateDER: certificate, signatureHash: .sha384)
        let h512 = SCRAMClient.tlsServerEndPointHash(certificateDER: certificate, signatureHash: .sha512)
        #expect(h384.count == 48)
        #expect(h512.count == 64)
        #expect(hex(h384).hasPrefix("7ea4bb2534c67036f49de7beb5fe8a24"))
        #expect(hex(h512).hasPrefix("986058e9895e2c2ab8f9e8cbdf801db1"))
    }

    @Test func signatureAlgorithmOIDs() {
        #expect(CertificateSignatureHash(signatureAlgorithmOID: "1.2.840.113549.1.1.11") == .sha256)
        #expect(CertificateSignatureHash(signatureAlgorithmOID: "1.2.840.10045.4.3.3") == .sha384)
        #expect(CertificateSignatureHash(signatureAlgorithmOID: "1.2.840.113549.1.1.13") == .sha512)
        #expect(CertificateSignatureHash(signatureAlgorithmOID: "1.2.840.113549.1.1.5") == .sha1)
        #expect(CertificateSignatureHash(signatureAlgorithmOID: "1.2.840.113549.1.1.4") == .md5)
        #expect(CertificateSignatureHash(signatureAlgorithmOID: "1.3.101.112") == nil)          // Ed25519
        #expect(CertificateSignatureHash(signatureAlgorithmOID: "1.2.840.113549.1.1.10") == nil) // RSASSA-PSS
    }
}

@Suite struct MD5PasswordTests {
    // Computed with Python: "md5" + md5(md5(password + user).hexdigest() + salt).hexdigest().
    @Test func knownVectors() {
        #expect(MD5Password.response(user: "postgres", password: "secret", salt: [0x01, 0x02, 0x03, 0x04])
            == "md5bb41a296aab6baccb36ff243a562abff")
        #expect(MD5Password.response(user: "ferry", password: "pencil", salt: [0xDE, 0xAD, 0xBE, 0xEF])
            == "md57bff455f3a0c9a396268c1716e2dbaf1")
    }
}
