import ArgumentParser
import FerryCore
import Foundation
import Logging
import PostgresWire

extension Ferry {
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Preflight a source: wal_level, slots, privileges, keys, publication; each finding with a fix.",
            discussion: """
            Connects the way ferry run would and reports each finding with a fix-it line. Exit \
            status: 0 when everything is fine (or only informational), 1 with warnings, 2 with \
            errors. --json prints the report for machines.
            """
        )

        @Option(help: "Source connection string (libpq URI or key=value; PG* variables apply).")
        var source: String

        @Option(help: "Tables to check: schema.table or schema.*, comma-separated; repeatable.")
        var tables: [String] = []

        @Option(help: "Publication to check (default ferry_<name>).")
        var publication: String?

        @Option(help: "Replication slot to check (default ferry_<name>).")
        var slot: String?

        @Option(help: "Pipeline name the publication and slot names derive from (default \(RunSettings.defaultName)).")
        var name: String = RunSettings.defaultName

        @Flag(help: "Print the report as JSON.")
        var json = false

        func run() async throws {
            let configuration = try ConnectionConfiguration.parseUsingProcessEnvironment(source)
            let tables = tables.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
            var preflight = Preflight(source: configuration, tables: tables,
                                      publication: publication ?? "ferry_\(name)", slot: slot ?? "ferry_\(name)")
            preflight.longTransactionSeconds = 300
            var logger = Logger(label: "ferry.check")
            logger.logLevel = .error
            let report = await preflight.run(logger: logger)
            if json {
                try MachineOutput.writeJSON(report)
            } else {
                print(Self.render(report))
            }
            guard report.exitStatus == 0 else { throw ExitCode(report.exitStatus) }
        }

        static func render(_ report: PreflightReport) -> String {
            var lines = ["ferry check \(report.source)"]
            for finding in report.findings {
                let mark = switch finding.severity {
                case .ok: "ok     "
                case .info: "info   "
                case .warning: "WARNING"
                case .error: "ERROR  "
                }
                lines.append("\(mark) \(finding.check): \(finding.message)")
                if let fix = finding.fix { lines.append("        fix: \(fix)") }
            }
            let counts = Finding.Severity.allCases.reversed().compactMap { severity -> String? in
                let count = report.findings.filter { $0.severity == severity }.count
                return count == 0 ? nil : "\(count) \(severity.rawValue)"
            }
            lines.append("result: \(report.worst == .error ? "not ready" : report.worst == .warning ? "ready, with warnings" : "ready") (\(counts.joined(separator: ", ")))")
            return lines.joined(separator: "\n")
        }
    }
}
