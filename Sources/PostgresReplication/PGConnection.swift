import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresWire

/// One connection to PostgreSQL speaking the simple query protocol, COPY and, with
/// `replication=database`, the logical replication commands.
///
/// A connection serves one task at a time (it is deliberately not `Sendable`). Messages
/// from the server are held in a buffer bounded in bytes: while the caller is slow, the
/// connection stops reading the socket and TCP pushes back on the server.
public final class PGConnection {
    public let configuration: ConnectionConfiguration
    /// The endpoint this connection reached (the first that answered, as libpq does).
    public let endpoint: ConnectionConfiguration.Endpoint
    public let isReplication: Bool
    public private(set) var isTLS: Bool
    /// The authentication method the server asked for (for tests and `ferry check`).
    public private(set) var authenticationMethod: AuthenticationMethod = .trust
    public internal(set) var parameters: [String: String] = [:]
    public private(set) var backendKeyData: BackendKeyData?

    let channel: any Channel
    let handler: NIOLoopBound<PGChannelHandler>
    let inbound: InboundBuffer<BackendMessage>
    let logger: Logger
    private var batch = CircularBuffer<BackendMessage>()
    public private(set) var isBroken = false
    /// Usable for the next exchange: not broken, and the socket still open (a server that
    /// closed an idle session, or restarted, is seen here before anything is sent).
    public var isOpen: Bool { !isBroken && channel.isActive }
    /// Statements this connection prepared by name (``extendedQuery(_:parameters:prepareAs:)``).
    public internal(set) var preparedStatements: Set<String> = []

    public enum AuthenticationMethod: String, Sendable {
        case trust, cleartext, md5, scramSHA256 = "SCRAM-SHA-256", scramSHA256Plus = "SCRAM-SHA-256-PLUS"
    }

    /// Bytes of server messages held for the caller before reading stops (per connection).
    public static let defaultReceiveBufferLimit = 4 << 20

    private init(configuration: ConnectionConfiguration, endpoint: ConnectionConfiguration.Endpoint, isReplication: Bool,
                 isTLS: Bool, channel: any Channel, handler: NIOLoopBound<PGChannelHandler>,
                 inbound: InboundBuffer<BackendMessage>, logger: Logger) {
        self.configuration = configuration
        self.endpoint = endpoint
        self.isReplication = isReplication
        self.isTLS = isTLS
        self.channel = channel
        self.handler = handler
        self.inbound = inbound
        self.logger = logger
    }

    /// The server version as `server_version_num` would give it (e.g. 150018), from the
    /// `server_version` parameter reported at startup.
    public var serverVersionNumber: Int {
        guard let text = parameters["server_version"] else { return 0 }
        let numbers = text.prefix(while: { $0.isNumber || $0 == "." }).split(separator: ".").compactMap { Int($0) }
        guard let major = numbers.first else { return 0 }
        if major >= 10 { return major * 10_000 + (numbers.count > 1 ? numbers[1] : 0) }
        return major * 10_000 + (numbers.count > 1 ? numbers[1] * 100 : 0) + (numbers.count > 2 ? numbers[2] : 0)
    }

    // MARK: Connecting

    /// Connects like libpq: each endpoint in turn, TLS as `sslmode` says, then authentication.
    ///
    /// - Parameter replication: overrides the configuration's `replication` setting
    ///   (`.database` for a logical walsender, `nil` for a normal backend).
    public static func connect(
        _ configuration: ConnectionConfiguration,
        replication: ConnectionConfiguration.ReplicationMode?? = .none,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        receiveBufferLimit: Int = defaultReceiveBufferLimit,
        logger: Logger = Logger(label: "ferry.postgres")
    ) async throws -> PGConnection {
        let replicationMode: ConnectionConfiguration.ReplicationMode? = replication ?? configuration.replication
        var failures: [PGConnectionError] = []
        for endpoint in configuration.endpoints {
            do {
                return try await connect(configuration, endpoint: endpoint, replication: replicationMode,
                                         eventLoopGroup: eventLoopGroup, receiveBufferLimit: receiveBufferLimit, logger: logger)
            } catch let error as PGConnectionError {
                // Wrong passwords and refusals are answers, not unreachable hosts: stop there.
                switch error.code {
                case .hostUnreachable, .connectTimeout, .connectionClosed:
                    failures.append(error)
                    continue
                default:
                    throw error
                }
            }
        }
        if failures.count == 1 { throw failures[0] }
        throw PGConnectionError(.hostUnreachable,
            "could not reach any of the hosts: " + failures.map(\.message).joined(separator: "; "),
            fix: failures.first?.fix)
    }

