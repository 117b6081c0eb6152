import ArgumentParser
import FerryCore
import FerrySQLite
import FerryTestSupport
import Foundation
import Logging
import Testing
@testable import FerryCLI

/// A scratch directory for one test, removed afterwards.
private struct ScratchDirectory: ~Copyable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

private func parse(_ yaml: String, environment: [String: String] = [:]) throws -> ConfigFile {
    try ConfigFile(yaml: yaml, path: "ferry.yaml", environment: environment)
}

/// The `ferry run` command `arguments` parse to.
private func runCommand(_ arguments: [String]) throws -> Ferry.Run {
    let command = try Ferry.parseAsRoot(["run"] + arguments)
    return try #require(command as? Ferry.Run)
}

@Suite struct ConfigFileParsingTests {
    @Test func parsesAFullFile() throws {
        let file = try parse("""
            name: orders_sync
            source: postgres://replicator:${PGPASSWORD}@db.example.com/shop?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem
            tables: [public.orders, public.items]     # or a comma-separated string
            publication: ferry_orders
            slot: ferry_orders_slot
            snapshot: never
            snapshot_parallelism: 3
            once: true
            state: ./ferry-state.db
            admin: 127.0.0.1:9187
            log_level: debug
            destinations:
              - sqlite:./replica.db
              - jsonl:./changes.jsonl
              - "-"
            """, environment: ["PGPASSWORD": "s3cret"])
        var expected = ConfigFile(path: "ferry.yaml")
        expected.name = "orders_sync"
        expected.source = "postgres://replicator:s3cret@db.example.com/shop?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem"
        expected.tables = ["public.orders", "public.items"]
        expected.publication = "ferry_orders"
        expected.slot = "ferry_orders_slot"
        expected.snapshot = .never
        expected.snapshotParallelism = 3
        expected.once = true
        expected.state = "./ferry-state.db"
        expected.admin = .listen(host: "127.0.0.1", port: 9187)
        expected.logLevel = .debug
        expected.destinations = [.sqlite(path: "./replica.db"), .jsonLinesFile(path: "./changes.jsonl"), .jsonLinesStdout]
        #expect(file == expected)
    }

    @Test func tablesMayBeACommaSeparatedStringAndAdminOff() throws {
        let file = try parse("""
            source: postgres://u@h/db
            tables: public.orders, public.items,sales.*
            admin: off
            once: no
            """)
        #expect(file.tables == ["public.orders", "public.items", "sales.*"])
        #expect(file.admin == .off)
        #expect(file.once == false)
    }

    @Test func nullOrEmptyValuesLeaveSettingsUnsetAndAnEmptyFileSetsNothing() throws {
        let file = try parse("""
            source: postgres://u@h/db
            publication:
            slot: ~
            state: ""
            name: ${UNSET_NAME:-}
            tables: null
            """)
        #expect(file.publication == nil && file.slot == nil && file.state == nil && file.name == nil && file.tables == nil)
        #expect(try parse("") == ConfigFile(path: "ferry.yaml"))
        #expect(try parse("# only a comment\n") == ConfigFile(path: "ferry.yaml"))
    }

    @Test func yamlBooleanLookalikesStayTheirText() throws {
        // YAML 1.1 would read `off` and `no` as false; Ferry reads each value by what the setting expects.
        let file = try parse("name: no\nadmin: off\nsource: yes\n")
        #expect(file.name == "no")
        #expect(file.admin == .off)
        #expect(file.source == "yes")
    }
}

@Suite struct ConfigFileInterpolationTests {
    let environment = ["HOST": "db.example.com", "EMPTY": "", "PORT": "5433"]

    func expand(_ text: String) throws(EnvironmentInterpolation.Problem) -> String {
        try EnvironmentInterpolation.expand(text, environment: environment)
    }

    @Test func replacesSetVariables() throws {
        #expect(try expand("postgres://u@${HOST}:${PORT}/db") == "postgres://u@db.example.com:5433/db")
        #expect(try expand("${EMPTY}") == "")
        #expect(try expand("no variables") == "no variables")
    }

