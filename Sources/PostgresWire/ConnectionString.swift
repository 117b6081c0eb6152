import Foundation

extension ConnectionConfiguration {
    /// Parses a libpq connection string and resolves it the way libpq does.
    ///
    /// - URI form: `postgres://` or `postgresql://`, then
    ///   `[user[:password]@][host[:port][,host[:port]…]][/dbname][?key=value&…]`; every part is
    ///   percent-decoded; IPv6 literals go in brackets (`[::1]:5433`); a socket directory can be
    ///   given percent-encoded as the host (`%2Fvar%2Frun%2Fpostgresql`) or as `?host=/dir`;
    ///   `ssl=true` means `sslmode=require` (as in libpq).
    /// - key=value form: `host=db port=5432 password='it\'s secret'`-style pairs separated by
    ///   whitespace, spaces allowed around `=`, values quoted with `'…'` when they hold spaces,
    ///   backslash escaping `\'` and `\\` (also outside quotes). A later key overrides an earlier one.
    /// - Each parameter not set (or set empty) falls back to its `PG*` variable in `environment`
    ///   (`PGHOST`, `PGHOSTADDR`, `PGPORT`, `PGDATABASE`, `PGUSER`, `PGPASSWORD`, `PGPASSFILE`,
    ///   `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGCHANNELBINDING`, `PGAPPNAME`,
    ///   `PGOPTIONS`, `PGCONNECT_TIMEOUT`, `PGTARGETSESSIONATTRS`, …), then to the default:
    ///   host `localhost` (libpq would use its socket directory), port 5432, user `USER`/`LOGNAME`
    ///   from `environment` or `systemUserName`, database = user, sslmode `prefer`
    ///   (`verify-full` with `sslrootcert=system`), channel_binding `prefer`.
    /// - Without a password, the password file (`passfile`, `PGPASSFILE`, or `$HOME/.pgpass`) is
    ///   read through `passwordFile` and matched per endpoint; it is ignored if its permissions
    ///   give the group or others any access. ``passwordFileStatus`` says what happened.
    public static func parse(_ string: String, environment: [String: String] = [:],
                             passwordFile: PasswordFileLoader = .none,
                             systemUserName: String? = nil) throws(ConnectionStringError) -> ConnectionConfiguration {
        var parser = ConnectionStringParser(environment: environment)
        let pairs: [(String, String)]
        if string.hasPrefix("postgresql://") {
            pairs = try parser.parseURI(string.dropFirst("postgresql://".count))
        } else if string.hasPrefix("postgres://") {
            pairs = try parser.parseURI(string.dropFirst("postgres://".count))
        } else {
            pairs = try parser.parseKeyValue(Substring(string))
        }
        for (key, value) in pairs {
            try parser.set(key, value)
        }
        return try parser.resolve(passwordFile: passwordFile, systemUserName: systemUserName)
    }

    /// Decodes the `%XX` escapes of a URL part as connection strings do (a malformed escape or
    /// `%00` is an error naming `field`; a password's text is never quoted): for other URLs.
    public static func percentDecode(_ text: Substring, field: String) throws(ConnectionStringError) -> String {
        try ConnectionStringParser.percentDecode(text, field: field)
    }

    /// ``parse(_:environment:passwordFile:systemUserName:)`` with this process's environment, the
    /// real password file and the OS user name.
    public static func parseUsingProcessEnvironment(_ string: String) throws(ConnectionStringError) -> ConnectionConfiguration {
        let info = ProcessInfo.processInfo
        return try parse(string, environment: info.environment, passwordFile: .fileSystem, systemUserName: info.userName)
    }
}

/// A libpq parameter: its key, its environment variable, and whether Ferry interprets it.
struct ConnectionParameter: Sendable {
    let key: String
    let environmentVariable: String?
    let interpreted: Bool

