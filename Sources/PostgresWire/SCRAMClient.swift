import Crypto

/// The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677), as
/// PostgreSQL runs it inside `AuthenticationSASL*` / `SASL*Response` messages.
///
/// A pure state machine: it never touches a socket. The connection layer
/// 1. picks the mechanism from `Authentication.sasl(mechanisms:)` and the channel binding,
/// 2. sends ``mechanism`` + ``clientFirstMessage()`` in a `SASLInitialResponse`,
/// 3. feeds the `AuthenticationSASLContinue` data to ``handleServerFirst(_:)`` and sends the
///    result in a `SASLResponse`,
/// 4. feeds the `AuthenticationSASLFinal` data to ``verifyServerFinal(_:)`` and only then accepts
///    `AuthenticationOk` (otherwise a server that never knew the password could "authenticate").
///
/// PostgreSQL ignores the SCRAM user name (it uses the startup `user`); libpq sends an empty one,
/// which is this type's default.
///
/// Passwords are prepared with ``SASLprep`` as PostgreSQL does: ASCII passes unchanged; other
/// passwords are SASLprep'ed, and if that fails the raw UTF-8 bytes are used.
public struct SCRAMClient: Sendable {
    /// What the client says about channel binding in the GS2 header.
    public enum ChannelBinding: Sendable, Hashable {
        /// `n,,`: the client does not support channel binding (no TLS, or binding disabled).
        /// Mechanism `SCRAM-SHA-256`.
        case notSupportedByClient
        /// `y,,`: the client supports it but the server did not offer `SCRAM-SHA-256-PLUS`
        /// although TLS is in use. Mechanism `SCRAM-SHA-256`. A server that does support it
        /// then knows the offer was stripped (downgrade attack) and fails the exchange.
        case clientSupportsButServerDidNot
        /// `p=tls-server-end-point,,`: bind to the server certificate. Mechanism
        /// `SCRAM-SHA-256-PLUS`. The hash comes from ``tlsServerEndPointHash(certificateDER:signatureHash:)``.
        case tlsServerEndPoint(certificateHash: [UInt8])

        /// The GS2 header this choice sends.
        public var gs2Header: String {
            switch self {
            case .notSupportedByClient: "n,,"
            case .clientSupportsButServerDidNot: "y,,"
            case .tlsServerEndPoint: "p=tls-server-end-point,,"
            }
        }

        /// The SASL mechanism name to put in `SASLInitialResponse`.
        public var mechanism: String {
            switch self {
            case .notSupportedByClient, .clientSupportsButServerDidNot: SCRAMClient.mechanism
            case .tlsServerEndPoint: SCRAMClient.mechanismPlus
            }
        }

        /// The bytes whose base64 is the client-final-message's `c=` attribute:
        /// the GS2 header, followed by the certificate hash for `-PLUS`.
        public var channelBindingInput: [UInt8] {
            switch self {
            case .notSupportedByClient, .clientSupportsButServerDidNot:
                Array(gs2Header.utf8)
            case .tlsServerEndPoint(let hash):
                Array(gs2Header.utf8) + hash
            }
        }
    }

    public static let mechanism = "SCRAM-SHA-256"
    public static let mechanismPlus = "SCRAM-SHA-256-PLUS"
    /// Iteration counts the client accepts from a server. PostgreSQL's default is 4096; more than
    /// ten million would be a denial of service on the client.
    public static let acceptedIterationCounts: ClosedRange<Int> = 1...10_000_000

    enum State: Sendable {
        case initial
        case waitingForServerFirst(clientFirstBare: [UInt8])
        case waitingForServerFinal(serverSignature: [UInt8])
        case finished
        case failed
    }

    public let channelBinding: ChannelBinding
    private let username: String
    private let password: [UInt8]
    private let clientNonce: String
    private var state: State = .initial

    /// The mechanism name to send: `SCRAM-SHA-256` or `SCRAM-SHA-256-PLUS`.
    public var mechanism: String { channelBinding.mechanism }

