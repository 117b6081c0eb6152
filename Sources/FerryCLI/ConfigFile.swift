import FerryCore
import Foundation
import Logging
import PostgresWire
import Yams

/// The settings of `ferry run` as written in a YAML file (`ferry run --config ferry.yaml`).
///
/// Every setting is optional here: ``Ferry/Run`` lays the flags given on the command line over
/// the file, and the defaults under both (``RunSettings``). Values are checked as the file is
/// read, and every problem is a ``FerryError`` that names the file, the line, the setting and
/// the fix. `${VAR}` and `${VAR:-default}` in any value are replaced from the environment
/// (``EnvironmentInterpolation``). A null or empty value leaves the setting unset.
struct ConfigFile: Equatable {
    /// The file's path as the user gave it; prefixes every message.
    var path: String
    var name: String?
    var source: String?
    var tables: [String]?
    var publication: String?
    var slot: String?
    var snapshot: PipelineConfiguration.SnapshotMode?
    var snapshotParallelism: Int?
    var once: Bool?
    var state: String?
    var admin: AdminAddress?
    var logLevel: Logger.Level?
    var logFormat: LogFormat?
    var heartbeat: Int?
    var resnapshotOnSlotLoss: Bool?
    var destinations: [DestinationURL]?

    /// The settings a file may hold, in the order the documentation lists them.
    static let keys = [
        "name", "source", "tables", "publication", "slot", "snapshot", "snapshot_parallelism", "once", "state",
        "admin", "log_level", "log_format", "heartbeat", "resnapshot_on_slot_loss", "destinations",
    ]

    /// Names users reach for that are not settings, and the setting they mean.
    static let aliases = ["to": "destinations", "parallelism": "snapshot_parallelism", "level": "log_level",
                          "url": "source", "dsn": "source", "connection": "source", "state_path": "state"]

    init(path: String) { self.path = path }

