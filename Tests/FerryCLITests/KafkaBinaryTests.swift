import FerryTestSupport
import Foundation
import Testing

/// The `ferry` binary against the Tansu broker (a separate Kafka-protocol broker process), with
/// the newer librdkafka of the confluent-kafka wheel loaded through LD_LIBRARY_PATH (Debian's
/// 2.0.2 fails Tansu's ApiVersions handshake), read back by the independent consumer.
@Suite struct KafkaBinaryTests {
    @Test func ferryStreamsIntoTansuAndEveryChangeArrivesOnce() async throws {
        try KafkaTools.setUp()
        let broker = try await TansuBroker()
        defer { broker.stop() }
        let executable = try FerryExecutable.path()
        let environment = ["LD_LIBRARY_PATH": KafkaTools.newerLibrdkafkaDirectory]
        try await withTestDatabase(.trust, prefix: "tansu") { source in
            try await source.psql("""
                CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2), opened date);
                INSERT INTO accounts SELECT g, 'owner' || g, g * 10, '2024-01-01'::date + g FROM generate_series(1, 50) g;
                """)
            let statePath = NSTemporaryDirectory() + "ferry-tansu-\(source.name).db"
            defer { try? FileManager.default.removeItem(atPath: statePath) }
            let arguments = ["run", "--source", source.url, "--tables", "public.accounts", "--name", source.name, "--state", statePath,
                             "--to", "kafka://\(broker.bootstrapServers)?compression=lz4&tombstones=true", "--once", "--admin", "off"]
            let (status, _, errors) = try await KafkaTools.run(executable, arguments, environment: environment)
            #expect(status == 0, "\(errors.suffix(2000))\n\(broker.log.suffix(1000))")
            #expect(errors.contains("librdkafka=2.16") || errors.contains("librdkafka: 2.16") || errors.contains("2.16."),
                    "the newer librdkafka was loaded: \(errors.suffix(1500))")
            try await source.psql("""
                UPDATE accounts SET balance = balance + 1 WHERE id <= 5;
                DELETE FROM accounts WHERE id = 50;
                INSERT INTO accounts VALUES (51, 'new', 0, NULL);
                """)
            let (again, _, againErrors) = try await KafkaTools.run(executable, arguments, environment: environment)
            #expect(again == 0, "\(againErrors.suffix(2000))")

            let topic = "\(source.name).public.accounts"
            let records = try await KafkaTools.consume(bootstrap: broker.bootstrapServers, topics: [topic], expect: 58, idle: 6)
            #expect(records.count == 58, "50 snapshot rows, 5 updates, a delete and its tombstone, an insert")
            Self.check(records)
        }
    }

    static func check(_ records: [KafkaRecord]) {
        let values = records.compactMap { record -> (op: String, id: Int?, after: [String: Any]?)? in
            guard let value = record.valueObject(), let op = value["op"] as? String else { return nil }
            return (op, record.keyObject()?["id"] as? Int, value["after"] as? [String: Any])
        }
        #expect(values.filter { $0.op == "r" }.count == 50)
        #expect(Set(values.filter { $0.op == "r" }.compactMap(\.id)) == Set(1...50))
        #expect(values.filter { $0.op == "u" }.compactMap(\.id).sorted() == [1, 2, 3, 4, 5])
        #expect(values.filter { $0.op == "d" }.compactMap(\.id) == [50])
        #expect(values.filter { $0.op == "c" }.compactMap(\.id) == [51])
        #expect(records.filter { $0.value == nil }.map(\.key) == [#"{"id":50}"#], "one tombstone, keyed like the delete")
        let first = values.first { $0.op == "u" && $0.id == 1 }
        #expect(first?.after?["balance"] as? String == "11.00" && first?.after?["opened"] as? String == "2024-01-02")
        // Per key, in partition order: the snapshot row before the update.
        for id in 1...5 {
            let ops = records.filter { $0.keyObject()?["id"] as? Int == id }.sorted { $0.offset < $1.offset }
                .compactMap { $0.valueObject()?["op"] as? String }
            #expect(ops == ["r", "u"], "key \(id): \(ops)")
        }
    }

    /// The broker stops answering: SIGTERM waits for the undelivered messages (nothing confirmed
    /// past them), a second SIGTERM stops waiting; the next run, with the broker back, delivers
    /// everything. The broker is librdkafka's mock cluster in its own process, frozen with SIGSTOP.
    @Test func aSecondSigtermStopsWaitingForBrokersThatAreDownAndNothingIsLost() async throws {
        try KafkaTools.setUp()
        let cluster = try await MockBrokerProcess()
        defer { cluster.stop() }
        let executable = try FerryExecutable.path()
        try await withTestDatabase(.trust, prefix: "ksig") { source in
            try await source.psql("CREATE TABLE t (id int PRIMARY KEY)")
            let statePath = NSTemporaryDirectory() + "ferry-ksig-\(source.name).db"
            let logPath = statePath + ".log"
            defer { try? FileManager.default.removeItem(atPath: statePath); try? FileManager.default.removeItem(atPath: logPath) }
            var arguments = ["run", "--source", source.url, "--tables", "public.t", "--name", source.name, "--state", statePath,
                             "--snapshot", "never", "--to", "kafka://\(cluster.bootstrapServers)", "--admin", "off"]
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: logPath)
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            let log = { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
            // Streaming, not merely "slot active": a slot being created is active while it waits
            // for a consistent point, and rows committed before that point are not its to send.
            try await eventually("ferry streaming", timeout: .seconds(60)) { log().contains("info ferry: streaming") }
            try await source.psql("INSERT INTO t SELECT generate_series(1, 100)")
            let topic = "\(source.name).public.t"
            let first = try await KafkaTools.consume(bootstrap: cluster.bootstrapServers, topics: [topic], expect: 100, idle: 60)
            #expect(first.count == 100, "\(log().suffix(3000))")

            cluster.freeze()
            try await source.psql("INSERT INTO t SELECT generate_series(101, 300)")
            try await Task.sleep(for: .seconds(2))
            kill(process.processIdentifier, SIGTERM)
            try await Task.sleep(for: .seconds(3))
            #expect(process.isRunning, "the first SIGTERM waits for the messages in flight: \(log().suffix(1500))")
            kill(process.processIdentifier, SIGTERM)
            try await eventually("ferry to exit after the second SIGTERM", timeout: .seconds(30)) { !process.isRunning }

            cluster.thaw()
            arguments.append("--once")
            let (status, _, errors) = try await KafkaTools.run(executable, arguments)
            #expect(status == 0, "\(errors.suffix(1500))")
            let records = try await KafkaTools.consume(bootstrap: cluster.bootstrapServers, topics: [topic], expect: nil, idle: 5)
            let ids = Set(records.compactMap { $0.keyObject()?["id"] as? Int })
            #expect(ids == Set(1...300), "every row arrived (at least once): missing \(Set(1...300).subtracting(ids).sorted().prefix(10))")
        }
    }
}
