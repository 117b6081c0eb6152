import Foundation

/// Where and how to connect, parsed from a libpq connection string (URI or key=value) with the
/// same `PG*` environment fallbacks and password file as libpq.
///
/// Build it with ``parse(_:environment:passwordFile:systemUserName:)`` (pure: environment and
/// password file are injected) or ``parseUsingProcessEnvironment(_:)``.
///
/// `description` and `debugDescription` never show a password (it prints as `****`), nor
/// `sslpassword`.
public struct ConnectionConfiguration: Sendable, Hashable {
    /// One server to try. libpq tries the hosts of a multi-host string in order.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
        /// A host name, an IP address, or a Unix-domain socket directory (starting with `/`,
        /// or `@` for Linux's abstract namespace). When only `hostaddr` was given, the address.
        public var host: String
        /// A numeric IP address to connect to instead of resolving `host` (which then serves
        /// only for TLS verification, SNI and the password file).
        public var hostaddr: String?
        public var port: Int
        /// The password the password file gave for this endpoint, if any.
        public var passwordFromFile: String?

        public init(host: String, hostaddr: String? = nil, port: Int = 5432, passwordFromFile: String? = nil) {
            self.host = host
            self.hostaddr = hostaddr
            self.port = port
            self.passwordFromFile = passwordFromFile
        }

        public var isUnixSocket: Bool { host.hasPrefix("/") || host.hasPrefix("@") }

        /// `<dir>/.s.PGSQL.<port>` for a Unix-socket endpoint.
        public var unixSocketPath: String? {
            guard isUnixSocket else { return nil }
            let directory = host.hasSuffix("/") ? String(host.dropLast()) : host
            return "\(directory)/.s.PGSQL.\(port)"
        }

        public var description: String {
            let shown = host.contains(":") ? "[\(host)]" : host
            return hostaddr.map { "\(shown):\(port) (\($0))" } ?? "\(shown):\(port)"
        }

        /// Reflection never shows the password from the file.
        public var customMirror: Mirror {
            Mirror(self, children: ["host": host, "hostaddr": hostaddr as Any, "port": port,
                                    "passwordFromFile": passwordFromFile == nil ? "nil" : "****"],
                   displayStyle: .struct)
        }
    }

    /// `sslmode`. Default `prefer` (`verify-full` when `sslrootcert=system`).
    public enum SSLMode: String, Sendable, Hashable, CaseIterable, Comparable {
        case disable
        case allow
        case prefer
        case require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"

        private var rank: Int { Self.allCases.firstIndex(of: self)! }
        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }

        /// TLS is mandatory (`require` and stricter).
        public var requiresTLS: Bool { self >= .require }
        /// A plaintext connection is attempted first or exclusively (`disable`, `allow`).
        public var triesPlaintextFirst: Bool { self <= .allow }
    }

    /// `sslrootcert`.
    public enum SSLRootCertificate: Sendable, Hashable, CustomStringConvertible {
        /// A PEM file of trusted CA certificates.
        case file(String)
        /// `sslrootcert=system`: the TLS library's default trust store; forces `verify-full`.
        case system

        public var description: String {
            switch self {
            case .file(let path): path
            case .system: "system"
            }
        }
    }

    /// `channel_binding`. Default `prefer`.
    public enum ChannelBindingMode: String, Sendable, Hashable, CaseIterable {
        case disable
        case prefer
        case require
    }

    /// `replication`: what kind of walsender to ask for.
    public enum ReplicationMode: String, Sendable, Hashable {
        /// `replication=database`: logical replication commands and SQL.
        case database
        /// `replication=true`: physical replication.
        case physical = "true"
    }

    /// `target_session_attrs`. Default `any`.
    public enum TargetSessionAttributes: String, Sendable, Hashable, CaseIterable {
        case any
        case readWrite = "read-write"
        case readOnly = "read-only"
        case primary
        case standby
        case preferStandby = "prefer-standby"
    }

    /// The servers, in order. Never empty.
    public var endpoints: [Endpoint]
    public var user: String
    /// The password given in the connection string or `PGPASSWORD` (not the password file's:
    /// see ``password(for:)``).
    public var password: String?
    public var database: String
    /// The password file path from `passfile=`/`PGPASSFILE` (nil: the default `~/.pgpass`).
    public var passfile: String?
    /// What the password file did; explains a missing password.
    public var passwordFileStatus: PasswordFileStatus
    public var sslMode: SSLMode
    public var sslRootCertificate: SSLRootCertificate?
    public var sslCertificate: String?
    public var sslKey: String?
    public var channelBinding: ChannelBindingMode
    public var applicationName: String?
    /// Command-line options for the server backend (`-c name=value …`).
    public var options: String?
    /// nil when absent, zero or negative: wait indefinitely (libpq).
    public var connectTimeout: Duration?
    /// Kept as written; the replication client decides what it asks for.
    public var replication: ReplicationMode?
    public var targetSessionAttributes: TargetSessionAttributes
    /// Other libpq parameters Ferry keeps but does not interpret (`keepalives`, `sslsni`,
    /// `gssencmode`, `client_encoding`, …), by libpq key.
    public var otherParameters: [String: String]

    public init(endpoints: [Endpoint] = [Endpoint(host: "localhost")], user: String, password: String? = nil,
                database: String? = nil, passfile: String? = nil, passwordFileStatus: PasswordFileStatus = .notConsulted,
                sslMode: SSLMode = .prefer, sslRootCertificate: SSLRootCertificate? = nil,
                sslCertificate: String? = nil, sslKey: String? = nil, channelBinding: ChannelBindingMode = .prefer,
                applicationName: String? = nil, options: String? = nil, connectTimeout: Duration? = nil,
                replication: ReplicationMode? = nil, targetSessionAttributes: TargetSessionAttributes = .any,
                otherParameters: [String: String] = [:]) {
        self.endpoints = endpoints.isEmpty ? [Endpoint(host: "localhost")] : endpoints
        self.user = user
        self.password = password
        self.database = database ?? user
        self.passfile = passfile
        self.passwordFileStatus = passwordFileStatus
        self.sslMode = sslMode
        self.sslRootCertificate = sslRootCertificate
        self.sslCertificate = sslCertificate
        self.sslKey = sslKey
        self.channelBinding = channelBinding
        self.applicationName = applicationName
        self.options = options
        self.connectTimeout = connectTimeout
        self.replication = replication
        self.targetSessionAttributes = targetSessionAttributes
        self.otherParameters = otherParameters
    }

    /// The first endpoint's host.
    public var host: String { endpoints[0].host }
    /// The first endpoint's port.
    public var port: Int { endpoints[0].port }

    /// The password to use for `endpoint`: the explicit one, else the password file's.
    public func password(for endpoint: Endpoint) -> String? {
        if let password, !password.isEmpty { return password }
        return endpoint.passwordFromFile
    }

    /// The password to use for the first endpoint.
    public var effectivePassword: String? { password(for: endpoints[0]) }

    /// Whether the server certificate chain will be checked: `verify-ca`, `verify-full`, or —
    /// libpq's backward-compatible rule — `require` together with a root certificate file.
    public var verifiesCertificateChain: Bool {
        sslMode >= .verifyCA || (sslMode == .require && sslRootCertificate != nil)
    }
}

