import Foundation

/// The PostgreSQL server binaries found on this machine (14 or newer).
public struct PostgresInstallation: Sendable {
    public let binDirectory: String
    public let majorVersion: Int
    public let versionString: String

    public func path(_ program: String) -> String { binDirectory + "/" + program }

    static let minimumMajorVersion = 14

    static let installHint = """
    Install the PostgreSQL server (Debian: `apt-get install -y postgresql`; the README's test \
    command `scripts/test` does this), or point FERRY_PG_BINDIR at a directory holding \
    `postgres`, `initdb` and `pg_ctl` of PostgreSQL \(minimumMajorVersion) or newer.
    """

    /// Finds the server binaries: `FERRY_PG_BINDIR`, then `pg_config --bindir`, then the
    /// newest `/usr/lib/postgresql/*/bin`.
    public static func locate(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        debianRoot: String = "/usr/lib/postgresql"
    ) throws -> PostgresInstallation {
        var candidates: [String] = []
        if let explicit = environment["FERRY_PG_BINDIR"], !explicit.isEmpty { candidates.append(explicit) }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        if let pgConfig = try? Subprocess.run("/usr/bin/env", ["pg_config", "--bindir"], environment: ["PATH": path]) {
            candidates.append(pgConfig.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if let versions = try? FileManager.default.contentsOfDirectory(atPath: debianRoot) {
            let sorted = versions.compactMap(Int.init).sorted(by: >)
            candidates += sorted.map { "\(debianRoot)/\($0)/bin" }
        }
        var rejected: [String] = []
        for directory in candidates {
            let fm = FileManager.default
            guard ["postgres", "initdb", "pg_ctl"].allSatisfy({ fm.isExecutableFile(atPath: directory + "/" + $0) }) else {
                rejected.append("\(directory): no postgres/initdb/pg_ctl there")
                continue
            }
            guard let version = try? Subprocess.run(directory + "/postgres", ["--version"]).output,
                  let major = parseMajorVersion(version)
            else {
                rejected.append("\(directory): `postgres --version` did not answer")
                continue
            }
            guard major >= minimumMajorVersion else {
                rejected.append("\(directory): PostgreSQL \(major) is older than \(minimumMajorVersion)")
                continue
            }
            return PostgresInstallation(binDirectory: directory, majorVersion: major,
                                        versionString: version.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let looked = rejected.isEmpty ? "no candidate directory found" : rejected.joined(separator: "; ")
        throw LocalPostgresError("No usable PostgreSQL server binaries (\(looked)). \(installHint)")
    }

    /// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" → 15
    public static func parseMajorVersion(_ text: String) -> Int? {
        guard let range = text.range(of: "(PostgreSQL) ") else { return nil }
        let digits = text[range.upperBound...].prefix(while: \.isNumber)
        return Int(digits)
    }
}