    private static func connect(
        _ configuration: ConnectionConfiguration, endpoint: ConnectionConfiguration.Endpoint,
        replication: ConnectionConfiguration.ReplicationMode?, eventLoopGroup: any EventLoopGroup,
        receiveBufferLimit: Int, logger: Logger
    ) async throws -> PGConnection {
        let mode = configuration.sslMode
        if endpoint.isUnixSocket || mode == .disable {
            return try await attempt(configuration, endpoint: endpoint, tls: false, replication: replication,
                                     eventLoopGroup: eventLoopGroup, receiveBufferLimit: receiveBufferLimit, logger: logger)
        }
        if mode == .allow {
            do {
                return try await attempt(configuration, endpoint: endpoint, tls: false, replication: replication,
                                         eventLoopGroup: eventLoopGroup, receiveBufferLimit: receiveBufferLimit, logger: logger)
            } catch let error as PGConnectionError where error.code == .connectionRejected && error.sqlState == "28000" {
                logger.debug("plain connection rejected, retrying with TLS (sslmode=allow)")
            }
            return try await attempt(configuration, endpoint: endpoint, tls: true, replication: replication,
                                     eventLoopGroup: eventLoopGroup, receiveBufferLimit: receiveBufferLimit, logger: logger)
        }
        do {
            return try await attempt(configuration, endpoint: endpoint, tls: true, replication: replication,
                                     eventLoopGroup: eventLoopGroup, receiveBufferLimit: receiveBufferLimit, logger: logger)
        } catch let error as PGConnectionError where mode == .prefer && error.code == .tlsHandshakeFailed {
            logger.debug("TLS handshake failed, retrying without TLS (sslmode=prefer)", metadata: ["error": "\(error.message)"])
            return try await attempt(configuration, endpoint: endpoint, tls: false, replication: replication,
                                     eventLoopGroup: eventLoopGroup, receiveBufferLimit: receiveBufferLimit, logger: logger)
        }
    }

    private static func attempt(
        _ configuration: ConnectionConfiguration, endpoint: ConnectionConfiguration.Endpoint, tls wantTLS: Bool,
        replication: ConnectionConfiguration.ReplicationMode?, eventLoopGroup: any EventLoopGroup,
        receiveBufferLimit: Int, logger: Logger
    ) async throws -> PGConnection {
        let timeout = configuration.connectTimeout ?? .seconds(30)
        let tlsContext: NIOSSLContext? = wantTLS ? try makeTLSContext(configuration) : nil
        let channel = try await openChannel(endpoint: endpoint, timeout: timeout, eventLoopGroup: eventLoopGroup)
        let inbound = InboundBuffer<BackendMessage>(highWatermark: receiveBufferLimit) { [channel] in channel.read() }
        let handler = try await channel.eventLoop.submit {
            let handler = PGChannelHandler(inbound: inbound)
            try channel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }.get()
        let connection = PGConnection(configuration: configuration, endpoint: endpoint,
                                      isReplication: replication != nil, isTLS: false, channel: channel,
                                      handler: handler, inbound: inbound, logger: logger)
        do {
            try await withDeadline(timeout, endpoint: endpoint) {
                if let tlsContext {
                    try await connection.negotiateTLS(tlsContext)
                }
                try await connection.startup(replication: replication)
            }
            return connection
        } catch {
            try? await channel.close()
            throw connection.classify(error)
        }
    }

