import FerryCore
import PostgresWire

/// A `kafka://` destination URL, parsed:
///
/// ```
/// kafka://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…][?OPTION=VALUE&…]
/// ```
///
/// | option | default | meaning |
/// |---|---|---|
/// | `topic_prefix` | the pipeline's name | Debezium's `topic.prefix` |
/// | `topic` | `{prefix}.{schema}.{table}` | topic template; `{prefix}`, `{schema}`, `{table}` are replaced |
/// | `compression` | `none` | `none`, `gzip`, `snappy`, `lz4`, `zstd` |
/// | `tombstones` | `false` | after each delete, a message with the same key and no value (log compaction) |
/// | `transaction_topic` | off | `true` (`{prefix}.transaction`) or a topic name: Debezium's BEGIN/END transaction metadata events, and a `transaction` block in each data event |
/// | `schemas` | `false` | Kafka Connect JsonConverter's `schemas.enable`: `{"schema": …, "payload": …}` |
/// | `json` | `string` | `json`/`jsonb` values as a string holding the document (Debezium) or `nested` |
/// | `buffer_mb` | `64` | memory for messages not yet delivered; a full buffer slows the pipeline down |
/// | `connect_timeout` | `10` | seconds to reach a broker when the destination opens |
/// | any name with a dot | | passed to librdkafka as is: `security.protocol=SASL_SSL`, `sasl.mechanisms=SCRAM-SHA-512`, `ssl.ca.location=…`, `linger.ms=…` |
///
/// `USER:PASSWORD@` sets `sasl.username` and `sasl.password` (mechanism `PLAIN` and protocol
/// `SASL_SSL` unless the options name others).
public struct KafkaOptions: Sendable, Hashable {
    public var bootstrapServers: String
    public var topicPrefix: String?
    public var topicTemplate: String = "{prefix}.{schema}.{table}"
    public var compression: String = "none"
    public var tombstones = false
    /// The transaction metadata topic, if on (`{prefix}` replaced).
    public var transactionTopic: String?
    public var schemas = false
    public var jsonAsString = true
    public var bufferMegabytes = 64
    public var connectTimeoutSeconds = 10
    /// librdkafka properties, in the order given.
    public var properties: [Property] = []

    public struct Property: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(bootstrapServers: String) {
        self.bootstrapServers = bootstrapServers
    }

    static let compressions = ["none", "gzip", "snappy", "lz4", "zstd"]

