import FerryCore
import FerryKafka
import PostgresWire

/// A destination as a user writes it on the command line or in the config file.
enum DestinationURL: Equatable, CustomStringConvertible {
    /// `sqlite:PATH` — a SQLite replica (the embedded default).
    case sqlite(path: String)
    /// `jsonl:PATH` — JSON lines appended to a file.
    case jsonLinesFile(path: String)
    /// `-` — JSON lines on standard output.
    case jsonLinesStdout
    /// `postgres://…` or `postgresql://…` (or a key=value string after `postgres:`) — another PostgreSQL.
    case postgres(url: String)
    /// `kafka://HOST:PORT[,…][?…]` — Kafka topics, Debezium-compatible events.
    case kafka(url: String)

    static let defaultReplica = DestinationURL.sqlite(path: "./ferry-replica.db")

    static let supported = "postgres://USER@HOST/DB, kafka://HOST:PORT, sqlite:PATH, jsonl:PATH, or - (JSON lines on stdout)"

    init(_ text: String) throws {
        if text == "-" {
            self = .jsonLinesStdout
        } else if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw FerryError(.configuration, "destination \(text) has no path", fix: "write sqlite:./replica.db") }
            self = .sqlite(path: path)
        } else if text.hasPrefix("jsonl:") {
            let path = String(text.dropFirst("jsonl:".count))
            guard !path.isEmpty else { throw FerryError(.configuration, "destination \(text) has no path", fix: "write jsonl:./changes.jsonl") }
            self = .jsonLinesFile(path: path)
        } else if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            do {
                _ = try ConnectionConfiguration.parse(text)
            } catch {
                throw FerryError(.configuration, "destination \(Redaction.redact(text)): \(error.field): \(error.message)", fix: error.fix)
            }
            self = .postgres(url: text)
        } else if text.hasPrefix("kafka://") {
            _ = try KafkaOptions(url: text)
            self = .kafka(url: text)
        } else {
            let scheme = text.split(separator: ":", maxSplits: 1).first.map(String.init) ?? text
            let later = ["nats", "redis", "amqp", "https", "http", "clickhouse", "s3", "parquet"]
            if later.contains(scheme) {
                throw FerryError(.configuration, "destination \(scheme): is not available in this build yet",
                                 fix: "use one of \(Self.supported)")
            }
            throw FerryError(.configuration, "\"\(text)\" is not a destination Ferry knows", fix: "use one of \(Self.supported)")
        }
    }

    var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .jsonLinesFile(let path): "jsonl:\(path)"
        case .jsonLinesStdout: "-"
        case .postgres(let url), .kafka(let url): Redaction.redact(url)
        }
    }
}
