import Foundation
import Testing
import PostgresWire

@Suite struct PasswordFileTests {
    @Test func firstMatchingLineWinsWithWildcards() {
        let file = PasswordFile(contents: """
            # comment line:with:colons:x:y
            db.example.com:5432:app:alice:specific
            db.example.com:*:*:alice:any-db
            *:*:*:*:fallback

            """)
        #expect(file.entries.count == 3)
        #expect(file.password(host: "db.example.com", port: 5432, database: "app", user: "alice") == "specific")
        #expect(file.password(host: "db.example.com", port: 6000, database: "other", user: "alice") == "any-db")
        #expect(file.password(host: "elsewhere", port: 5432, database: "app", user: "bob") == "fallback")
    }

    @Test func escapedColonsAndBackslashes() {
        let file = PasswordFile(contents: #"""
            fe80\:\:1:5432:db\\name:u:pa\:ss\\word
            host:5432:db:u:with:trailing:fields
            *:*:*:star:x\*y
            \*:*:*:literal:star-host
            """#)
        #expect(file.password(host: "fe80::1", port: 5432, database: #"db\name"#, user: "u") == #"pa:ss\word"#)
        // The password ends at the next unescaped colon, like libpq.
        #expect(file.password(host: "host", port: 5432, database: "db", user: "u") == "with")
        #expect(file.password(host: "any", port: 1, database: "d", user: "star") == "x*y")
        // `\*` is a literal asterisk, not a wildcard.
        #expect(file.password(host: "h", port: 1, database: "d", user: "literal") == nil)
        #expect(file.password(host: "*", port: 1, database: "d", user: "literal") == "star-host")
    }

    @Test func skipsShortLinesAndHandlesCRLF() {
        let file = PasswordFile(contents: "a:b:c\r\nh:1:d:u\r\nh:1:d:u:\r\nh:1:d:u:good\r\n")
        #expect(file.entries.count == 1)
        #expect(file.password(host: "h", port: 1, database: "d", user: "u") == "good")
    }

    @Test func usedThroughParseWithTheDefaultPath() throws {
        let seen = LockedPaths()
        let loader = PasswordFileLoader { path in
            seen.append(path)
            return .loaded(contents: "db:5432:app:alice:s3cret\n", permissions: 0o600)
        }
        let config = try ConnectionConfiguration.parse("postgres://alice@db/app", environment: ["HOME": "/home/alice"], passwordFile: loader)
        #expect(seen.paths == ["/home/alice/.pgpass"])
        #expect(config.password == nil)
        #expect(config.effectivePassword == "s3cret")
        #expect(config.passwordFileStatus == .used(path: "/home/alice/.pgpass"))
    }

    @Test func pgpassfileAndPassfileChooseThePath() throws {
        let seen = LockedPaths()
        let loader = PasswordFileLoader { path in
            seen.append(path)
            return .notFound
        }
        let fromEnvironment = try ConnectionConfiguration.parse("user=u", environment: ["HOME": "/h", "PGPASSFILE": "/env/pgpass"], passwordFile: loader)
        let fromString = try ConnectionConfiguration.parse("user=u passfile=/explicit/pgpass", environment: ["HOME": "/h", "PGPASSFILE": "/env/pgpass"], passwordFile: loader)
        #expect(seen.paths == ["/env/pgpass", "/explicit/pgpass"])
        #expect(fromEnvironment.passwordFileStatus == .notFound(path: "/env/pgpass"))
        #expect(fromString.passwordFileStatus == .notFound(path: "/explicit/pgpass"))
    }

    @Test func groupOrWorldReadableFileIsIgnoredWithAReason() throws {
        let config = try ConnectionConfiguration.parse("host=db user=u", environment: ["HOME": "/h"],
                                                       passwordFile: .contents("*:*:*:*:pw\n", permissions: 0o644))
        #expect(config.effectivePassword == nil)
        guard case .ignored(let path, let reason) = config.passwordFileStatus else {
            Issue.record("expected the file to be ignored, got \(config.passwordFileStatus)")
            return
        }
        #expect(path == "/h/.pgpass")
        #expect(reason.contains("0644"))
        #expect(reason.contains("chmod 0600"))
        for permissions: UInt16 in [0o640, 0o604, 0o620, 0o610, 0o601] {
            let loose = try ConnectionConfiguration.parse("user=u", environment: ["HOME": "/h"], passwordFile: .contents("*:*:*:*:pw", permissions: permissions))
            #expect(loose.effectivePassword == nil, "mode \(String(permissions, radix: 8))")
        }
        for permissions: UInt16? in [0o600, 0o400, 0o700, nil] {
            let strict = try ConnectionConfiguration.parse("user=u", environment: ["HOME": "/h"], passwordFile: .contents("*:*:*:*:pw", permissions: permissions))
            #expect(strict.effectivePassword == "pw")
        }
    }

    @Test func otherLoaderOutcomes() throws {
        let notPlain = try ConnectionConfiguration.parse("user=u", environment: ["HOME": "/h"], passwordFile: PasswordFileLoader { _ in .notRegularFile })
        #expect(notPlain.passwordFileStatus == .ignored(path: "/h/.pgpass", reason: "it is not a plain file"))
        let noMatch = try ConnectionConfiguration.parse("user=u", environment: ["HOME": "/h"], passwordFile: .contents("other:*:*:*:pw"))
        #expect(noMatch.passwordFileStatus == .noMatchingEntry(path: "/h/.pgpass"))
        let noHome = try ConnectionConfiguration.parse("user=u", environment: [:], passwordFile: .contents("*:*:*:*:pw"))
        #expect(noHome.passwordFileStatus == .notConsulted)
        #expect(noHome.effectivePassword == nil)
    }

    @Test func anExplicitPasswordSkipsTheFile() throws {
        let config = try ConnectionConfiguration.parse("user=u password=given", environment: ["HOME": "/h"], passwordFile: .contents("*:*:*:*:file"))
        #expect(config.passwordFileStatus == .notConsulted)
        #expect(config.effectivePassword == "given")
        let viaEnvironment = try ConnectionConfiguration.parse("user=u", environment: ["HOME": "/h", "PGPASSWORD": "env"], passwordFile: .contents("*:*:*:*:file"))
        #expect(viaEnvironment.effectivePassword == "env")
    }

    @Test func matchesEachEndpointSeparatelyAndSocketsAsLocalhost() throws {
        let contents = """
            h1:5432:db:u:one
            h2:5433:db:u:two
            localhost:5432:db:u:local
            /custom/dir:5432:db:u:custom
            """
        let multi = try ConnectionConfiguration.parse("postgres://u@h1,h2:5433,h3/db", environment: ["HOME": "/h"], passwordFile: .contents(contents))
        #expect(multi.endpoints.map(\.passwordFromFile) == ["one", "two", nil])
        #expect(multi.password(for: multi.endpoints[1]) == "two")
        #expect(multi.passwordFileStatus == .used(path: "/h/.pgpass"))
        let socket = try ConnectionConfiguration.parse("host=/var/run/postgresql user=u dbname=db", environment: ["HOME": "/h"], passwordFile: .contents(contents))
        #expect(socket.effectivePassword == "local")
        let custom = try ConnectionConfiguration.parse("host=/custom/dir user=u dbname=db", environment: ["HOME": "/h"], passwordFile: .contents(contents))
        #expect(custom.effectivePassword == "custom")
        let addressOnly = try ConnectionConfiguration.parse("hostaddr=10.0.0.9 user=u dbname=db", environment: ["HOME": "/h"],
                                                            passwordFile: .contents("10.0.0.9:5432:db:u:byaddr"))
        #expect(addressOnly.effectivePassword == "byaddr")
    }

    @Test func fileSystemLoaderReportsRealPermissions() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-pgpass-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("pgpass").path
        try "*:*:*:*:fromdisk\n".write(toFile: path, atomically: false, encoding: .utf8)

        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        #expect(PasswordFileLoader.fileSystem.load(path) == .loaded(contents: "*:*:*:*:fromdisk\n", permissions: 0o600))
        let strict = try ConnectionConfiguration.parse("user=u passfile=\(path)", passwordFile: .fileSystem)
        #expect(strict.effectivePassword == "fromdisk")

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let loose = try ConnectionConfiguration.parse("user=u passfile=\(path)", passwordFile: .fileSystem)
        #expect(loose.effectivePassword == nil)
        #expect(loose.passwordFileStatus.description.contains("group or world access"))

        #expect(PasswordFileLoader.fileSystem.load(directory.path) == .notRegularFile)
        #expect(PasswordFileLoader.fileSystem.load(directory.appendingPathComponent("missing").path) == .notFound)
    }
}

/// Collects the paths a loader was asked for (the loader is `@Sendable`).
final class LockedPaths: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ path: String) { lock.withLock { storage.append(path) } }
    var paths: [String] { lock.withLock { storage } }
}
