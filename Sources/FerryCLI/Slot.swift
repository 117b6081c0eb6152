import ArgumentParser
import FerryCore
import Foundation
import PGOutput
import PostgresReplication
import PostgresWire

extension Ferry {
    struct Slot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, drop or drain replication slots.",
            subcommands: [List.self, Drop.self, Consume.self]
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the replication slots of a source with their lag and WAL status.")

            @Option(help: "Source connection string (libpq URI or key=value; PG* variables apply).")
            var source: String

            @Flag(help: "Print the slots as JSON.")
            var json = false

            func run() async throws {
                let connection = try await PGConnection.connect(try ConnectionConfiguration.parseUsingProcessEnvironment(source), replication: nil)
                let slots: [SlotInfo]
                do {
                    slots = try await SlotInventory.list(on: connection)
                    await connection.close()
                } catch {
                    await connection.close()
                    throw error
                }
                if json {
                    try MachineOutput.writeJSON(slots)
                    return
                }
                print(Self.render(slots))
            }

            static func columns(_ slot: SlotInfo) -> [String] {
                let active: String = slot.active ? "pid " + (slot.activePID.map { String($0) } ?? "?") : "no"
                let lag: String = slot.lagBytes.map { Preflight.bytes($0) } ?? ""
                let safe: String = slot.safeWALSize.map { Preflight.bytes($0) } ?? ""
                let plugin: String = slot.plugin ?? slot.type
                return [slot.name, plugin, slot.database ?? "", active, lag, slot.walStatus ?? "", safe, slot.confirmedFlush ?? ""]
            }

            static func render(_ slots: [SlotInfo]) -> String {
                guard !slots.isEmpty else { return "no replication slots" }
                let header = ["SLOT", "PLUGIN", "DATABASE", "ACTIVE", "LAG", "WAL_STATUS", "SAFE_WAL_SIZE", "CONFIRMED_FLUSH"]
                let rows: [[String]] = slots.map(Self.columns)
                let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
                return ([header] + rows).map { row in
                    row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                        .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
                }.joined(separator: "\n")
            }
        }

        struct Drop: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Drop a replication slot (it stops pinning WAL; a pipeline using it must re-snapshot).")

            @Argument(help: "The slot to drop.")
            var slot: String

            @Option(help: "Source connection string (libpq URI or key=value; PG* variables apply).")
            var source: String

            @Flag(help: "If the slot is in use, terminate the walsender holding it first.")
            var force = false

            func run() async throws {
                let connection = try await PGConnection.connect(try ConnectionConfiguration.parseUsingProcessEnvironment(source), replication: nil)
                do {
                    try await SlotInventory.drop(slot, terminateActive: force, on: connection)
                    await connection.close()
                } catch {
                    await connection.close()
                    throw error
                }
                print("dropped replication slot \(slot)")
            }
        }
    }
}

extension Ferry.Slot {
    /// Drains a slot to nowhere, decoding every message: the replication client's own speed,
    /// and the first benchmark against `pg_recvlogical`.
    struct Consume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drain a logical slot to nowhere, decoding every message, and confirm the position reached.",
            discussion: """
            Streams the slot with pgoutput, decodes every message, confirms each transaction's end \
            as it goes, and stops cleanly at --until-lsn (like pg_recvlogical --endpos) or on \
            SIGINT/SIGTERM. Prints what it consumed, the rate and the peak memory.
            """
        )

        @Option(help: "Source connection string (libpq URI or key=value; PG* variables apply).")
        var source: String

        @Option(help: "The logical replication slot (pgoutput) to drain.")
        var slot: String

        @Option(help: "Publication(s) to stream; repeat or separate with commas.")
        var publication: [String]

        @Option(name: .customLong("until-lsn"), help: "Stop once this WAL position (X/X) is reached.")
        var untilLSN: String?

        @Option(name: .customLong("proto-version"), help: "pgoutput protocol version (default: the highest the server speaks).")
        var protoVersion: Int?

        @Flag(help: "Ask for values in binary format.")
        var binary = false

        @Flag(help: "Ask the server to stream large in-progress transactions.")
        var streaming = false

        @Option(name: .customLong("status-interval"), help: "Seconds between standby status updates.")
        var statusInterval: Double = 5

        func validate() throws {
            if let untilLSN, LSN(untilLSN) == nil {
                throw ValidationError("--until-lsn \(untilLSN) is not a WAL position; write it like 0/16B3748")
            }
            guard statusInterval > 0 && statusInterval <= 60 else {
                throw ValidationError("--status-interval must be between 0 and 60 seconds")
            }
        }

        func run() async throws {
            let configuration = try ConnectionConfiguration.parseUsingProcessEnvironment(source)
            let connection = try await PGConnection.connect(configuration, replication: .database)
            let publications = publication.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            let options = PGOutputOptions(publications: publications, protocolVersion: protoVersion, binary: binary,
                                          streaming: streaming ? .on : .off)
            let stream = try await connection.startReplication(
                slot: slot, options: options, statusInterval: .milliseconds(Int64(statusInterval * 1000)))
            stream.endPosition = untilLSN.flatMap { LSN($0) }

            let signals = SignalStop { [stopper = stream.stopper] in stopper.requestStop() }
            defer { signals.cancel() }
            var tally = ConsumeTally()
            let clock = ContinuousClock()
            let started = clock.now
            while let next = try await stream.next() {
                tally.count(next.message)
                if let end = next.message.unitEndLSN { stream.confirmFlushed(end) }
            }
            let elapsed = clock.now - started
            try await stream.stop()
            await connection.close()
            print(tally.summary(elapsed: elapsed, confirmed: stream.feedback.flushed))
        }
    }
}

/// Counts what a drain saw.
struct ConsumeTally {
    var messages = 0
    var transactions = 0
    var rows = 0
    var valueBytes = 0

    mutating func count(_ message: PGOutputMessage) {
        messages += 1
        switch message {
        case .insert(let insert): rows += 1; measure(insert.newTuple)
        case .update(let update): rows += 1; measure(update.newTuple); if let old = update.oldTuple { measure(old.tuple) }
        case .delete(let delete): rows += 1; measure(delete.oldTuple.tuple)
        default: if message.unitEndLSN != nil { transactions += 1 }
        }
    }

    private mutating func measure(_ tuple: TupleData) {
        tuple.forEachColumn { _, bytes in valueBytes += bytes.count }
    }

    func summary(elapsed: Duration, confirmed: LSN) -> String {
        let seconds = max(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, 1e-9)
        let rate = Double(messages) / seconds
        return """
        consumed \(messages) messages (\(rows) row changes, \(transactions) transactions, \(valueBytes) bytes of values) \
        in \(String(format: "%.3f", seconds)) s: \(Int(rate)) messages/s; confirmed \(confirmed); \
        peak RSS \(PeakMemory.residentKilobytes().map { "\($0 / 1024) MB" } ?? "unknown")
        """
    }
}

/// The process's peak resident set size, from /proc/self/status (Linux).
enum PeakMemory {
    static func residentKilobytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }
}

/// Runs `onSignal` on SIGINT or SIGTERM instead of dying, so a drain stops cleanly: final
/// status update, CopyDone, then exit 0.
final class SignalStop {
    private let sources: [any DispatchSourceSignal]

    init(_ onSignal: @escaping @Sendable () -> Void) {
        sources = [SIGINT, SIGTERM].map { signalNumber in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler(handler: onSignal)
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