    static let all: [ConnectionParameter] = [
        .init(key: "host", environmentVariable: "PGHOST", interpreted: true),
        .init(key: "hostaddr", environmentVariable: "PGHOSTADDR", interpreted: true),
        .init(key: "port", environmentVariable: "PGPORT", interpreted: true),
        .init(key: "dbname", environmentVariable: "PGDATABASE", interpreted: true),
        .init(key: "user", environmentVariable: "PGUSER", interpreted: true),
        .init(key: "password", environmentVariable: "PGPASSWORD", interpreted: true),
        .init(key: "passfile", environmentVariable: "PGPASSFILE", interpreted: true),
        .init(key: "sslmode", environmentVariable: "PGSSLMODE", interpreted: true),
        .init(key: "sslrootcert", environmentVariable: "PGSSLROOTCERT", interpreted: true),
        .init(key: "sslcert", environmentVariable: "PGSSLCERT", interpreted: true),
        .init(key: "sslkey", environmentVariable: "PGSSLKEY", interpreted: true),
        .init(key: "channel_binding", environmentVariable: "PGCHANNELBINDING", interpreted: true),
        .init(key: "application_name", environmentVariable: "PGAPPNAME", interpreted: true),
        .init(key: "fallback_application_name", environmentVariable: nil, interpreted: true),
        .init(key: "options", environmentVariable: "PGOPTIONS", interpreted: true),
        .init(key: "connect_timeout", environmentVariable: "PGCONNECT_TIMEOUT", interpreted: true),
        .init(key: "replication", environmentVariable: nil, interpreted: true),
        .init(key: "target_session_attrs", environmentVariable: "PGTARGETSESSIONATTRS", interpreted: true),
        // Kept in `otherParameters`, not interpreted here.
        .init(key: "client_encoding", environmentVariable: "PGCLIENTENCODING", interpreted: false),
        .init(key: "keepalives", environmentVariable: nil, interpreted: false),
        .init(key: "keepalives_idle", environmentVariable: nil, interpreted: false),
        .init(key: "keepalives_interval", environmentVariable: nil, interpreted: false),
        .init(key: "keepalives_count", environmentVariable: nil, interpreted: false),
        .init(key: "tcp_user_timeout", environmentVariable: nil, interpreted: false),
        .init(key: "sslnegotiation", environmentVariable: "PGSSLNEGOTIATION", interpreted: false),
        .init(key: "sslcompression", environmentVariable: "PGSSLCOMPRESSION", interpreted: false),
        .init(key: "sslpassword", environmentVariable: nil, interpreted: false),
        .init(key: "sslcertmode", environmentVariable: "PGSSLCERTMODE", interpreted: false),
        .init(key: "sslcrl", environmentVariable: "PGSSLCRL", interpreted: false),
        .init(key: "sslcrldir", environmentVariable: "PGSSLCRLDIR", interpreted: false),
        .init(key: "sslsni", environmentVariable: "PGSSLSNI", interpreted: false),
        .init(key: "sslkeylogfile", environmentVariable: nil, interpreted: false),
        .init(key: "requirepeer", environmentVariable: "PGREQUIREPEER", interpreted: false),
        .init(key: "ssl_min_protocol_version", environmentVariable: "PGSSLMINPROTOCOLVERSION", interpreted: false),
        .init(key: "ssl_max_protocol_version", environmentVariable: "PGSSLMAXPROTOCOLVERSION", interpreted: false),
        .init(key: "min_protocol_version", environmentVariable: "PGMINPROTOCOLVERSION", interpreted: false),
        .init(key: "max_protocol_version", environmentVariable: "PGMAXPROTOCOLVERSION", interpreted: false),
        .init(key: "krbsrvname", environmentVariable: "PGKRBSRVNAME", interpreted: false),
        .init(key: "gsslib", environmentVariable: "PGGSSLIB", interpreted: false),
        .init(key: "gssencmode", environmentVariable: "PGGSSENCMODE", interpreted: false),
        .init(key: "gssdelegation", environmentVariable: "PGGSSDELEGATION", interpreted: false),
        .init(key: "require_auth", environmentVariable: "PGREQUIREAUTH", interpreted: false),
        .init(key: "load_balance_hosts", environmentVariable: "PGLOADBALANCEHOSTS", interpreted: false),
        .init(key: "oauth_issuer", environmentVariable: nil, interpreted: false),
        .init(key: "oauth_client_id", environmentVariable: nil, interpreted: false),
        .init(key: "oauth_client_secret", environmentVariable: nil, interpreted: false),
        .init(key: "oauth_scope", environmentVariable: nil, interpreted: false),
    ]

