import FerryCore
import FerryTestSupport
import Logging
import PostgresReplication
import PostgresWire
import Testing

@Suite struct PreflightTests {
    func report(_ database: TestDatabase, url: String? = nil, tables: [String] = [], publication: String? = "ferry_main",
                slot: String? = "ferry_main", lagWarningBytes: Int64 = 1 << 30) async throws -> PreflightReport {
        var preflight = Preflight(source: try ConnectionConfiguration.parse(url ?? database.url), tables: tables,
                                  publication: publication, slot: slot)
        preflight.lagWarningBytes = lagWarningBytes
        return await preflight.run()
    }

    @Test func aServerWithoutLogicalWALSaysHowToEnableIt() async throws {
        try await withTestDatabase(.walLevelReplica, prefix: "check") { database in
            let report = try await report(database)
            let finding = try #require(report.findings("wal_level").first)
            #expect(finding.severity == .error)
            #expect(finding.message.contains("wal_level = replica"))
            #expect(finding.fix?.contains("wal_level = logical") == true)
            #expect(finding.fix?.contains("Neon") == true)
            #expect(report.exitStatus == 2)
        }
    }

    @Test func aHealthySourceIsReady() async throws {
        try await withTestDatabase(.trust, prefix: "check") { database in
            try await database.psql("CREATE TABLE orders (id int PRIMARY KEY, n int)")
            let report = try await report(database, tables: ["public.orders"])
            #expect(report.findings("wal_level").first?.severity == .ok)
            #expect(report.findings("replication_role").first?.severity == .ok)
            #expect(report.findings("replication_connection").first?.severity == .ok)
            #expect(report.findings("table_identity").map(\.severity) == [.ok])
            #expect(report.findings("slot").first?.severity == .info)
            #expect(report.worst <= .info, "\(report.findings.filter { $0.severity > .info })")
            #expect(report.exitStatus == 0)
        }
    }

    @Test func aRoleWithoutReplicationIsAnErrorWithTheGrant() async throws {
        try await withTestDatabase(.trust, prefix: "check") { database in
            let role = "plain_\(database.name)"
            try await database.psql("CREATE ROLE \(role) LOGIN; CREATE TABLE t (id int PRIMARY KEY)")
            let url = database.server.url(database: database.name, user: role)
            let report = try await report(database, url: url, tables: ["public.t"])
            let finding = try #require(report.findings("replication_role").first)
            #expect(finding.severity == .error)
            #expect(finding.fix?.contains("ALTER ROLE \"\(role)\" WITH REPLICATION") == true)
            let privilege = try #require(report.findings("table_privilege").first)
            #expect(privilege.fix?.contains("GRANT SELECT ON \"public\".\"t\"") == true)
            try await database.psql("DROP ROLE \(role)")
        }
    }

    @Test func tablesWithoutAKeyAreErrorsAndTOASTColumnsAreExplained() async throws {
        try await withTestDatabase(.trust, prefix: "check") { database in
            try await database.psql("""
                CREATE TABLE keyed (id int PRIMARY KEY, body text);
                CREATE TABLE loose (a int, b int);
                CREATE TABLE full_identity (a int); ALTER TABLE full_identity REPLICA IDENTITY FULL;
                CREATE TABLE nothing_identity (a int PRIMARY KEY); ALTER TABLE nothing_identity REPLICA IDENTITY NOTHING;
                """)
            let report = try await report(database, tables: ["public.*", "public.missing"])
            let identity = Dictionary(uniqueKeysWithValues: report.findings("table_identity").map {
                (String($0.message.split(separator: " ")[0]), $0)
            })
            #expect(identity["public.keyed"]?.severity == .ok)
            #expect(identity["public.full_identity"]?.severity == .ok)
            #expect(identity["public.loose"]?.severity == .error)
            #expect(identity["public.loose"]?.message.contains("UPDATE and DELETE on the source fail") == true)
            #expect(identity["public.loose"]?.fix?.contains("REPLICA IDENTITY FULL") == true)
            #expect(identity["public.nothing_identity"]?.severity == .error)
            let toast = report.findings("toast_columns")
            #expect(toast.contains { $0.message.hasPrefix("public.keyed ") && $0.severity == .info })
            #expect(!toast.contains { $0.message.hasPrefix("public.full_identity ") })
            #expect(report.findings("tables").contains { $0.severity == .error && $0.message.contains("public.missing") })
            #expect(report.exitStatus == 2)
        }
    }