    private static func openChannel(endpoint: ConnectionConfiguration.Endpoint, timeout: Duration,
                                    eventLoopGroup: any EventLoopGroup) async throws -> any Channel {
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                         + timeout.components.attoseconds / 1_000_000_000))
            .channelOption(.socketOption(.so_keepalive), value: 1)
        do {
            if let path = endpoint.unixSocketPath {
                return try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
            let address = endpoint.hostaddr ?? endpoint.host
            let channel = try await bootstrap.connect(host: address, port: endpoint.port).get()
            try await channel.setOption(.socketOption(.tcp_nodelay), value: 1).get()
            return channel
        } catch let error as ChannelError where error == .connectTimeout(.zero) || "\(error)".contains("connectTimeout") {
            throw PGConnectionError(.connectTimeout, "no answer from \(endpoint) within \(timeout)",
                fix: "check the host and port, firewalls and security groups; raise connect_timeout if the network is slow",
                underlying: error)
        } catch {
            throw PGConnectionError(.hostUnreachable, "could not connect to \(endpoint): \(describeSocketError(error))",
                fix: "check the host and port, and that the server is running and accepts TCP connections (listen_addresses, firewalls)",
                underlying: error)
        }
    }

    static func describeSocketError(_ error: any Error) -> String {
        if let connection = error as? NIOConnectionError {
            if let dns = connection.dnsAAAAError ?? connection.dnsAError { return "host name lookup failed (\(dns))" }
            if let first = connection.connectionErrors.first { return "\(first.error)" }
        }
        return "\(error)"
    }

    /// Runs `body`, failing with `connectTimeout` if it takes longer than `timeout`.
    private static func withDeadline(_ timeout: Duration, endpoint: ConnectionConfiguration.Endpoint,
                                     _ body: @escaping () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            nonisolated(unsafe) let body = body
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw PGConnectionError(.connectTimeout, "\(endpoint) accepted the connection but did not complete startup within \(timeout)",
                                        fix: "check that the port belongs to PostgreSQL; raise connect_timeout if the server is slow")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    static func makeTLSContext(_ configuration: ConnectionConfiguration) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        var mode = configuration.sslMode
        var rootCertificate = configuration.sslRootCertificate
        if rootCertificate == nil {
            let home = FileManager.default.homeDirectoryForCurrentUser.path
            let fallback = home + "/.postgresql/root.crt"
            if FileManager.default.fileExists(atPath: fallback) { rootCertificate = .file(fallback) }
        }
        // libpq: with a root certificate present, `require` verifies the chain like `verify-ca`.
        if mode == .require, rootCertificate != nil, configuration.sslRootCertificate != nil { mode = .verifyCA }
        switch mode {
        case .verifyCA, .verifyFull:
            switch rootCertificate {
            case .file(let path)?:
                guard FileManager.default.fileExists(atPath: path) else {
                    throw PGConnectionError(.invalidConfiguration, "the root certificate file \(path) does not exist",
                        fix: "point sslrootcert at the CA certificate that signed the server's certificate, or use sslrootcert=system")
                }
                tls.trustRoots = .file(path)
            case .system?:
                tls.trustRoots = .default
            case nil:
                throw PGConnectionError(.invalidConfiguration,
                    "sslmode=\(configuration.sslMode.rawValue) needs a root certificate to verify the server, and ~/.postgresql/root.crt does not exist",
                    fix: "set sslrootcert=/path/to/ca.pem, or sslrootcert=system to trust the system's CAs, or use sslmode=require to skip verification")
            }
            tls.certificateVerification = mode == .verifyFull ? .fullVerification : .noHostnameVerification
        default:
            tls.certificateVerification = .none
        }
        if let certificate = configuration.sslCertificate, let key = configuration.sslKey {
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            } catch {
                throw PGConnectionError(.invalidConfiguration, "could not load the client certificate \(certificate) or key \(key)",
                                        fix: "check sslcert and sslkey (PEM files)", underlying: error)
            }
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw PGConnectionError(.invalidConfiguration, "could not set up TLS: \(error)",
                                    fix: "check sslrootcert (a PEM file of CA certificates)", underlying: error)
        }
    }

    private func negotiateTLS(_ context: NIOSSLContext) async throws {
        let promise = channel.eventLoop.makePromise(of: UInt8.self)
        let handler = self.handler
        try await channel.eventLoop.submit { handler.value.expectSSLResponse(promise) }.get()
        try await send(.sslRequest)
        let answer = try await promise.futureResult.get()
        switch answer {
        case UInt8(ascii: "S"):
            let host = endpoint.host
            let serverName: String? = Self.isIPAddress(host) ? nil : host
            let channel = self.channel
            try await channel.eventLoop.submit {
                let ssl = try NIOSSLClientHandler(context: context, serverHostname: serverName)
                try channel.pipeline.syncOperations.addHandler(ssl, position: .first)
            }.get()
            isTLS = true
        case UInt8(ascii: "N"), UInt8(ascii: "E"):
            if configuration.sslMode.requiresTLS {
                throw PGConnectionError(.tlsNotSupportedByServer,
                    "the server at \(endpoint) does not accept TLS, but sslmode=\(configuration.sslMode.rawValue) requires it",
                    fix: "enable ssl on the server (ssl = on with a certificate), or set sslmode=prefer or disable")
            }
            // prefer: go on without TLS on the same connection.
        default:
            throw PGConnectionError(.protocolViolation, "the server answered the SSL request with byte \(answer)",
                                    fix: "check that \(endpoint) is a PostgreSQL server")
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: 0)) != nil
    }

    private func startup(replication: ConnectionConfiguration.ReplicationMode?) async throws {
        let startup = StartupMessage(user: configuration.user, database: configuration.database,
                                     replication: replication?.rawValue,
                                     applicationName: configuration.applicationName ?? "ferry",
                                     options: configuration.options)
        try await send(.startup(startup))
        try await authenticate()
        while true {
            switch try await next() {
            case .backendKeyData(let key): backendKeyData = key
            case .parameterStatus(let name, let value): parameters[name] = value
            case .readyForQuery: return
            case .noticeResponse(let fields): logNotice(fields)
            case .errorResponse(let fields): throw serverError(fields)
            case .negotiateProtocolVersion: continue
            case let other: throw unexpected(other, during: "startup")
            }
        }
    }

    private func authenticate() async throws {
        let password = configuration.password ?? endpoint.passwordFromFile
        var scram: SCRAMClient?
        let bindingRequired = configuration.channelBinding == .require
        while true {
            let message = try await next()
            switch message {
            case .authentication(.ok):
                if let scram, !scram.isAuthenticated {
                    throw PGConnectionError(.protocolViolation,
                        "the server at \(endpoint) ended SCRAM authentication without proving it knows the password",
                        fix: "this can mean someone impersonates the server: check the host, and use sslmode=verify-full")
                }
                if bindingRequired && authenticationMethod != .scramSHA256Plus {
                    throw channelBindingMissing()
                }
                return
            case .authentication(.cleartextPassword):
                if bindingRequired { throw channelBindingMissing() }
                authenticationMethod = .cleartext
                try await send(.password(try requirePassword(password)))
            case .authentication(.md5Password(let salt)):
                if bindingRequired { throw channelBindingMissing() }
                authenticationMethod = .md5
                try await send(.password(MD5Password.response(user: configuration.user, password: try requirePassword(password), salt: salt)))
            case .authentication(.sasl(let mechanisms)):
                let secret = try requirePassword(password)
                let binding = try await chooseChannelBinding(offered: mechanisms)
                guard mechanisms.contains(binding.mechanism) else {
                    throw PGConnectionError(.unsupportedAuthentication,
                        "the server at \(endpoint) offers SASL mechanisms \(mechanisms.joined(separator: ", ")), none of which Ferry speaks",
                        fix: "use scram-sha-256 or md5 in pg_hba.conf for this client")
                }
                authenticationMethod = binding.mechanism == SCRAMClient.mechanismPlus ? .scramSHA256Plus : .scramSHA256
                var client = SCRAMClient(password: secret, channelBinding: binding)
                let first = try client.clientFirstMessage()
                scram = client
                try await send(.saslInitialResponse(mechanism: client.mechanism, initialResponse: first))
            case .authentication(.saslContinue(let data)):
                guard var client = scram else { throw unexpected(message, during: "authentication") }
                let final = try client.handleServerFirst(data)
                scram = client
                try await send(.saslResponse(final))
            case .authentication(.saslFinal(let data)):
                guard var client = scram else { throw unexpected(message, during: "authentication") }
                do {
                    try client.verifyServerFinal(data)
                } catch {
                    throw PGConnectionError(.authenticationFailed,
                        "the server at \(endpoint) could not prove it knows the password: \(error)",
                        fix: "check the host (someone may impersonate the server) and use sslmode=verify-full", underlying: error)
                }
                scram = client
            case .authentication(.unsupported(let code)):
                throw PGConnectionError(.unsupportedAuthentication,
                    "the server at \(endpoint) asks for an authentication method Ferry does not support (code \(code): Kerberos, GSSAPI or SSPI)",
                    fix: "use scram-sha-256 (or md5) in pg_hba.conf for this client")
            case .errorResponse(let fields):
                throw serverError(fields)
            case .noticeResponse(let fields):
                logNotice(fields)
            default:
                throw unexpected(message, during: "authentication")
            }
        }
    }

    private func chooseChannelBinding(offered mechanisms: [String]) async throws -> SCRAMClient.ChannelBinding {
        let wantsBinding = configuration.channelBinding != .disable
        guard isTLS, wantsBinding else {
            if configuration.channelBinding == .require { throw channelBindingMissing() }
            return .notSupportedByClient
        }
        guard mechanisms.contains(SCRAMClient.mechanismPlus) else {
            if configuration.channelBinding == .require { throw channelBindingMissing() }
            return .clientSupportsButServerDidNot
        }
        let channel = self.channel
        let der: [UInt8]? = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.nioSSL_peerCertificate()?.toDERBytes()
        }.get()
        guard let der, let hash = CertificateSignature.hash(ofDER: der) else {
            if configuration.channelBinding == .require {
                throw PGConnectionError(.channelBindingRequired,
                    "channel binding is required, but the server certificate's signature algorithm is not one tls-server-end-point supports",
                    fix: "use an RSA or ECDSA server certificate signed with SHA-256/384/512, or channel_binding=prefer")
            }
            return .clientSupportsButServerDidNot
        }
        return .tlsServerEndPoint(certificateHash: SCRAMClient.tlsServerEndPointHash(certificateDER: der, signatureHash: hash))
    }

    private func channelBindingMissing() -> PGConnectionError {
        PGConnectionError(.channelBindingRequired,
            "channel_binding=require, but the server at \(endpoint) authenticated without SCRAM-SHA-256-PLUS channel binding",
            fix: isTLS ? "use scram-sha-256 in pg_hba.conf (the role's password must be stored as SCRAM), or set channel_binding=prefer"
                       : "connect with TLS (sslmode=require or stronger), or set channel_binding=prefer")
    }

    private func requirePassword(_ password: String?) throws -> String {
        guard let password else {
            throw PGConnectionError(.passwordRequired, "the server at \(endpoint) asks user \"\(configuration.user)\" for a password, and none was given",
                fix: "put the password in the connection string, in PGPASSWORD, or in the password file (~/.pgpass)")
        }
        return password
    }

    // MARK: Messages

    /// The next message from the server.
    func next() async throws -> BackendMessage {
        if let message = batch.popFirst() { return message }
        do {
            while true {
                guard let more = try await inbound.takeAll() else {
                    isBroken = true
                    throw PGConnectionError(.connectionClosed, "the connection to \(endpoint) is closed")
                }
                // An empty batch is a stop request waking the stream; here, simply wait on.
                guard !more.isEmpty else { continue }
                batch = more
                return batch.removeFirst()
            }
        } catch {
            isBroken = true
            throw classify(error)
        }
    }

    /// `first` followed by the payloads of the CopyData messages already decoded and next in
    /// line (`first` alone if the next message is something else).
    func joiningBufferedCopyData(_ first: ByteBuffer) -> ByteBuffer {
        guard case .copyData? = batch.first else { return first }
        var joined = ByteBuffer()
        var first = first
        joined.writeBuffer(&first)
        while case .copyData(var payload)? = batch.first {
            batch.removeFirst()
            joined.writeBuffer(&payload)
        }
        return joined
    }

    /// Whether messages are waiting, decoded or in the receive buffer.
    var hasBufferedMessages: Bool { !batch.isEmpty || inbound.bufferedBytes > 0 }

    /// Takes every buffered message at once (the replication stream's fast path).
    func nextBatch() async throws -> CircularBuffer<BackendMessage>? {
        if !batch.isEmpty {
            defer { batch = CircularBuffer() }
            return batch
        }
        do {
            return try await inbound.takeAll()
        } catch {
            isBroken = true
            throw classify(error)
        }
    }

    func send(_ messages: FrontendMessage...) async throws {
        var buffer = channel.allocator.buffer(capacity: 256)
        for message in messages { try message.encode(into: &buffer) }
        try await write(buffer)
    }

    func write(_ buffer: ByteBuffer) async throws {
        do {
            try await channel.writeAndFlush(buffer)
        } catch {
            isBroken = true
            // A failed write usually follows a failure the read side saw first (a TLS alert,
            // a reset): report that cause rather than "channel closed".
            throw classify(inbound.terminalError ?? error)
        }
    }

    func serverError(_ fields: [ServerMessageField: String]) -> PGConnectionError {
        PGConnectionError.fromServer(PostgresServerError(fields: fields), user: configuration.user,
                                     database: configuration.database, endpoint: endpoint.description,
                                     replication: isReplication)
    }

    func unexpected(_ message: BackendMessage, during phase: String) -> PGConnectionError {
        isBroken = true
        return PGConnectionError(.protocolViolation, "unexpected message from the server during \(phase): \(Self.name(of: message))",
                                 fix: "check that \(endpoint) is a PostgreSQL server (a pooler in transaction mode cannot replicate)")
    }

    static func name(of message: BackendMessage) -> String {
        "\(message)".prefix(while: { $0 != "(" }).description
    }

    func logNotice(_ fields: [ServerMessageField: String]) {
        let notice = PostgresServerError(fields: fields)
        logger.debug("server notice", metadata: ["severity": "\(notice.severity)", "message": "\(notice.message)"])
    }

    /// Maps socket, TLS and decoding failures to connection errors with a fix.
    func classify(_ error: any Error) -> PGConnectionError {
        if let error = error as? PGConnectionError { return error }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return PGConnectionError(.tlsHandshakeFailed, "the TLS handshake with \(endpoint) failed: \(error)",
                fix: Self.tlsFix(configuration), underlying: error)
        }
        if let error = error as? SCRAMError {
            return PGConnectionError(.authenticationFailed, "SCRAM authentication with \(endpoint) failed: \(error)",
                fix: "check the password; if it is right, the server may be impersonated: use sslmode=verify-full",
                underlying: error)
        }
        if error is WireEncodingError {
            return PGConnectionError(.invalidConfiguration, "could not encode a message: \(error)",
                                     fix: "remove NUL characters from the connection parameters", underlying: error)
        }
        return PGConnectionError(.connectionClosed, "the connection to \(endpoint) failed: \(error)", underlying: error)
    }

    static func tlsFix(_ configuration: ConnectionConfiguration) -> String {
        switch configuration.sslMode {
        case .verifyFull:
            return "check that sslrootcert (\(configuration.sslRootCertificate?.description ?? "~/.postgresql/root.crt")) holds the CA that signed the server certificate and that the certificate names this host"
        case .verifyCA:
            return "check that sslrootcert holds the CA that signed the server certificate"
        default:
            return "check the server's TLS setup (ssl_cert_file, ssl_key_file, ssl_min_protocol_version)"
        }
    }

    // MARK: Closing

    /// Sends Terminate and closes the socket.
    public func close() async {
        if channel.isActive, !isBroken {
            try? await send(.terminate)
        }
        try? await channel.close()
    }
}