    @Test func defaultsApplyWhenUnsetOrEmpty() throws {
        #expect(try expand("${MISSING:-localhost}") == "localhost")
        #expect(try expand("${EMPTY:-fallback}") == "fallback")
        #expect(try expand("${HOST:-fallback}") == "db.example.com")
        #expect(try expand("${MISSING:-}") == "")
        #expect(try expand("${MISSING:-a:b/c}") == "a:b/c")
    }

    @Test func dollarDollarIsALiteralDollar() throws {
        #expect(try expand("pa$$word") == "pa$word")
        #expect(try expand("$${HOST}") == "${HOST}")
        #expect(try expand("$$$${HOST}") == "$$" + "{HOST}")
        #expect(try expand("cost: 5$ or $5") == "cost: 5$ or $5")  // a lone $ stays
        #expect(try expand("$") == "$")
    }

    @Test func unsetWithoutDefaultAndMalformedReferencesFail() {
        #expect(throws: EnvironmentInterpolation.Problem.unset(variable: "MISSING")) { try expand("x${MISSING}y") }
        #expect(throws: EnvironmentInterpolation.Problem.unterminated) { try expand("${HOST") }
        #expect(throws: EnvironmentInterpolation.Problem.badReference("1X")) { try expand("${1X}") }
        #expect(throws: EnvironmentInterpolation.Problem.badReference("")) { try expand("${}") }
        #expect(throws: EnvironmentInterpolation.Problem.badReference("A-b")) { try expand("${A-b}") }
    }

    @Test func everyStringValueOfAFileIsInterpolated() throws {
        let file = try parse("""
            name: ${PIPELINE}
            source: postgres://u@${HOST}/db
            tables: ["${SCHEMA}.orders", "${SCHEMA:-x}.items"]
            snapshot_parallelism: ${PARALLEL:-2}
            once: ${ONCE}
            state: ${STATE_DIR:-/var/lib/ferry}/state.db
            destinations: ["sqlite:${DATA}/replica.db"]
            """, environment: ["PIPELINE": "p1", "HOST": "h", "SCHEMA": "sales", "ONCE": "true", "DATA": "/data"])
        #expect(file.name == "p1")
        #expect(file.source == "postgres://u@h/db")
        #expect(file.tables == ["sales.orders", "sales.items"])
        #expect(file.snapshotParallelism == 2)
        #expect(file.once == true)
        #expect(file.state == "/var/lib/ferry/state.db")
        #expect(file.destinations == [.sqlite(path: "/data/replica.db")])
    }

    @Test func anUnsetVariableNamesTheVariableAndTheSetting() throws {
        let error = try #require(#expect(throws: FerryError.self) {
            try parse("name: x\nsource: postgres://replicator:${PGPASSWORD}@db/shop\n")
        })
        #expect(error.kind == .configuration)
        #expect(error.message.contains("ferry.yaml:2:9: source: environment variable PGPASSWORD is not set"), "\(error)")
        #expect(error.fix?.contains("${PGPASSWORD:-") == true && error.fix?.contains("export PGPASSWORD") == true, "\(error)")

        let inList = try #require(#expect(throws: FerryError.self) {
            try parse("destinations:\n  - sqlite:${DATA}/r.db\n")
        })
        #expect(inList.message.contains("destinations: environment variable DATA is not set"), "\(inList)")
    }
}

