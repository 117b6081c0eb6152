#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// How far the initial snapshot is: counts, throughput and the time left.
///
/// Chunks already done by an earlier run count as done (and their tables, when complete);
/// rows, bytes and rates count this run only.
public struct SnapshotProgress: Sendable, Hashable {
    public var tablesTotal = 0
    public var tablesDone = 0
    public var chunksTotal = 0
    public var chunksDone = 0
    /// Chunks an earlier run had done (included in ``chunksDone``).
    public var chunksSkipped = 0
    /// Rows delivered to the sink in this run.
    public var rows = 0
    /// Binary COPY bytes received in this run.
    public var bytes = 0
    /// Heap pages this run plans to read, and those of the chunks done so far (the basis of
    /// ``fractionDone``).
    public var pagesTotal = 0
    public var pagesDone = 0
    /// Time since this run started copying.
    public var elapsed: Duration = .zero
    /// Whether every chunk is done.
    public var isComplete = false

    public init() {}

    private var seconds: Double {
        Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    public var rowsPerSecond: Double { seconds > 0 ? Double(rows) / seconds : 0 }
    public var bytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds : 0 }

    /// Between 0 and 1, by the pages of the chunks done; nil before anything is planned.
    public var fractionDone: Double? {
        if isComplete { return 1 }
        guard pagesTotal > 0 else { return chunksTotal > 0 ? Double(chunksDone) / Double(chunksTotal) : nil }
        return min(1, Double(pagesDone) / Double(pagesTotal))
    }

    /// The time left at the rate so far; nil until the first chunk of this run is done.
    public var estimatedTimeRemaining: Duration? {
        if isComplete { return .zero }
        guard let fraction = fractionDone, fraction > 0, pagesDone > 0, seconds > 0 else { return nil }
        let left = seconds * (1 - fraction) / fraction
        guard left.isFinite, left < 1e9 else { return nil }
        return .milliseconds(Int64(left * 1000))
    }
}

/// Shows snapshot progress: a one-line bar redrawn in place on a terminal (standard error is a
/// TTY), otherwise a log line every ``logInterval`` through the injected `Logger`.
public struct SnapshotProgressReporter: Sendable {
    public enum Style: Sendable, Hashable {
        /// Redraw one line on standard error with a carriage return.
        case terminal
        /// Periodic `info` log lines with structured metadata.
        case log
    }

    public var style: Style
    public var logInterval: Duration
    public var redrawInterval: Duration
    public var logger: Logger

    /// - Parameter style: nil picks ``Style/terminal`` when standard error is a TTY.
    public init(logger: Logger, style: Style? = nil, logInterval: Duration = .seconds(10),
                redrawInterval: Duration = .milliseconds(250)) {
        self.logger = logger
        self.style = style ?? (isatty(STDERR_FILENO) == 1 ? .terminal : .log)
        self.logInterval = logInterval
        self.redrawInterval = redrawInterval
    }

    /// Reports `current()` until the task is cancelled, then once more (the final state).
    public func run(_ current: @Sendable () -> SnapshotProgress) async {
        let interval = style == .terminal ? redrawInterval : logInterval
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { break }
            report(current(), final: false)
        }
        report(current(), final: true)
    }

    /// Shows one state (`final` ends the terminal line).
    public func report(_ progress: SnapshotProgress, final: Bool) {
        switch style {
        case .terminal:
            var line = "\r" + Self.line(progress) + "\u{1B}[K"
            if final { line += "\n" }
            Self.writeToStandardError(line)
        case .log:
            var metadata: Logger.Metadata = [
                "tables": "\(progress.tablesDone)/\(progress.tablesTotal)",
                "chunks": "\(progress.chunksDone)/\(progress.chunksTotal)",
                "rows": "\(progress.rows)",
                "bytes": "\(progress.bytes)",
                "rows_per_second": "\(Int(progress.rowsPerSecond))",
                "bytes_per_second": "\(Int(progress.bytesPerSecond))",
            ]
            if let fraction = progress.fractionDone { metadata["percent"] = "\(Int(fraction * 100))" }
            if let eta = progress.estimatedTimeRemaining { metadata["eta"] = "\(Self.duration(eta))" }
            logger.info(final ? "snapshot progress (final)" : "snapshot progress", metadata: metadata)
        }
    }

    /// `snapshot [#########...........]  45%  3/10 tables  120/400 chunks  1.2M rows  340.0 MB  25.1 MB/s  ETA 1m20s`
    public static func line(_ progress: SnapshotProgress, barWidth: Int = 20) -> String {
        let fraction = progress.fractionDone ?? 0
        let filled = min(barWidth, max(0, Int((fraction * Double(barWidth)).rounded(.down))))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
        let percent = String(Int((fraction * 100).rounded(.down)))
        var parts = [
            "snapshot [\(bar)] " + String(repeating: " ", count: max(0, 3 - percent.count)) + percent + "%",
            "\(progress.tablesDone)/\(progress.tablesTotal) tables",
            "\(progress.chunksDone)/\(progress.chunksTotal) chunks",
            "\(count(progress.rows)) rows",
            bytes(Double(progress.bytes)),
            bytes(progress.bytesPerSecond) + "/s",
        ]
        if progress.isComplete {
            parts.append("done in \(duration(progress.elapsed))")
        } else if let eta = progress.estimatedTimeRemaining {
            parts.append("ETA \(duration(eta))")
        } else {
            parts.append("ETA --")
        }
        return parts.joined(separator: "  ")
    }

    static func count(_ value: Int) -> String {
        switch value {
        case ..<10_000: return "\(value)"
        case ..<10_000_000: return decimal(Double(value) / 1e3) + "k"
        case ..<10_000_000_000: return decimal(Double(value) / 1e6) + "M"
        default: return decimal(Double(value) / 1e9) + "G"
        }
    }

    static func bytes(_ value: Double) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = value, unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(Int(value)) B" : decimal(value) + " " + units[unit]
    }

    /// One decimal place.
    static func decimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// `1h02m`, `3m05s`, `12s`.
    static func duration(_ duration: Duration) -> String {
        let total = max(0, Int(duration.components.seconds))
        let hours = total / 3600, minutes = total / 60 % 60, seconds = total % 60
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        if hours > 0 { return "\(hours)h\(two(minutes))m" }
        if minutes > 0 { return "\(minutes)m\(two(seconds))s" }
        return "\(seconds)s"
    }

    private static func writeToStandardError(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                write(STDERR_FILENO, raw.baseAddress! + offset, raw.count - offset)
            }
            if written <= 0 { return }
            offset += written
        }
    }
}