    /// Reads and checks the file at `path`, interpolating from `environment`.
    static func load(path: String, environment: [String: String]) throws -> ConfigFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FerryError(.configuration, "config file \(path) does not exist",
                             fix: "check the path (relative paths start from \(FileManager.default.currentDirectoryPath))")
        }
        guard !isDirectory.boolValue else {
            throw FerryError(.configuration, "config file \(path) is a directory", fix: "give the path of the YAML file, e.g. --config \(path)/ferry.yaml")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FerryError(.configuration, "config file \(path) cannot be read",
                             fix: "make it readable by this user (\(ProcessInfo.processInfo.userName))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw FerryError(.configuration, "config file \(path) is not UTF-8 text", fix: "save it as UTF-8")
        }
        return try ConfigFile(yaml: text, path: path, environment: environment)
    }

    /// Parses and checks `yaml`; `path` only labels the messages.
    init(yaml: String, path: String, environment: [String: String]) throws {
        self.init(path: path)
        let reader = FieldReader(path: path, environment: environment)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw reader.syntaxError(error, in: yaml)
        }
        guard let root else { return }  // an empty file sets nothing
        guard case .mapping(let mapping) = root else {
            throw FerryError(.configuration, "\(reader.location(root)): expected settings as `key: value` lines, found \(FieldReader.kind(of: root))",
                             fix: "write one setting per line, e.g. source: postgres://user@host/db")
        }
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                throw FerryError(.configuration, "\(reader.location(keyNode)): a setting's name must be a plain word, found \(FieldReader.kind(of: keyNode))",
                                 fix: "write settings as `key: value`, with one of \(Self.keys.joined(separator: ", ")) as the key")
            }
            let key = keyScalar.string
            switch key {
            case "name": name = try reader.string(key, value)
            case "source": source = try reader.string(key, value)
            case "tables": tables = try reader.tables(key, value)
            case "publication": publication = try reader.string(key, value)
            case "slot": slot = try reader.string(key, value)
            case "snapshot": snapshot = try reader.snapshot(key, value)
            case "snapshot_parallelism": snapshotParallelism = try reader.parallelism(key, value)
            case "once": once = try reader.bool(key, value)
            case "state": state = try reader.string(key, value)
            case "admin": admin = try reader.admin(key, value)
            case "log_level": logLevel = try reader.logLevel(key, value)
            case "log_format": logFormat = try reader.logFormat(key, value)
            case "heartbeat": heartbeat = try reader.seconds(key, value)
            case "resnapshot_on_slot_loss": resnapshotOnSlotLoss = try reader.bool(key, value)
            case "destinations": destinations = try reader.destinations(key, value)
            default: throw reader.unknownKey(key, at: keyNode)
            }
        }
    }

    /// The setting closest to a mistyped `key`, if one is close enough to be meant.
    static func suggestion(for key: String) -> String? {
        let normalized = key.lowercased().replacingOccurrences(of: "-", with: "_")
        if keys.contains(normalized) { return normalized }
        if let alias = aliases[normalized] { return alias }
        let scored = keys.map { ($0, editDistance(normalized, $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(1, min(3, best.count / 3)) else { return nil }
        return best
    }

    /// Levenshtein distance between two strings, counted in characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// Reads one setting's value from its YAML node, with messages that name the setting.
private struct FieldReader {
    let path: String
    let environment: [String: String]

    func location(_ node: Node) -> String {
        node.mark.map { "\(path):\($0.line):\($0.column)" } ?? path
    }

    func problem(_ field: String, _ node: Node, _ message: String, fix: String) -> FerryError {
        FerryError(.configuration, "\(location(node)): \(field): \(message)", fix: fix)
    }

    static func kind(of node: Node) -> String {
        switch node {
        case .scalar(let scalar): "\"\(scalar.string)\""
        case .mapping: "a mapping (key: value pairs)"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    /// `~`, `null` or nothing at all, as YAML writes "no value".
    static func isNull(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// The scalar's text with `${…}` replaced; nil for null or empty.
    func text(_ field: String, _ node: Node, expected: String, fix: String) throws -> String? {
        guard case .scalar(let scalar) = node else {
            throw problem(field, node, "expected \(expected), not \(Self.kind(of: node))", fix: fix)
        }
        if Self.isNull(scalar) { return nil }
        let value = try interpolate(field, node, scalar.string)
        return value.isEmpty ? nil : value
    }

    func interpolate(_ field: String, _ node: Node, _ text: String) throws -> String {
        do {
            return try EnvironmentInterpolation.expand(text, environment: environment)
        } catch .unset(let variable) {
            throw problem(field, node, "environment variable \(variable) is not set",
                          fix: "export \(variable), or write ${\(variable):-…} for a default")
        } catch .unterminated {
            throw problem(field, node, "a ${ is not closed by }", fix: "close it (${NAME}), or write $$ for a literal $")
        } catch .badReference(let reference) {
            throw problem(field, node, "${\(reference)} is not a variable reference",
                          fix: "write ${NAME} or ${NAME:-default} (letters, digits and _), or $$ for a literal $")
        }
    }

    func string(_ field: String, _ node: Node) throws -> String? {
        try text(field, node, expected: "a string", fix: "write \(field): VALUE on one line")
    }

    func bool(_ field: String, _ node: Node) throws -> Bool? {
        let fix = "write \(field): true or \(field): false"
        guard let value = try text(field, node, expected: "true or false", fix: fix) else { return nil }
        switch value.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw problem(field, node, "expected true or false, not \"\(value)\"", fix: fix)
        }
    }

    func parallelism(_ field: String, _ node: Node) throws -> Int? {
        let fix = "write a number of connections, e.g. \(field): 4"
        guard let value = try text(field, node, expected: "a whole number", fix: fix) else { return nil }
        guard let number = Int(value), number >= 1 else {
            throw problem(field, node, "expected a whole number of at least 1, not \"\(value)\"", fix: fix)
        }
        return number
    }

    func snapshot(_ field: String, _ node: Node) throws -> PipelineConfiguration.SnapshotMode? {
        let fix = "write \(field): initial (copy the tables, then stream) or \(field): never (stream only)"
        guard let value = try text(field, node, expected: "initial or never", fix: fix) else { return nil }
        guard let mode = PipelineConfiguration.SnapshotMode(rawValue: value.lowercased()) else {
            throw problem(field, node, "expected initial or never, not \"\(value)\"", fix: fix)
        }
        return mode
    }

    func admin(_ field: String, _ node: Node) throws -> AdminAddress? {
        let fix = "write \(field): 127.0.0.1:9187 (HOST:PORT, port 1–65535), or \(field): off"
        guard let value = try text(field, node, expected: "HOST:PORT or off", fix: fix) else { return nil }
        guard let address = AdminAddress(value) else {
            throw problem(field, node, "expected HOST:PORT or off, not \"\(value)\"", fix: fix)
        }
        return address
    }

    func logFormat(_ field: String, _ node: Node) throws -> LogFormat? {
        let fix = "write \(field): text or \(field): json"
        guard let value = try text(field, node, expected: "text or json", fix: fix) else { return nil }
        guard let format = LogFormat(rawValue: value.lowercased()) else {
            throw problem(field, node, "expected text or json, not \"\(value)\"", fix: fix)
        }
        return format
    }

    func seconds(_ field: String, _ node: Node) throws -> Int? {
        let fix = "write a number of seconds, e.g. \(field): 30"
        guard let value = try text(field, node, expected: "a whole number of seconds", fix: fix) else { return nil }
        guard let number = Int(value), number >= 1, number <= 86_400 else {
            throw problem(field, node, "expected a whole number of seconds between 1 and 86400, not \"\(value)\"", fix: fix)
        }
        return number
    }

    func logLevel(_ field: String, _ node: Node) throws -> Logger.Level? {
        let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
        let fix = "write \(field): info (or one of \(levels))"
        guard let value = try text(field, node, expected: "a log level", fix: fix) else { return nil }
        guard let level = Logger.Level(rawValue: value.lowercased()) else {
            throw problem(field, node, "expected one of \(levels), not \"\(value)\"", fix: fix)
        }
        return level
    }

    /// A list of `schema.table` / `schema.*`, or one comma-separated string of them.
    func tables(_ field: String, _ node: Node) throws -> [String]? {
        let fix = "write \(field): [public.orders, public.items] or \(field): public.orders, public.items"
        let items: [Node]
        switch node {
        case .sequence(let sequence): items = Array(sequence)
        case .scalar(let scalar) where Self.isNull(scalar): return nil
        case .scalar: items = [node]
        default: throw problem(field, node, "expected a list of tables, not \(Self.kind(of: node))", fix: fix)
        }
        var tables: [String] = []
        for item in items {
            guard let text = try text(field, item, expected: "a table name", fix: fix) else { continue }
            tables += text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return tables
    }

    func destinations(_ field: String, _ node: Node) throws -> [DestinationURL] {
        let fix = "list at least one destination (\(DestinationURL.supported)), e.g. \(field): [sqlite:./replica.db]; "
            + "or leave \(field) out for sqlite:./ferry-replica.db"
        let items: [Node]
        switch node {
        case .sequence(let sequence): items = Array(sequence)
        case .scalar(let scalar) where Self.isNull(scalar): items = []
        case .scalar: items = [node]
        default: throw problem(field, node, "expected a list of destinations, not \(Self.kind(of: node))", fix: fix)
        }
        guard !items.isEmpty else { throw problem(field, node, "the list is empty", fix: fix) }
        return try items.map { item in
            guard let text = try text(field, item, expected: "a destination", fix: fix) else {
                throw problem(field, item, "an entry is empty", fix: fix)
            }
            do {
                return try DestinationURL(text)
            } catch let error as FerryError {
                throw problem(field, item, error.message, fix: error.fix ?? fix)
            }
        }
    }

    func unknownKey(_ key: String, at node: Node) -> FerryError {
        let known = ConfigFile.keys.joined(separator: ", ")
        if let suggestion = ConfigFile.suggestion(for: key) {
            return problem(key, node, "not a setting of ferry run; did you mean \(suggestion)?",
                           fix: "rename it to \(suggestion) (the settings are \(known))")
        }
        return problem(key, node, "not a setting of ferry run", fix: "remove it; the settings are \(known)")
    }

    func syntaxError(_ error: YamlError, in yaml: String) -> FerryError {
        let fix = "correct the YAML there (indent with spaces, not tabs; quote values that start with {, [, &, *, ! or %)"
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let while_ = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return FerryError(.configuration,
                              "\(path):\(mark.line):\(mark.column): YAML syntax error at line \(mark.line), column \(mark.column): "
                                  + "\(problem)\(while_)\n" + mark.snippet(from: yaml),
                              fix: fix)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.joined(separator: ", ")
            return FerryError(.configuration,
                              "\(path):\(context.mark.line):\(context.mark.column): \(keys): given more than once",
                              fix: "keep one \(duplicates.first ?? "such") line")
        case .reader(let problem, _, _, _):
            return FerryError(.configuration, "\(path): cannot be read as YAML: \(problem)", fix: "save it as UTF-8 text")
        default:
            return FerryError(.configuration, "\(path): cannot be read as YAML: \(error)", fix: fix)
        }
    }
}

/// `${VAR}`, `${VAR:-default}` and `$$` in config values, the way Docker Compose writes them.
///
/// `${VAR:-default}` takes the default when `VAR` is unset or empty; `${VAR}` with `VAR` unset
/// is an error (an empty `VAR` gives an empty string); `$$` is a literal `$`; any other `$` is
/// kept as is. Defaults are literal text up to the first `}`.
enum EnvironmentInterpolation {
    enum Problem: Error, Equatable {
        /// `${VAR}` without a default and `VAR` not in the environment.
        case unset(variable: String)
        /// `${` with no closing `}`.
        case unterminated
        /// `${…}` whose inside is not `NAME` or `NAME:-default`.
        case badReference(String)
    }

    static func expand(_ text: String, environment: [String: String]) throws(Problem) -> String {
        guard text.contains("$") else { return text }
        var result = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            let next = text.index(after: index)
            guard character == "$", next < text.endIndex else {
                result.append(character)
                index = next
                continue
            }
            if text[next] == "$" {
                result.append("$")
                index = text.index(after: next)
                continue
            }
            guard text[next] == "{" else {
                result.append(character)
                index = next
                continue
            }
            let start = text.index(after: next)
            guard let close = text[start...].firstIndex(of: "}") else { throw .unterminated }
            let reference = text[start..<close]
            let name: Substring
            let fallback: Substring?
            if let separator = reference.range(of: ":-") {
                name = reference[..<separator.lowerBound]
                fallback = reference[separator.upperBound...]
            } else {
                name = reference
                fallback = nil
            }
            guard isVariableName(name) else { throw .badReference(String(reference)) }
            if let value = environment[String(name)], !(value.isEmpty && fallback != nil) {
                result += value
            } else if let fallback {
                result += fallback
            } else {
                throw .unset(variable: String(name))
            }
            index = text.index(after: close)
        }
        return result
    }

    static func isVariableName(_ name: Substring) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }
}

/// Where the admin HTTP server listens: `HOST:PORT` (`[::1]:9187` for IPv6), or `off`.
enum AdminAddress: Equatable, CustomStringConvertible {
    case off
    case listen(host: String, port: Int)

    static let `default` = AdminAddress.listen(host: "127.0.0.1", port: 9187)

    init?(_ text: String) {
        if text.lowercased() == "off" {
            self = .off
            return
        }
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = Substring(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            return nil  // an IPv6 address needs brackets
        }
        let port = text[text.index(after: colon)...]
        guard !host.isEmpty, !host.contains(where: \.isWhitespace), port.allSatisfy(\.isASCII),
              let number = Int(port), (1...65535).contains(number) else { return nil }
        self = .listen(host: String(host), port: number)
    }

    var description: String {
        switch self {
        case .off: "off"
        case .listen(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// What `ferry run` runs with: the flags given, over the config file, over the defaults.
struct RunSettings: Equatable {
    static let defaultName = "main"
    static let defaultStatePath = "./ferry-state.db"

    var name: String
    /// The source connection string, `${…}` already interpolated when it came from the file.
    var source: String
    /// Where `source` came from, for messages: `--source` or `ferry.yaml: source`.
    var sourceOrigin: String
    var tables: [String]
    var publication: String?
    var slot: String?
    var snapshot: PipelineConfiguration.SnapshotMode
    var snapshotParallelism: Int
    var once: Bool
    var statePath: String
    var admin: AdminAddress
    var logLevel: Logger.Level
    var logFormat: LogFormat = .text
    var heartbeat: Int?
    var resnapshotOnSlotLoss = false
    var destinations: [DestinationURL]
}

extension RunSettings {
    /// The source parsed the way libpq does (`PG*` variables apply); a mistake in a source from
    /// the config file is reported against the file and its `source:` setting.
    func connectionConfiguration() throws -> ConnectionConfiguration {
        do {
            return try ConnectionConfiguration.parseUsingProcessEnvironment(source)
        } catch {
            guard sourceOrigin != "--source" else { throw error }
            throw FerryError(.configuration, "\(sourceOrigin): \(error.field): \(error.message)", fix: error.fix)
        }
    }
}