    static let byKey: [String: ConnectionParameter] = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0) })

    /// Keys people write by mistake, and what they mean.
    static let aliases: [String: String] = [
        "database": "dbname", "db": "dbname", "username": "user", "usr": "user", "pass": "password",
        "pwd": "password", "hostname": "host", "server": "host", "appname": "application_name",
        "application": "application_name", "ssl_mode": "sslmode", "channelbinding": "channel_binding",
        "sslrootcertificate": "sslrootcert", "timeout": "connect_timeout", "connecttimeout": "connect_timeout",
    ]
}

struct ConnectionStringParser {
    let environment: [String: String]
    private(set) var explicit: [String: String] = [:]

    init(environment: [String: String]) {
        self.environment = environment
    }

    // MARK: Tokenising

    mutating func parseKeyValue(_ text: Substring) throws(ConnectionStringError) -> [(String, String)] {
        var pairs: [(String, String)] = []
        let scalars = Array(text.unicodeScalars)
        var index = 0
        func isSpace(_ scalar: Unicode.Scalar) -> Bool {
            scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar == "\u{0B}" || scalar == "\u{0C}"
        }
        func skipSpaces() { while index < scalars.count, isSpace(scalars[index]) { index += 1 } }

        while true {
            skipSpaces()
            if index >= scalars.count { break }
            var key = ""
            while index < scalars.count, !isSpace(scalars[index]), scalars[index] != "=" {
                key.unicodeScalars.append(scalars[index])
                index += 1
            }
            skipSpaces()
            guard index < scalars.count, scalars[index] == "=" else {
                throw ConnectionStringError(code: .syntax, field: key, message: "missing \"=\" after \"\(key)\"",
                                            fix: "write key=value pairs separated by spaces, e.g. host=localhost dbname=app; or use a postgres:// URI")
            }
            if key.isEmpty {
                throw ConnectionStringError(code: .syntax, field: "connection string", message: "\"=\" without a key before it",
                                            fix: "write key=value pairs, e.g. host=localhost")
            }
            index += 1
            skipSpaces()
            var value = ""
            if index < scalars.count, scalars[index] == "'" {
                index += 1
                var closed = false
                while index < scalars.count {
                    let scalar = scalars[index]
                    if scalar == "\\", index + 1 < scalars.count {
                        value.unicodeScalars.append(scalars[index + 1])
                        index += 2
                    } else if scalar == "'" {
                        index += 1
                        closed = true
                        break
                    } else {
                        value.unicodeScalars.append(scalar)
                        index += 1
                    }
                }
                guard closed else {
                    throw ConnectionStringError(code: .syntax, field: key, message: "unterminated quoted string in the value of \(key)",
                                                fix: "close the value with ' (write \\' for a quote inside it)")
                }
            } else {
                while index < scalars.count, !isSpace(scalars[index]) {
                    if scalars[index] == "\\", index + 1 < scalars.count {
                        value.unicodeScalars.append(scalars[index + 1])
                        index += 2
                    } else {
                        value.unicodeScalars.append(scalars[index])
                        index += 1
                    }
                }
            }
            pairs.append((key, value))
        }
        return pairs
    }

