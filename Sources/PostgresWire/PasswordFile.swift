import Foundation

/// The libpq password file (`~/.pgpass`, `PGPASSFILE`, or `passfile=`).
///
/// Lines are `hostname:port:database:username:password`. Each of the first four fields is a
/// literal or `*` (matches anything); `\:` and `\\` escape a colon or backslash in any field,
/// the password included. Empty lines and lines starting with `#` are skipped, as are lines with
/// fewer than five fields. The first matching line wins.
public struct PasswordFile: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        /// `nil` for the wildcard `*`.
        public var host: String?
        public var port: String?
        public var database: String?
        public var user: String?
        public var password: String

        func matches(host: String, port: String, database: String, user: String) -> Bool {
            (self.host == nil || self.host == host) && (self.port == nil || self.port == port)
                && (self.database == nil || self.database == database) && (self.user == nil || self.user == user)
        }
    }

    public var entries: [Entry]

    public init(contents: String) {
        var entries: [Entry] = []
        // "\r\n" is one Character in Swift: split on both forms.
        for rawLine in contents.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = rawLine
            while line.last == "\r" { line = line.dropLast() }
            if line.isEmpty || line.first == "#" { continue }
            if let entry = Self.parse(line) { entries.append(entry) }
        }
        self.entries = entries
    }

    /// The password of the first line matching the connection, or nil.
    public func password(host: String, port: Int, database: String, user: String) -> String? {
        let port = String(port)
        return entries.first { $0.matches(host: host, port: port, database: database, user: user) }?.password
    }

    /// Splits one line into four match fields and the password. A field is a wildcard only when
    /// it is exactly an unescaped `*`; the password runs to the next unescaped `:` or line end.
    static func parse(_ line: Substring) -> Entry? {
        var fields: [(text: String, wildcard: Bool)] = []
        var current = ""
        var raw = ""
        var escaping = false
        var characters = line.unicodeScalars.makeIterator()
        var passwordStarted = false
        var password = ""
        while let character = characters.next() {
            if passwordStarted {
                if escaping {
                    password.unicodeScalars.append(character)
                    escaping = false
                } else if character == "\\" {
                    escaping = true
                } else if character == ":" {
                    break
                } else {
                    password.unicodeScalars.append(character)
                }
                continue
            }
            if escaping {
                current.unicodeScalars.append(character)
                raw.unicodeScalars.append(character)
                escaping = false
            } else if character == "\\" {
                escaping = true
                raw.unicodeScalars.append(character)
            } else if character == ":" {
                fields.append((current, raw == "*"))
                current = ""
                raw = ""
                if fields.count == 4 { passwordStarted = true }
            } else {
                current.unicodeScalars.append(character)
                raw.unicodeScalars.append(character)
            }
        }
        // A trailing lone backslash is kept literally, as libpq does.
        if escaping && passwordStarted { password += "\\" }
        guard fields.count == 4, passwordStarted, !password.isEmpty else { return nil }
        func value(_ index: Int) -> String? { fields[index].wildcard ? nil : fields[index].text }
        return Entry(host: value(0), port: value(1), database: value(2), user: value(3), password: password)
    }
}

/// Reads a password file. Injected into ``ConnectionConfiguration/parse(_:environment:passwordFile:systemUserName:)``
/// so that tests never touch the disk and the permission check stays testable.
public struct PasswordFileLoader: Sendable {
    public enum Result: Sendable, Hashable {
        case notFound
        /// A directory, socket, … — libpq ignores it with a warning.
        case notRegularFile
        case unreadable(reason: String)
        /// The contents, and the POSIX permission bits if known (nil: not checked).
        case loaded(contents: String, permissions: UInt16?)
    }

    public var load: @Sendable (_ path: String) -> Result

    public init(_ load: @escaping @Sendable (_ path: String) -> Result) {
        self.load = load
    }

    /// Never finds a file.
    public static let none = PasswordFileLoader { _ in .notFound }

    /// The same contents and permissions whatever the path (for tests).
    public static func contents(_ contents: String, permissions: UInt16? = 0o600) -> PasswordFileLoader {
        PasswordFileLoader { _ in .loaded(contents: contents, permissions: permissions) }
    }

    /// Reads from disk with `FileManager`, reporting the file's permission bits.
    public static let fileSystem = PasswordFileLoader { path in
        let manager = FileManager.default
        guard let attributes = try? manager.attributesOfItem(atPath: path) else { return .notFound }
        if let type = attributes[.type] as? FileAttributeType, type != .typeRegular { return .notRegularFile }
        let permissions = (attributes[.posixPermissions] as? NSNumber).map { UInt16(truncatingIfNeeded: $0.intValue) }
        do {
            let contents = try String(contentsOfFile: path, encoding: .utf8)
            return .loaded(contents: contents, permissions: permissions)
        } catch {
            return .unreadable(reason: "\(error)")
        }
    }
}

/// What happened with the password file while resolving a configuration.
public enum PasswordFileStatus: Sendable, Hashable, CustomStringConvertible {
    /// A password was given (connection string or `PGPASSWORD`), or there is no home directory
    /// and no `PGPASSFILE`/`passfile`.
    case notConsulted
    /// A line matched (for at least one host).
    case used(path: String)
    case noMatchingEntry(path: String)
    case notFound(path: String)
    /// The file exists but was not used; `reason` says why and how to fix it.
    case ignored(path: String, reason: String)

    public var description: String {
        switch self {
        case .notConsulted: "password file not consulted"
        case .used(let path): "password taken from \(path)"
        case .noMatchingEntry(let path): "no line of \(path) matches this connection"
        case .notFound(let path): "no password file at \(path)"
        case .ignored(let path, let reason): "password file \(path) ignored: \(reason)"
        }
    }
}

extension PasswordFile.Entry: CustomStringConvertible, CustomReflectable {
    /// `host:port:database:user:****` — never the password.
    public var description: String {
        [host, port, database, user].map { $0 ?? "*" }.joined(separator: ":") + ":****"
    }
    public var customMirror: Mirror { Mirror(self, children: ["entry": description], displayStyle: .struct) }
}

extension PasswordFile: CustomStringConvertible, CustomReflectable {
    public var description: String { "PasswordFile(\(entries.map(\.description)))" }
    public var customMirror: Mirror { Mirror(self, children: ["entries": entries.map(\.description)], displayStyle: .struct) }
}