    @Test func aPublicationThatMissesATableSaysHowToAddIt() async throws {
        try await withTestDatabase(.trust, prefix: "check") { database in
            try await database.psql("""
                CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
                CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
                CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
                CREATE PUBLICATION pub FOR TABLE a, parted;
                """)
            let report = try await report(database, tables: ["public.a", "public.b", "public.parted"], publication: "pub")
            #expect(report.findings("publication").first?.severity == .ok)
            let missing = report.findings("publication_tables")
            #expect(missing.count == 1)
            #expect(missing.first?.fix == "ALTER PUBLICATION \"pub\" ADD TABLE \"public\".\"b\"")
            #expect(report.findings("publish_via_partition_root").first?.fix?.contains("publish_via_partition_root = true") == true)
        }
    }

    @Test func aLaggingSlotIsAWarningWithItsSizeAndAnInvalidOneAnError() async throws {
        try await withTestDatabase(.trust, prefix: "check") { database in
            let slot = "lag_\(database.name)"
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY, v text)")
            try await database.psql("SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput')")
            try await database.psql("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g")
            let report = try await report(database, tables: ["public.t"], slot: slot, lagWarningBytes: 64 * 1024)
            let lag = try #require(report.findings("slot_lag").first)
            #expect(lag.severity == .warning)
            #expect(lag.message.contains("inactive"))
            #expect(lag.message.contains("kB") || lag.message.contains("MB"))
            #expect(lag.fix?.contains("ferry slot drop \(slot)") == true)
            #expect(report.findings("slot_wal_status").first?.severity == .ok)
            #expect(report.exitStatus == 1)

            // A physical slot under the name is not usable.
            let physical = "phys_\(database.name)"
            try await database.psql("SELECT pg_create_physical_replication_slot('\(physical)')")
            let other = try await self.report(database, tables: ["public.t"], slot: physical)
            #expect(other.findings("slot").first?.severity == .error)
            try await database.psql("SELECT pg_drop_replication_slot('\(physical)')")
        }
    }

    @Test func aPoolerHostIsAnErrorBeforeAnythingElse() async throws {
        try await withTestDatabase(.trust, prefix: "check") { database in
            // hostaddr connects to the harness while the host name is Neon's pooled endpoint.
            let url = "host=ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech hostaddr=127.0.0.1 port=\(database.server.port) user=\(database.server.superuser) dbname=\(database.name) sslmode=disable"
            let report = try await report(database, url: url)
            let finding = try #require(report.findings("pooler_host").first)
            #expect(finding.severity == .error)
            #expect(finding.fix?.contains("-pooler") == true)
        }
    }

    @Test func anUnreachableSourceIsOneErrorWithItsFix() async throws {
        let port = try Subprocess.freeLoopbackPort()
        let report = await Preflight(source: try ConnectionConfiguration.parse("postgres://x@127.0.0.1:\(port)/db?connect_timeout=5")).run()
        #expect(report.findings.count == 1)
        #expect(report.findings.first?.check == "connect")
        #expect(report.findings.first?.fix != nil)
        #expect(report.exitStatus == 2)
    }
}

@Suite struct SlotInventoryTests {
    @Test func listsSlotsWithLagAndDropsOnlyWhenToldTo() async throws {
        try await withTestDatabase(.trust, prefix: "slots") { database in
            let slot = "inv_\(database.name)"
            try await database.psql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t")
            try await database.psql("SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput')")
            try await database.psql("INSERT INTO t SELECT generate_series(1, 1000)")
            let connection = try await PGConnection.connect(try ConnectionConfiguration.parse(database.url), replication: nil)
            let listed = try #require(try await SlotInventory.slot(slot, on: connection))
            #expect(listed.plugin == "pgoutput")
            #expect(listed.database == database.name)
            #expect(!listed.active)
            #expect((listed.lagBytes ?? 0) > 0)
            #expect(listed.walStatus == "reserved")

            // Hold the slot with a streaming connection: drop refuses, --force terminates it.
            let replication = try await PGConnection.connect(try ConnectionConfiguration.parse(database.url), replication: .database)
            let stream = try await replication.startReplication(slot: slot, options: PGOutputOptions(publications: ["pub"]))
            _ = stream
            try await eventually("the slot to be active") { try await SlotInventory.slot(slot, on: connection)?.active == true }
            let refused = await #expect(throws: FerryError.self) { try await SlotInventory.drop(slot, terminateActive: false, on: connection) }
            #expect(refused?.message.contains("in use by process") == true)
            #expect(refused?.fix?.contains("--force") == true)
            try await SlotInventory.drop(slot, terminateActive: true, on: connection)
            #expect(try await SlotInventory.slot(slot, on: connection) == nil)
            await replication.close()

            let missing = await #expect(throws: FerryError.self) { try await SlotInventory.drop(slot, terminateActive: false, on: connection) }
            #expect(missing?.message.contains("does not exist") == true)
            await connection.close()
        }
    }
}