    mutating func parseURI(_ text: Substring) throws(ConnectionStringError) -> [(String, String)] {
        var pairs: [(String, String)] = []
        var rest = text
        var query: Substring?
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring?
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var authority = rest
        if let at = authority.lastIndex(of: "@") {
            let userinfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = try Self.percentDecode(userinfo[..<colon], field: "user")
                let password = try Self.percentDecode(userinfo[userinfo.index(after: colon)...], field: "password")
                if !user.isEmpty { pairs.append(("user", user)) }
                if !password.isEmpty { pairs.append(("password", password)) }
            } else {
                let user = try Self.percentDecode(userinfo, field: "user")
                if !user.isEmpty { pairs.append(("user", user)) }
            }
        }
        if !authority.isEmpty {
            var hosts: [String] = []
            var ports: [String] = []
            for spec in authority.split(separator: ",", omittingEmptySubsequences: false) {
                var host: Substring
                var port: Substring = ""
                if spec.first == "[" {
                    guard let close = spec.firstIndex(of: "]") else {
                        throw ConnectionStringError(code: .syntax, field: "host", message: "IPv6 address \"\(spec)\" has no closing \"]\"",
                                                    fix: "write IPv6 hosts in brackets, e.g. postgres://[::1]:5432/db")
                    }
                    host = spec[spec.index(after: spec.startIndex)..<close]
                    let after = spec[spec.index(after: close)...]
                    if after.first == ":" {
                        port = after.dropFirst()
                    } else if !after.isEmpty {
                        throw ConnectionStringError(code: .syntax, field: "host", message: "unexpected \"\(after)\" after IPv6 address [\(host)]",
                                                    fix: "write [address]:port")
                    }
                    if host.isEmpty {
                        throw ConnectionStringError(code: .syntax, field: "host", message: "empty IPv6 address \"[]\"",
                                                    fix: "put the address inside the brackets, e.g. [::1]")
                    }
                } else if let colon = spec.firstIndex(of: ":") {
                    host = spec[..<colon]
                    port = spec[spec.index(after: colon)...]
                } else {
                    host = spec
                }
                hosts.append(try Self.percentDecode(host, field: "host"))
                ports.append(try Self.percentDecode(port, field: "port"))
            }
            if hosts.count > 1 || !hosts[0].isEmpty { pairs.append(("host", hosts.joined(separator: ","))) }
            if ports.contains(where: { !$0.isEmpty }) { pairs.append(("port", ports.joined(separator: ","))) }
        }
        if let path, !path.isEmpty {
            pairs.append(("dbname", try Self.percentDecode(path, field: "dbname")))
        }
        if let query {
            for parameter in query.split(separator: "&") {
                guard let equals = parameter.firstIndex(of: "=") else {
                    throw ConnectionStringError(code: .syntax, field: String(parameter),
                                                message: "URI query parameter \"\(parameter)\" has no value",
                                                fix: "write ?key=value&key=value")
                }
                let key = try Self.percentDecode(parameter[..<equals], field: "URI query parameter")
                let rawValue = parameter[parameter.index(after: equals)...]
                if rawValue.contains("=") {
                    throw ConnectionStringError(code: .syntax, field: key, message: "extra \"=\" in the value of URI query parameter \(key)",
                                                fix: "percent-encode \"=\" inside values as %3D")
                }
                let value = try Self.percentDecode(rawValue, field: key)
                if key == "ssl" {
                    guard value == "true" else {
                        throw ConnectionStringError(code: .invalidValue, field: "ssl", message: "ssl=\(value) is not supported (only ssl=true, meaning sslmode=require)",
                                                    fix: "use sslmode=disable|allow|prefer|require|verify-ca|verify-full")
                    }
                    pairs.append(("sslmode", "require"))
                } else {
                    pairs.append((key, value))
                }
            }
        }
        return pairs
    }

    /// Decodes `%XX` escapes; rejects malformed escapes, `%00` and invalid UTF-8.
    /// Error messages never quote a password.
    static func percentDecode(_ text: Substring, field: String) throws(ConnectionStringError) -> String {
        guard text.contains("%") else { return String(text) }
        let secret = ConnectionConfiguration.secretKeys.contains(field)
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%") {
                guard index + 2 < utf8.count,
                      let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2])
                else {
                    throw ConnectionStringError(code: .syntax, field: field,
                                                message: secret ? "invalid percent-encoding in the \(field)" : "invalid percent-encoding in \"\(text)\"",
                                                fix: "write % as %25; every % must be followed by two hexadecimal digits")
                }
                let byte = high << 4 | low
                guard byte != 0 else {
                    throw ConnectionStringError(code: .syntax, field: field, message: "forbidden value %00 in the \(field)",
                                                fix: "remove %00: PostgreSQL strings cannot hold NUL")
                }
                bytes.append(byte)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw ConnectionStringError(code: .syntax, field: field, message: "the percent-encoded \(field) is not valid UTF-8",
                                        fix: "percent-encode the UTF-8 bytes of the text")
        }
        return string
    }

    // MARK: Collecting

    mutating func set(_ key: String, _ value: String) throws(ConnectionStringError) {
        if key == "service" {
            throw ConnectionStringError(code: .unsupportedParameter, field: key, message: "connection service files (pg_service.conf) are not supported",
                                        fix: "spell out host, port, dbname, user and the other parameters instead of service=")
        }
        if key == "requiressl" {
            throw ConnectionStringError(code: .unsupportedParameter, field: key, message: "requiressl is deprecated",
                                        fix: "use sslmode=require (or verify-full)")
        }
        guard ConnectionParameter.byKey[key] != nil else {
            throw ConnectionStringError(code: .unknownParameter, field: key, message: "unknown connection parameter \"\(key)\"",
                                        fix: Self.suggestion(for: key))
        }
        if value.unicodeScalars.contains("\0") {
            throw ConnectionStringError(code: .invalidValue, field: key, message: "the value of \(key) contains a NUL character",
                                        fix: "remove the NUL character")
        }
        explicit[key] = value
    }

    static func suggestion(for key: String) -> String {
        let lowered = key.lowercased()
        if let alias = ConnectionParameter.aliases[lowered] { return "did you mean \(alias)=?" }
        if ConnectionParameter.byKey[lowered] != nil { return "parameter names are lower case: write \(lowered)=" }
        let best = ConnectionParameter.all.map { ($0.key, editDistance(lowered, $0.key)) }.min { $0.1 < $1.1 }
        if let best, best.1 <= 2 { return "did you mean \(best.0)=?" }
        return "remove it, or use one of host, hostaddr, port, dbname, user, password, passfile, sslmode, sslrootcert, sslcert, sslkey, channel_binding, application_name, options, connect_timeout, replication, target_session_attrs"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// A parameter's value and where it came from: the string, else its `PG*` variable.
    /// As in libpq, a key present in the string (even empty) is not looked up in the environment;
    /// empty values then count as unset (the default applies).
    func value(_ key: String) -> (value: String, source: String)? {
        if let value = explicit[key] { return value.isEmpty ? nil : (value, key) }
        if let variable = ConnectionParameter.byKey[key]?.environmentVariable,
           let value = environment[variable], !value.isEmpty {
            return (value, variable)
        }
        return nil
    }

    private func invalid(_ key: String, _ found: (value: String, source: String), expected: String, fix: String) -> ConnectionStringError {
        let origin = found.source == key ? "" : " (from \(found.source))"
        return ConnectionStringError(code: .invalidValue, field: key,
                                     message: "\"\(found.value)\"\(origin) is not a valid \(key): expected \(expected)", fix: fix)
    }

    // MARK: Resolving

    func resolve(passwordFile: PasswordFileLoader, systemUserName: String?) throws(ConnectionStringError) -> ConnectionConfiguration {
        // Endpoints.
        let hostList = value("host").map { $0.value.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let hostaddrList = value("hostaddr").map { $0.value.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let portValue = value("port")
        let portList = portValue.map { $0.value.split(separator: ",", omittingEmptySubsequences: false).map(String.init) } ?? []
        let count = hostList?.count ?? hostaddrList?.count ?? 1
        if let hostList, let hostaddrList, hostList.count != hostaddrList.count {
            throw ConnectionStringError(code: .conflictingValues, field: "hostaddr",
                                        message: "\(hostList.count) host names but \(hostaddrList.count) hostaddr values",
                                        fix: "give one hostaddr per host, in the same order")
        }
        if portList.count > 1, portList.count != count {
            throw ConnectionStringError(code: .conflictingValues, field: "port",
                                        message: "\(count) hosts but \(portList.count) ports",
                                        fix: "give one port for all hosts, or one port per host in the same order")
        }
        var endpoints: [ConnectionConfiguration.Endpoint] = []
        for index in 0..<count {
            let hostaddr = hostaddrList.map { $0[index] }.flatMap { $0.isEmpty ? nil : $0 }
            var host = hostList.map { $0[index] } ?? ""
            if host.isEmpty { host = hostaddr ?? "localhost" }
            let portText = portList.isEmpty ? "" : portList[portList.count == 1 ? 0 : index]
            let port = try parsePort(portText, source: portValue?.source ?? "port")
            endpoints.append(.init(host: host, hostaddr: hostaddr, port: port))
        }

        // User and database.
        guard let user = value("user")?.value ?? environment["USER"].flatMap({ $0.isEmpty ? nil : $0 })
            ?? environment["LOGNAME"].flatMap({ $0.isEmpty ? nil : $0 }) ?? systemUserName.flatMap({ $0.isEmpty ? nil : $0 })
        else {
            throw ConnectionStringError(code: .missingValue, field: "user", message: "no user name given and none found in the environment",
                                        fix: "add user=NAME to the connection string (or NAME@ in a URI), or set PGUSER")
        }
        let database = value("dbname")?.value ?? user

        // TLS.
        var sslRootCertificate: ConnectionConfiguration.SSLRootCertificate?
        if let root = value("sslrootcert") {
            sslRootCertificate = root.value == "system" ? .system : .file(root.value)
        }
        var sslMode = ConnectionConfiguration.SSLMode.prefer
        if let mode = value("sslmode") {
            guard let parsed = ConnectionConfiguration.SSLMode(rawValue: mode.value) else {
                throw invalid("sslmode", mode, expected: "disable, allow, prefer, require, verify-ca or verify-full",
                              fix: "use sslmode=verify-full to encrypt and check the server's identity, or sslmode=require to only encrypt")
            }
            sslMode = parsed
            if sslRootCertificate == .system, parsed != .verifyFull {
                throw ConnectionStringError(code: .conflictingValues, field: "sslmode",
                                            message: "sslmode=\(parsed.rawValue) is too weak for sslrootcert=system",
                                            fix: "use sslmode=verify-full (or leave sslmode unset) with sslrootcert=system")
            }
        } else if sslRootCertificate == .system {
            sslMode = .verifyFull
        }
        var channelBinding = ConnectionConfiguration.ChannelBindingMode.prefer
        if let binding = value("channel_binding") {
            guard let parsed = ConnectionConfiguration.ChannelBindingMode(rawValue: binding.value) else {
                throw invalid("channel_binding", binding, expected: "disable, prefer or require",
                              fix: "use channel_binding=require to insist on SCRAM-SHA-256-PLUS over TLS")
            }
            channelBinding = parsed
        }
        if channelBinding == .require, sslMode == .disable {
            throw ConnectionStringError(code: .conflictingValues, field: "channel_binding",
                                        message: "channel_binding=require needs TLS but sslmode=disable turns it off",
                                        fix: "use sslmode=require (or verify-full) with channel_binding=require, or drop channel_binding=require")
        }

        // Everything else.
        var connectTimeout: Duration?
        if let timeout = value("connect_timeout") {
            guard let seconds = Int(timeout.value.trimmingCharacters(in: .whitespaces)) else {
                throw invalid("connect_timeout", timeout, expected: "a whole number of seconds",
                              fix: "write connect_timeout=10 (0 or unset waits indefinitely)")
            }
            connectTimeout = seconds > 0 ? .seconds(seconds) : nil
        }
        var replication: ConnectionConfiguration.ReplicationMode?
        if let mode = value("replication") {
            switch mode.value.lowercased() {
            case "database": replication = .database
            case "true", "on", "yes", "1": replication = .physical
            case "false", "off", "no", "0": replication = nil
            default:
                throw invalid("replication", mode, expected: "database, true or false",
                              fix: "use replication=database for logical replication, or leave it out")
            }
        }
        var targetSessionAttributes = ConnectionConfiguration.TargetSessionAttributes.any
        if let attributes = value("target_session_attrs") {
            guard let parsed = ConnectionConfiguration.TargetSessionAttributes(rawValue: attributes.value) else {
                throw invalid("target_session_attrs", attributes, expected: "any, read-write, read-only, primary, standby or prefer-standby",
                              fix: "use target_session_attrs=primary to reach the server a slot can live on")
            }
            targetSessionAttributes = parsed
        }
        var otherParameters: [String: String] = [:]
        for parameter in ConnectionParameter.all where !parameter.interpreted {
            if let found = value(parameter.key) { otherParameters[parameter.key] = found.value }
        }

        var configuration = ConnectionConfiguration(
            endpoints: endpoints,
            user: user,
            password: value("password")?.value,
            database: database,
            passfile: value("passfile")?.value,
            sslMode: sslMode,
            sslRootCertificate: sslRootCertificate,
            sslCertificate: value("sslcert")?.value,
            sslKey: value("sslkey")?.value,
            channelBinding: channelBinding,
            applicationName: value("application_name")?.value ?? value("fallback_application_name")?.value,
            options: value("options")?.value,
            connectTimeout: connectTimeout,
            replication: replication,
            targetSessionAttributes: targetSessionAttributes,
            otherParameters: otherParameters
        )
        configuration.applyPasswordFile(loader: passwordFile, home: environment["HOME"])
        return configuration
    }

    private func parsePort(_ text: String, source: String) throws(ConnectionStringError) -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return 5432 }
        guard trimmed.allSatisfy(\.isASCII), trimmed.allSatisfy(\.isNumber), trimmed.count <= 5,
              let port = Int(trimmed), (1...65535).contains(port)
        else {
            let origin = source == "port" ? "" : " (from \(source))"
            throw ConnectionStringError(code: .invalidValue, field: "port", message: "\"\(text)\"\(origin) is not a valid port number",
                                        fix: "use a number from 1 to 65535, e.g. port=5432")
        }
        return port
    }
}