@Suite struct ConfigFileErrorTests {
    /// A file with a mistake, and what the message must say: the setting, then the problem.
    @Test(arguments: [
        ("tabels: public.orders", ["ferry.yaml:1:1", "tabels", "did you mean tables?"]),
        ("snapshot-parallelism: 2", ["snapshot-parallelism", "did you mean snapshot_parallelism?"]),
        ("to: [sqlite:x.db]", ["to:", "did you mean destinations?"]),
        ("colour: blue", ["colour: not a setting of ferry run"]),
        ("once: maybe", ["ferry.yaml:1:7: once: expected true or false, not \"maybe\""]),
        ("once: [true]", ["once: expected true or false, not a list"]),
        ("snapshot: sometimes", ["snapshot: expected initial or never, not \"sometimes\""]),
        ("snapshot_parallelism: four", ["snapshot_parallelism: expected a whole number", "\"four\""]),
        ("snapshot_parallelism: 0", ["snapshot_parallelism: expected a whole number of at least 1"]),
        ("admin: localhost", ["admin: expected HOST:PORT or off, not \"localhost\""]),
        ("admin: 127.0.0.1:99999", ["admin: expected HOST:PORT or off"]),
        ("log_level: loud", ["log_level: expected one of trace, debug, info"]),
        ("destinations: []", ["destinations: the list is empty"]),
        ("destinations:", ["destinations: the list is empty"]),
        ("destinations: [nats://broker:4222]", ["destinations: destination nats: is not available"]),
        ("destinations: [kafka://broker]", ["destinations: destination kafka://broker: broker \"broker\" has no valid port"]),
        ("destinations: [\"kafka://b:9092?compression=brotli\"]", ["compression \"brotli\" is unknown"]),
        ("destinations:\n  - sqlite:a.db\n  - ftp://x", ["ferry.yaml:3:5: destinations:", "\"ftp://x\" is not a destination"]),
        ("destinations: {sqlite: a.db}", ["destinations: expected a list of destinations, not a mapping"]),
        ("name: [a, b]", ["name: expected a string, not a list"]),
        ("tables: {public: orders}", ["tables: expected a list of tables, not a mapping"]),
        ("- source: x", ["ferry.yaml:1:1: expected settings as `key: value` lines, found a list"]),
        ("source: x\nsource: y", ["source: given more than once"]),
        ("source: postgres://u@h/db\ntables: [public.orders\nonce: true", ["YAML syntax error at line", "column"]),
        ("source: x\n\tonce: true", ["YAML syntax error at line 2, column"]),
        ("source: ${HOST", ["source: a ${ is not closed by }"]),
    ] as [(String, [String])])
    func namesTheSettingAndTheFix(_ yaml: String, _ expected: [String]) throws {
        let error = try #require(#expect(throws: FerryError.self) { try parse(yaml) })
        #expect(error.kind == .configuration)
        #expect(error.fix?.isEmpty == false, "no fix for \(yaml)")
        for text in expected {
            #expect(error.message.contains(text), "expected \"\(text)\" in:\n\(error)")
        }
    }