extension ConnectionConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Keys whose values are secrets and never printed.
    static let secretKeys: Set<String> = ["password", "sslpassword", "oauth_client_secret"]

    /// A libpq key=value string that connects to the same place, with every secret as `****`.
    public var redactedDescription: String {
        var parts: [(String, String)] = []
        parts.append(("host", endpoints.map(\.host).joined(separator: ",")))
        if endpoints.contains(where: { $0.hostaddr != nil }) {
            parts.append(("hostaddr", endpoints.map { $0.hostaddr ?? "" }.joined(separator: ",")))
        }
        parts.append(("port", endpoints.map { String($0.port) }.joined(separator: ",")))
        parts.append(("user", user))
        if (password.map { !$0.isEmpty } ?? false) || endpoints.contains(where: { $0.passwordFromFile != nil }) {
            parts.append(("password", "****"))
        }
        parts.append(("dbname", database))
        if let passfile { parts.append(("passfile", passfile)) }
        parts.append(("sslmode", sslMode.rawValue))
        if let sslRootCertificate { parts.append(("sslrootcert", sslRootCertificate.description)) }
        if let sslCertificate { parts.append(("sslcert", sslCertificate)) }
        if let sslKey { parts.append(("sslkey", sslKey)) }
        parts.append(("channel_binding", channelBinding.rawValue))
        if let applicationName { parts.append(("application_name", applicationName)) }
        if let options { parts.append(("options", options)) }
        if let connectTimeout { parts.append(("connect_timeout", String(connectTimeout.components.seconds))) }
        if let replication { parts.append(("replication", replication.rawValue)) }
        if targetSessionAttributes != .any { parts.append(("target_session_attrs", targetSessionAttributes.rawValue)) }
        for key in otherParameters.keys.sorted() {
            parts.append((key, Self.secretKeys.contains(key) ? "****" : otherParameters[key]!))
        }
        return parts.map { "\($0.0)=\(Self.quote($0.1))" }.joined(separator: " ")
    }

    public var description: String { redactedDescription }
    public var debugDescription: String { "ConnectionConfiguration(\(redactedDescription))" }

    /// Reflection (`dump`, debuggers) shows the redacted form, never the password.
    public var customMirror: Mirror {
        Mirror(self, children: ["redacted": redactedDescription], displayStyle: .struct)
    }

    /// Quotes a value for key=value syntax when needed.
    static func quote(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains { $0 == " " || $0 == "'" || $0 == "\\" || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard needsQuotes else { return value }
        var quoted = "'"
        for scalar in value.unicodeScalars {
            if scalar == "'" || scalar == "\\" { quoted += "\\" }
            quoted.unicodeScalars.append(scalar)
        }
        return quoted + "'"
    }
}
