import FerryCore
import Foundation
import Logging
import Synchronization

/// How `ferry run` writes its log lines (to standard error).
enum LogFormat: String, CaseIterable, Sendable {
    /// `2026-11-29T08:00:00.123Z info ferry: streaming slot=ferry_main from=0/1A2B3C`
    case text
    /// One JSON object per line: `{"ts": …, "level": …, "logger": …, "message": …, "metadata": {…}}`.
    case json

    /// A logger writing in this format, with passwords redacted from messages and metadata.
    func logger(label: String, level: Logger.Level) -> Logger {
        var logger = Logger(label: label) { label in FerryLogHandler(label: label, format: self) }
        logger.logLevel = level
        return logger
    }
}

/// Writes one line per entry to standard error; redacts secrets (connection-string
/// passwords) from the message and every metadata value.
struct FerryLogHandler: LogHandler {
    let label: String
    let format: LogFormat
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    private static let output = Mutex(())

    init(label: String, format: LogFormat) {
        self.label = label
        self.format = format
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = render(level: event.level, message: event.message.description, metadata: merged)
        Self.output.withLock { _ in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    func render(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        let timestamp = Self.timestamp()
        let message = Redaction.redact(message)
        switch format {
        case .text:
            var line = "\(timestamp) \(level) \(label): \(message)"
            for key in metadata.keys.sorted() {
                line += " \(key)=\(Self.quoteIfNeeded(Redaction.redact(Self.flatten(metadata[key]!))))"
            }
            return line
        case .json:
            var object: [String: Any] = ["ts": timestamp, "level": level.rawValue, "logger": label, "message": message]
            if !metadata.isEmpty {
                object["metadata"] = Dictionary(uniqueKeysWithValues: metadata.map { ($0.key, Redaction.redact(Self.flatten($0.value))) })
            }
            guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]),
                  let text = String(data: data, encoding: .utf8) else { return message }
            return text
        }
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let array): "[" + array.map(flatten).joined(separator: ", ") + "]"
        case .dictionary(let dictionary): "{" + dictionary.keys.sorted().map { "\($0): \(flatten(dictionary[$0]!))" }.joined(separator: ", ") + "}"
        }
    }

    static func quoteIfNeeded(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) ? "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : value
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int(now.tv_nsec / 1_000_000))
    }
}