    @Test func theSyntaxErrorPointsAtTheLine() throws {
        let error = try #require(#expect(throws: FerryError.self) {
            try parse("source: x\nname: a: b\n")
        })
        #expect(error.message.hasPrefix("ferry.yaml:2:"), "\(error)")
        #expect(error.message.contains("name: a: b\n"), "the snippet shows the line:\n\(error)")
    }

    @Test func suggestionsForMistypedSettings() {
        #expect(ConfigFile.suggestion(for: "tabels") == "tables")
        #expect(ConfigFile.suggestion(for: "log-level") == "log_level")
        #expect(ConfigFile.suggestion(for: "Source") == "source")
        #expect(ConfigFile.suggestion(for: "destination") == "destinations")
        #expect(ConfigFile.suggestion(for: "snapshot_paralelism") == "snapshot_parallelism")
        #expect(ConfigFile.suggestion(for: "publicaton") == "publication")
        #expect(ConfigFile.suggestion(for: "to") == "destinations")
        #expect(ConfigFile.suggestion(for: "xyz") == nil)
        #expect(ConfigFile.suggestion(for: "password") == nil)
    }

    @Test func adminAddresses() {
        #expect(AdminAddress("off") == .off)
        #expect(AdminAddress("0.0.0.0:9187") == .listen(host: "0.0.0.0", port: 9187))
        #expect(AdminAddress("[::1]:9187") == .listen(host: "::1", port: 9187))
        #expect(AdminAddress("localhost:80")?.description == "localhost:80")
        #expect(AdminAddress("[::1]:80")?.description == "[::1]:80")
        for bad in ["", "9187", ":9187", "host:", "host:port", "::1:9187", "h:0", "h:70000", "a b:1"] {
            #expect(AdminAddress(bad) == nil, "\(bad) was accepted")
        }
    }

    @Test func aMissingOrUnreadableFileIsNamed() throws {
        let scratch = try ScratchDirectory()
        let missing = scratch.path + "/nope.yaml"
        let error = try #require(#expect(throws: FerryError.self) {
            try ConfigFile.load(path: missing, environment: [:])
        })
        #expect(error.message.contains(missing) && error.message.contains("does not exist"), "\(error)")

        let directory = try #require(#expect(throws: FerryError.self) {
            try ConfigFile.load(path: scratch.path, environment: [:])
        })
        #expect(directory.message.contains(scratch.path) && directory.message.contains("directory"), "\(directory)")

        let binary = scratch.path + "/binary.yaml"
        FileManager.default.createFile(atPath: binary, contents: Data([0x73, 0x3a, 0x20, 0xff, 0xfe, 0x0a]))
        let notText = try #require(#expect(throws: FerryError.self) {
            try ConfigFile.load(path: binary, environment: [:])
        })
        #expect(notText.message.contains(binary), "\(notText)")

        // Through the command: the run fails before anything else, naming the file.
        let run = try runCommand(["--config", missing])
        let fromRun = try #require(#expect(throws: FerryError.self) { try run.settings(environment: [:]) })
        #expect(fromRun.message.contains(missing))
    }

    @Test func theFileCarriesItsPathIntoEveryMessage() throws {
        let scratch = try ScratchDirectory()
        let path = try scratch.write("ferry.yaml", "source: postgres://u@h/db\nonce: sometimes\n")
        let error = try #require(#expect(throws: FerryError.self) { try ConfigFile.load(path: path, environment: [:]) })
        #expect(error.message.hasPrefix("\(path):2:7: once:"), "\(error)")
    }
}