    /// - Parameters:
    ///   - username: sent in `n=`; PostgreSQL ignores it (libpq sends it empty).
    ///   - password: prepared with ``SASLprep/prepare(_:)``.
    ///   - nonce: the client nonce: printable ASCII without `,`. Random by default; inject a fixed
    ///     one only in tests.
    public init(username: String = "", password: String, channelBinding: ChannelBinding,
                nonce: String = SCRAMClient.randomNonce()) {
        self.username = username
        self.password = SASLprep.prepare(password)
        self.channelBinding = channelBinding
        self.clientNonce = nonce
    }

    /// 18 random bytes from the system CSPRNG, base64-encoded (24 characters).
    public static func randomNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base64.encode((0..<18).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// The client-first-message: GS2 header + `n=<user>,r=<nonce>`.
    public mutating func clientFirstMessage() throws(SCRAMError) -> [UInt8] {
        guard case .initial = state else {
            throw fail(.unexpectedCall, "clientFirstMessage() called twice")
        }
        guard !clientNonce.isEmpty, clientNonce.utf8.allSatisfy(Self.isPrintable) else {
            throw fail(.invalidNonce, "the client nonce must be non-empty printable ASCII without ','")
        }
        let bare = Array("n=\(Self.saslName(username)),r=\(clientNonce)".utf8)
        state = .waitingForServerFirst(clientFirstBare: bare)
        return Array(channelBinding.gs2Header.utf8) + bare
    }

    /// Takes the server-first-message (`r=…,s=…,i=…`), returns the client-final-message.
    public mutating func handleServerFirst(_ message: some Collection<UInt8>) throws(SCRAMError) -> [UInt8] {
        guard case .waitingForServerFirst(let clientFirstBare) = state else {
            throw fail(.unexpectedCall, "handleServerFirst(_:) called out of order")
        }
        let serverFirst = Array(message)
        let attributes = Self.attributes(serverFirst)
        if let first = attributes.first, first.name == UInt8(ascii: "m") {
            throw fail(.malformedServerMessage, "the server requires an unsupported SCRAM extension")
        }
        if let first = attributes.first, first.name == UInt8(ascii: "e") {
            throw fail(.serverError, "the server rejected the exchange: \(String(decoding: first.value, as: UTF8.self))")
        }
        guard attributes.count >= 3,
              attributes[0].name == UInt8(ascii: "r"),
              attributes[1].name == UInt8(ascii: "s"),
              attributes[2].name == UInt8(ascii: "i")
        else {
            throw fail(.malformedServerMessage, "server-first-message is not r=…,s=…,i=…")
        }
        let nonce = attributes[0].value
        guard nonce.count > clientNonce.utf8.count,
              nonce.starts(with: clientNonce.utf8),
              nonce.allSatisfy(Self.isPrintable)
        else {
            throw fail(.nonceMismatch, "the server nonce does not extend the client nonce")
        }
        guard let salt = Base64.decode(attributes[1].value), !salt.isEmpty else {
            throw fail(.malformedServerMessage, "the salt is not valid base64")
        }
        let iterationText = attributes[2].value
        guard !iterationText.isEmpty, iterationText.count <= 10,
              iterationText.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let iterations = Int(String(decoding: iterationText, as: UTF8.self)),
              Self.acceptedIterationCounts.contains(iterations)
        else {
            throw fail(.iterationCountOutOfRange,
                       "iteration count '\(String(decoding: iterationText.prefix(12), as: UTF8.self))' is outside \(Self.acceptedIterationCounts)")
        }

        let saltedPassword = Self.hi(password: password, salt: salt, iterations: iterations)
        let clientKey = Self.hmac(key: saltedPassword, Array("Client Key".utf8))
        let storedKey = Array(SHA256.hash(data: clientKey))
        let withoutProof = Array("c=\(Base64.encode(channelBinding.channelBindingInput)),r=".utf8) + nonce
        let authMessage = clientFirstBare + [UInt8(ascii: ",")] + serverFirst + [UInt8(ascii: ",")] + withoutProof
        let clientSignature = Self.hmac(key: storedKey, authMessage)
        let proof = zip(clientKey, clientSignature).map { $0 ^ $1 }
        let serverKey = Self.hmac(key: saltedPassword, Array("Server Key".utf8))
        state = .waitingForServerFinal(serverSignature: Self.hmac(key: serverKey, authMessage))
        return withoutProof + Array(",p=\(Base64.encode(proof))".utf8)
    }

    /// Checks the server-final-message: `v=<server signature>` must match, `e=<error>` fails.
    public mutating func verifyServerFinal(_ message: some Collection<UInt8>) throws(SCRAMError) {
        guard case .waitingForServerFinal(let expected) = state else {
            throw fail(.unexpectedCall, "verifyServerFinal(_:) called out of order")
        }
        let attributes = Self.attributes(Array(message))
        guard let first = attributes.first else {
            throw fail(.malformedServerMessage, "empty server-final-message")
        }
        switch first.name {
        case UInt8(ascii: "e"):
            throw fail(.serverError, "the server rejected the exchange: \(String(decoding: first.value, as: UTF8.self))")
        case UInt8(ascii: "v"):
            guard let signature = Base64.decode(first.value) else {
                throw fail(.malformedServerMessage, "the server signature is not valid base64")
            }
            guard Self.constantTimeEquals(signature, expected) else {
                throw fail(.serverSignatureMismatch, "the server signature does not match: the server does not know the password, or the exchange was tampered with")
            }
            state = .finished
        default:
            throw fail(.malformedServerMessage, "server-final-message starts with neither v= nor e=")
        }
    }

    /// Whether the server's signature was verified.
    public var isAuthenticated: Bool {
        if case .finished = state { return true }
        return false
    }

    private mutating func fail(_ code: SCRAMError.Code, _ reason: String) -> SCRAMError {
        state = .failed
        return SCRAMError(code: code, reason: reason)
    }

    // MARK: Primitives

    static func isPrintable(_ byte: UInt8) -> Bool {
        byte >= 0x21 && byte <= 0x7E && byte != UInt8(ascii: ",")
    }

    /// RFC 5802 saslname: `=` → `=3D`, `,` → `=2C`.
    static func saslName(_ name: String) -> String {
        var result = ""
        for character in name.unicodeScalars {
            switch character {
            case "=": result += "=3D"
            case ",": result += "=2C"
            default: result.unicodeScalars.append(character)
            }
        }
        return result
    }

    /// Splits `a=value,b=value` into attributes (a value may itself contain `=`).
    static func attributes(_ message: [UInt8]) -> [(name: UInt8, value: ArraySlice<UInt8>)] {
        message.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { part in
            guard part.count >= 2, part[part.startIndex + 1] == UInt8(ascii: "=") else {
                return (0, part)
            }
            return (part[part.startIndex], part.dropFirst(2))
        }
    }

    static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }

    /// RFC 5802 `Hi()`: PBKDF2 with HMAC-SHA-256 and one output block.
    static func hi(password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        let keyed = HMAC<SHA256>(key: SymmetricKey(data: password))
        var mac = keyed
        mac.update(data: salt + [0, 0, 0, 1])
        var block = Array(mac.finalize())
        var result = block
        if iterations > 1 {
            for _ in 1..<iterations {
                var next = keyed
                next.update(data: block)
                next.finalize().withUnsafeBytes { digest in
                    for index in 0..<block.count {
                        block[index] = digest[index]
                        result[index] ^= digest[index]
                    }
                }
            }
        }
        return result
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

extension SCRAMClient {
    /// The `tls-server-end-point` channel binding data (RFC 5929 §4.1): the hash of the server's
    /// DER certificate, with SHA-256 when the certificate was signed with MD5 or SHA-1, and with
    /// the signature's own hash otherwise — as PostgreSQL computes it on its side.
    public static func tlsServerEndPointHash(certificateDER: some Sequence<UInt8>,
                                             signatureHash: CertificateSignatureHash) -> [UInt8] {
        let der = Array(certificateDER)
        switch signatureHash {
        case .md5, .sha1, .sha256: return Array(SHA256.hash(data: der))
        case .sha384: return Array(SHA384.hash(data: der))
        case .sha512: return Array(SHA512.hash(data: der))
        }
    }
}

/// The hash function in a certificate's signature algorithm, which picks the
/// `tls-server-end-point` hash (SHA-224 and hash-less algorithms such as Ed25519 are not
/// supported by PostgreSQL either).
public enum CertificateSignatureHash: Sendable, Hashable {
    case md5, sha1, sha256, sha384, sha512

    /// From the dotted OID of the certificate's `signatureAlgorithm` (RSA PKCS#1 v1.5, ECDSA,
    /// DSA). RSASSA-PSS (1.2.840.113549.1.1.10) keeps its hash in parameters, so it yields nil:
    /// read the hash from the parameters instead.
    public init?(signatureAlgorithmOID oid: String) {
        switch oid {
        case "1.2.840.113549.1.1.4": self = .md5          // md5WithRSAEncryption
        case "1.2.840.113549.1.1.5", "1.2.840.10045.4.1", "1.2.840.10040.4.3", "1.3.14.3.2.29":
            self = .sha1                                   // sha1WithRSA, ecdsa-with-SHA1, dsa-with-sha1
        case "1.2.840.113549.1.1.11", "1.2.840.10045.4.3.2", "2.16.840.1.101.3.4.3.2":
            self = .sha256                                 // sha256WithRSA, ecdsa-with-SHA256, dsa-with-sha256
        case "1.2.840.113549.1.1.12", "1.2.840.10045.4.3.3":
            self = .sha384
        case "1.2.840.113549.1.1.13", "1.2.840.10045.4.3.4":
            self = .sha512
        default:
            return nil
        }
    }
}

/// A SCRAM exchange that cannot go on.
public struct SCRAMError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: Sendable, Hashable {
            case unexpectedCall, invalidNonce, malformedServerMessage, nonceMismatch
            case iterationCountOutOfRange, serverError, serverSignatureMismatch
        }

        let base: Base
        private init(_ base: Base) { self.base = base }

        /// A method was called out of order (a bug in the caller).
        public static let unexpectedCall = Self(.unexpectedCall)
        /// The injected client nonce is empty or not printable ASCII without `,`.
        public static let invalidNonce = Self(.invalidNonce)
        /// The server's message does not follow RFC 5802.
        public static let malformedServerMessage = Self(.malformedServerMessage)
        /// The server nonce does not start with the client nonce.
        public static let nonceMismatch = Self(.nonceMismatch)
        /// The iteration count is not in ``SCRAMClient/acceptedIterationCounts``.
        public static let iterationCountOutOfRange = Self(.iterationCountOutOfRange)
        /// The server sent `e=…` (e.g. `channel-bindings-dont-match`, `invalid-proof`).
        public static let serverError = Self(.serverError)
        /// The server's signature is wrong: do not trust this server.
        public static let serverSignatureMismatch = Self(.serverSignatureMismatch)

        public var description: String {
            switch base {
            case .unexpectedCall: "unexpectedCall"
            case .invalidNonce: "invalidNonce"
            case .malformedServerMessage: "malformedServerMessage"
            case .nonceMismatch: "nonceMismatch"
            case .iterationCountOutOfRange: "iterationCountOutOfRange"
            case .serverError: "serverError"
            case .serverSignatureMismatch: "serverSignatureMismatch"
            }
        }
    }

    public var code: Code
    public var reason: String

    public init(code: Code, reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "SCRAM authentication failed (\(code)): \(reason)" }
}

/// The response to `AuthenticationMD5Password`.
public enum MD5Password {
    /// `"md5" + md5hex(md5hex(password + user) + salt)`, to send in a `PasswordMessage`.
    public static func response(user: String, password: String, salt: [UInt8]) -> String {
        let inner = hex(Insecure.MD5.hash(data: Array(password.utf8) + Array(user.utf8)))
        return "md5" + hex(Insecure.MD5.hash(data: Array(inner.utf8) + salt))
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var output: [UInt8] = []
        for byte in digest {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

extension SCRAMClient: CustomStringConvertible, CustomReflectable {
    /// Never shows the password.
    public var description: String { "SCRAMClient(mechanism: \(mechanism), authenticated: \(isAuthenticated))" }
    public var customMirror: Mirror {
        Mirror(self, children: ["mechanism": mechanism, "isAuthenticated": isAuthenticated], displayStyle: .struct)
    }
}
