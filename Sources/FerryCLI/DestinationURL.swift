import FerryCore

/// A destination as a user writes it on the command line or in the config file.
enum DestinationURL: Equatable, CustomStringConvertible {
    /// `sqlite:PATH` — a SQLite replica (the embedded default).
    case sqlite(path: String)
    /// `jsonl:PATH` — JSON lines appended to a file.
    case jsonLinesFile(path: String)
    /// `-` — JSON lines on standard output.
    case jsonLinesStdout

    static let defaultReplica = DestinationURL.sqlite(path: "./ferry-replica.db")

    static let supported = "sqlite:PATH, jsonl:PATH, or - (JSON lines on stdout)"

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
        } else {
            let scheme = text.split(separator: ":", maxSplits: 1).first.map(String.init) ?? text
            let later = ["postgres", "postgresql", "kafka", "nats", "redis", "amqp", "https", "http", "clickhouse", "s3", "parquet"]
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
        }
    }
}