@Suite struct ConfigFileRunSettingsTests {
    @Test func flagsOverrideTheFileAndTheFileOverridesTheDefaults() throws {
        let scratch = try ScratchDirectory()
        let path = try scratch.write("ferry.yaml", """
            name: from_file
            source: postgres://file@h/db
            tables: public.a, public.b
            publication: file_pub
            slot: file_slot
            snapshot: never
            snapshot_parallelism: 2
            once: true
            state: file-state.db
            admin: off
            log_level: debug
            destinations: [sqlite:file.db, jsonl:file.jsonl]
            """)
        let fileOnly = try runCommand(["--config", path]).settings(environment: [:])
        #expect(fileOnly == RunSettings(
            name: "from_file", source: "postgres://file@h/db", sourceOrigin: "\(path): source",
            tables: ["public.a", "public.b"], publication: "file_pub", slot: "file_slot", snapshot: .never,
            snapshotParallelism: 2, once: true, statePath: "file-state.db", admin: .off, logLevel: .debug,
            destinations: [.sqlite(path: "file.db"), .jsonLinesFile(path: "file.jsonl")]))

        let overridden = try runCommand([
            "--config", path, "--name", "from_flag", "--source", "postgres://flag@h/db", "--tables", "public.c",
            "--publication", "flag_pub", "--slot", "flag_slot", "--snapshot", "initial", "--snapshot-parallelism", "8",
            "--no-once", "--state", "flag-state.db", "--admin", "0.0.0.0:1234", "--log-level", "error", "--to", "-",
        ]).settings(environment: [:])
        #expect(overridden == RunSettings(
            name: "from_flag", source: "postgres://flag@h/db", sourceOrigin: "--source",
            tables: ["public.c"], publication: "flag_pub", slot: "flag_slot", snapshot: .initial,
            snapshotParallelism: 8, once: false, statePath: "flag-state.db", admin: .listen(host: "0.0.0.0", port: 1234),
            logLevel: .error, destinations: [.jsonLinesStdout]))

        // Only some flags: those win, the rest come from the file.
        let partly = try runCommand(["--config", path, "--name", "other", "--to", "sqlite:x.db"]).settings(environment: [:])
        #expect(partly.name == "other")
        #expect(partly.destinations == [.sqlite(path: "x.db")])
        #expect(partly.tables == ["public.a", "public.b"] && partly.once && partly.snapshot == .never)
    }

    @Test func withoutAFileFlagsAndDefaultsWorkAsBefore() throws {
        let settings = try runCommand(["--source", "postgres://u@h/db", "--tables", "public.a,public.b", "--tables", "public.c"])
            .settings(environment: [:])
        #expect(settings == RunSettings(
            name: "main", source: "postgres://u@h/db", sourceOrigin: "--source", tables: ["public.a", "public.b", "public.c"],
            publication: nil, slot: nil, snapshot: .initial, snapshotParallelism: 4, once: false,
            statePath: "./ferry-state.db", admin: .listen(host: "127.0.0.1", port: 9187), logLevel: .info,
            destinations: [.sqlite(path: "./ferry-replica.db")]))
        #expect(try runCommand(["--source", "x", "--once"]).settings(environment: [:]).once)
    }

    @Test func theSourceComesFromAFlagOrTheFile() throws {
        #expect(throws: (any Error).self) { try Ferry.parseAsRoot(["run"]) }  // neither
        #expect(throws: (any Error).self) { try Ferry.parseAsRoot(["run", "--source", "x", "--admin", "nowhere"]) }

        let scratch = try ScratchDirectory()
        let path = try scratch.write("ferry.yaml", "name: n\ntables: public.t\n")
        let error = try #require(#expect(throws: FerryError.self) {
            try runCommand(["--config", path]).settings(environment: [:])
        })
        #expect(error.message.contains("\(path): source: missing"), "\(error)")
        #expect(error.fix?.contains("--source") == true)
        #expect(try runCommand(["--config", path, "--source", "postgres://u@h/db"]).settings(environment: [:]).source
            == "postgres://u@h/db")
    }

    @Test func aBadSourceInTheFileNamesTheFileAndTheSetting() async throws {
        let scratch = try ScratchDirectory()
        let path = try scratch.write("ferry.yaml", """
            source: postgres://u@localhost/db?sslmode=strict
            tables: public.t
            state: \(scratch.path)/state.db
            destinations: [sqlite:\(scratch.path)/replica.db]
            """)
        var run: any AsyncParsableCommand = try runCommand(["--config", path])
        let error = try #require(await #expect(throws: FerryError.self) { try await run.run() })
        #expect(error.message.contains("\(path): source: sslmode"), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/state.db"), "nothing starts before the source is valid")
    }

    @Test func helpDocumentsTheConfigFileAndItsPrecedence() {
        let help = Ferry.Run.helpMessage()
        #expect(help.contains("--config <path>"))
        #expect(help.contains("override the file"))
    }
}

@Suite struct ConfigFileEndToEndTests {
    @Test func runWithAConfigFileCopiesTheTableIntoSQLite() async throws {
        try await withTestDatabase(.trust, prefix: "config") { db in
            try await db.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1,'a')")
            let scratch = try ScratchDirectory()
            let config = try scratch.write("ferry.yaml", """
                # ferry run --config for the end-to-end test
                name: \(db.name)
                source: "\(db.url)"
                tables: public.t
                snapshot: initial
                snapshot_parallelism: 2
                once: true
                state: ${FERRY_CONFIG_TEST_SURELY_UNSET:-\(scratch.path)}/state.db
                admin: off
                log_level: warning
                destinations:
                  - sqlite:\(scratch.path)/replica.db
                """)
            let command = try Ferry.parseAsRoot(["run", "--config", config])
            var run = try #require(command as? any AsyncParsableCommand)
            try await run.run()

            let replica = try SQLiteConnection(path: scratch.path + "/replica.db", readOnly: true)
            defer { replica.close() }
            #expect(try replica.query("SELECT id, v FROM \"public.t\"") == [[.integer(1), .text("a")]])
            #expect(FileManager.default.fileExists(atPath: scratch.path + "/state.db"))
            let slot = try await db.psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'ferry_\(db.name)'")
            #expect(slot == "f")
        }
    }
}