    /// Parses a `kafka://` URL; errors name the part that is wrong and how to write it.
    public init(url: String) throws {
        let shown = Redaction.redact(url)
        guard url.hasPrefix("kafka://") else {
            throw FerryError(.configuration, "destination \(shown) is not a kafka:// URL", fix: "write kafka://HOST:PORT")
        }
        var rest = Substring(url.dropFirst("kafka://".count))
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let info = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = info.firstIndex(of: ":") {
                user = try Self.percentDecoded(info[..<colon], field: "user", shown: shown)
                password = try Self.percentDecoded(info[info.index(after: colon)...], field: "password", shown: shown)
            } else {
                user = try Self.percentDecoded(info, field: "user", shown: shown)
            }
        }
        let servers = rest.split(separator: ",", omittingEmptySubsequences: false)
        guard !rest.isEmpty, servers.allSatisfy({ !$0.isEmpty }) else {
            throw FerryError(.configuration, "destination \(shown) names no broker",
                             fix: "write kafka://HOST:PORT or kafka://HOST1:PORT,HOST2:PORT")
        }
        for server in servers {
            guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]),
                  (1...65535).contains(port), colon != server.startIndex else {
                throw FerryError(.configuration, "destination \(shown): broker \"\(server)\" has no valid port",
                                 fix: "write HOST:PORT, e.g. kafka://localhost:9092")
            }
        }
        self.init(bootstrapServers: servers.joined(separator: ","))
        var named = Set<String>()
        for pair in query.split(separator: "&") where !pair.isEmpty {
            guard let equals = pair.firstIndex(of: "=") else {
                throw FerryError(.configuration, "destination \(shown): option \"\(pair)\" has no value", fix: "write NAME=VALUE")
            }
            let name = try Self.percentDecoded(pair[..<equals], field: "option", shown: shown)
            // A secret's text is never repeated in the error ("password" is a secret field).
            let secret = name.contains("password") || name.contains("secret")
            let value = try Self.percentDecoded(pair[pair.index(after: equals)...], field: secret ? "password" : name, shown: shown)
            named.insert(name)
            try set(name, value, shown: shown)
        }
        if let user {
            properties.append(Property("sasl.username", user))
            if let password { properties.append(Property("sasl.password", password)) }
            if !named.contains("sasl.mechanisms") && !named.contains("sasl.mechanism") {
                properties.append(Property("sasl.mechanisms", "PLAIN"))
            }
            if !named.contains("security.protocol") { properties.append(Property("security.protocol", "SASL_SSL")) }
        }
    }

    private mutating func set(_ name: String, _ value: String, shown: String) throws {
        func flag() throws -> Bool {
            switch value.lowercased() {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            default:
                throw FerryError(.configuration, "destination \(shown): \(name)=\(value) is not true or false", fix: "write \(name)=true or \(name)=false")
            }
        }
        func number(_ range: ClosedRange<Int>) throws -> Int {
            guard let number = Int(value), range.contains(number) else {
                throw FerryError(.configuration, "destination \(shown): \(name)=\(value) is not a number in \(range.lowerBound)…\(range.upperBound)",
                                 fix: "write \(name)=\(range.lowerBound)")
            }
            return number
        }
        switch name {
        case "topic_prefix":
            guard !value.isEmpty else { throw FerryError(.configuration, "destination \(shown): topic_prefix is empty", fix: "write topic_prefix=NAME") }
            topicPrefix = value
        case "topic":
            guard value.contains("{table}") else {
                throw FerryError(.configuration, "destination \(shown): topic template \"\(value)\" has no {table}: every table would share one topic",
                                 fix: "write topic={prefix}.{schema}.{table} or another template with {table}")
            }
            topicTemplate = value
        case "compression":
            guard Self.compressions.contains(value) else {
                throw FerryError(.configuration, "destination \(shown): compression \"\(value)\" is unknown",
                                 fix: "use one of \(Self.compressions.joined(separator: ", "))")
            }
            compression = value
        case "tombstones":
            tombstones = try flag()
        case "transaction_topic":
            switch value.lowercased() {
            case "true", "1", "yes", "on": transactionTopic = "{prefix}.transaction"
            case "false", "0", "no", "off", "": transactionTopic = nil
            default: transactionTopic = value
            }
        case "schemas":
            schemas = try flag()
        case "json":
            guard value == "string" || value == "nested" else {
                throw FerryError(.configuration, "destination \(shown): json=\(value) is unknown", fix: "write json=string (Debezium) or json=nested")
            }
            jsonAsString = value == "string"
        case "buffer_mb":
            bufferMegabytes = try number(1...4096)
        case "connect_timeout":
            connectTimeoutSeconds = try number(1...600)
        default:
            guard name.contains(".") else {
                throw FerryError(.configuration, "destination \(shown): option \"\(name)\" is unknown",
                                 fix: "use topic_prefix, topic, compression, tombstones, transaction_topic, schemas, json, buffer_mb, connect_timeout, or a librdkafka property (a name with a dot, e.g. security.protocol)")
            }
            properties.append(Property(name, value))
        }
    }

    /// The topic of a table: the template with `{prefix}`, `{schema}` and `{table}` replaced.
    public func topic(schema: String, table: String, prefix: String) -> String {
        topicTemplate.replacingAll("{prefix}", with: prefix).replacingAll("{schema}", with: schema).replacingAll("{table}", with: table)
    }

    /// PostgresWire's percent-decoding, its errors as configuration errors.
    static func percentDecoded(_ text: Substring, field: String, shown: String) throws -> String {
        do {
            return try ConnectionConfiguration.percentDecode(text, field: field)
        } catch {
            throw FerryError(.configuration, "destination \(shown): \(error.message)", fix: error.fix)
        }
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(target) {
                result += replacement
                index = self.index(index, offsetBy: target.count)
            } else {
                result.append(self[index])
                index = self.index(after: index)
            }
        }
        return result
    }
}