extension ConnectionConfiguration {
    /// Socket directories libpq builds commonly use as their default; for the password file they
    /// count as `localhost`, as libpq's own default socket directory does.
    static let defaultSocketDirectories: Set<String> = ["/tmp", "/var/run/postgresql", "/run/postgresql"]

    /// The host name the password file is matched against for `endpoint`.
    static func passwordFileHost(for endpoint: Endpoint) -> String {
        if endpoint.isUnixSocket {
            let directory = endpoint.host.count > 1 && endpoint.host.hasSuffix("/") ? String(endpoint.host.dropLast()) : endpoint.host
            return defaultSocketDirectories.contains(directory) ? "localhost" : endpoint.host
        }
        return endpoint.host
    }

    mutating func applyPasswordFile(loader: PasswordFileLoader, home: String?) {
        if let password, !password.isEmpty {
            passwordFileStatus = .notConsulted
            return
        }
        guard let path = passfile ?? home.map({ ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/.pgpass" }) else {
            passwordFileStatus = .notConsulted
            return
        }
        switch loader.load(path) {
        case .notFound:
            passwordFileStatus = .notFound(path: path)
        case .notRegularFile:
            passwordFileStatus = .ignored(path: path, reason: "it is not a plain file")
        case .unreadable(let reason):
            passwordFileStatus = .ignored(path: path, reason: "it cannot be read (\(reason))")
        case .loaded(let contents, let permissions):
            if let permissions, permissions & 0o077 != 0 {
                let mode = String(permissions & 0o777, radix: 8)
                passwordFileStatus = .ignored(path: path, reason: "it has group or world access (mode 0\(mode)); permissions should be u=rw (0600) or less: run chmod 0600 \(path)")
                return
            }
            let file = PasswordFile(contents: contents)
            var matched = false
            for index in endpoints.indices {
                let endpoint = endpoints[index]
                if let password = file.password(host: Self.passwordFileHost(for: endpoint), port: endpoint.port,
                                                database: database, user: user) {
                    endpoints[index].passwordFromFile = password
                    matched = true
                }
            }
            passwordFileStatus = matched ? .used(path: path) : .noMatchingEntry(path: path)
        }
    }
}
