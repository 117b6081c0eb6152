import FerryCore
import FerryLocalPostgres
import FerryTestSupport
import Foundation
import Logging
import PostgresWire
import Testing
@testable import FerryKafka

func testLogger() -> Logger {
    var logger = Logger(label: "test")
    logger.logLevel = ProcessInfo.processInfo.environment["FERRY_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
    return logger
}

final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?
    var error: (any Error)? { lock.withLock { stored } }
    func set(_ error: any Error) { lock.withLock { stored = error } }
}

func kafkaPipeline(_ source: TestDatabase, url: String, tables: [String], snapshot: PipelineConfiguration.SnapshotMode = .initial,
                   once: Bool = true, state: MemoryStateStore) throws -> (Pipeline, KafkaDestination) {
    let destination = try KafkaDestination(url: url, pipeline: source.name, database: source.name, logger: testLogger())
    let configuration = PipelineConfiguration(name: source.name, source: try ConnectionConfiguration.parse(source.url),
                                              tables: tables, snapshot: snapshot, once: once)
    return (Pipeline(configuration: configuration, destinations: [destination], state: state, logger: testLogger()), destination)
}

/// One event as the consumer read it, with the parts the tests look at.
struct Event {
    var record: KafkaRecord
    var value: [String: Any]
    var op: String { value["op"] as? String ?? "?" }
    var source: [String: Any] { value["source"] as? [String: Any] ?? [:] }
    var lsn: Int? { source["lsn"] as? Int }
    var after: [String: Any]? { value["after"] as? [String: Any] }
    var before: [String: Any]? { value["before"] as? [String: Any] }
    var keyID: Int? { record.keyObject()?["id"] as? Int }

    init?(_ record: KafkaRecord) {
        guard let value = record.valueObject() else { return nil }
        self.record = record
        self.value = value
    }
}

@Suite struct KafkaOptionsTests {
    @Test func everyOptionIsReadFromTheURL() throws {
        let options = try KafkaOptions(url: "kafka://alice:s%40cret@b1:9092,b2:9093/?topic_prefix=shop&topic={prefix}_{table}&compression=zstd&tombstones=true&transaction_topic=true&schemas=yes&json=nested&buffer_mb=8&connect_timeout=3&linger.ms=20")
        #expect(options.bootstrapServers == "b1:9092,b2:9093")
        #expect(options.topicPrefix == "shop")
        #expect(options.topic(schema: "public", table: "users", prefix: "shop") == "shop_users")
        #expect(options.compression == "zstd")
        #expect(options.tombstones && options.schemas && !options.jsonAsString)
        #expect(options.transactionTopic == "{prefix}.transaction")
        #expect(options.bufferMegabytes == 8 && options.connectTimeoutSeconds == 3)
        let properties = Dictionary(uniqueKeysWithValues: options.properties.map { ($0.name, $0.value) })
        #expect(properties == ["linger.ms": "20", "sasl.username": "alice", "sasl.password": "s@cret",
                               "sasl.mechanisms": "PLAIN", "security.protocol": "SASL_SSL"])
        let plain = try KafkaOptions(url: "kafka://localhost:9092")
        #expect(plain.topic(schema: "public", table: "t", prefix: "p") == "p.public.t")
        #expect(plain.jsonAsString && !plain.tombstones && plain.transactionTopic == nil && plain.properties.isEmpty)
    }

    @Test func badURLsNameTheProblemAndTheFix() {
        let cases: [(String, String)] = [
            ("kafka://", "names no broker"),
            ("kafka://host", "has no valid port"),
            ("kafka://host:99999", "has no valid port"),
            ("kafka://a:1,,b:2", "names no broker"),
            ("kafka://h:1?compression=brotli", "compression \"brotli\" is unknown"),
            ("kafka://h:1?tombstones=maybe", "is not true or false"),
            ("kafka://h:1?topic=fixed", "has no {table}"),
            ("kafka://h:1?colour=blue", "option \"colour\" is unknown"),
            ("kafka://h:1?buffer_mb=0", "is not a number in 1…4096"),
            ("kafka://u:hunter2@h:1?flag", "has no value"),
            ("kafka://u:hunter2%zz@h:1", "invalid percent-encoding in the password"),
        ]
        for (url, expected) in cases {
            do {
                _ = try KafkaOptions(url: url)
                Issue.record("\(url) was accepted")
            } catch let error as FerryError {
                #expect(error.kind == .configuration)
                #expect(error.description.contains(expected), "\(url): \(error.description)")
                #expect(!error.description.contains("hunter2"), "the password is never shown")
            } catch {
                Issue.record("\(url): \(error)")
            }
        }
    }

    @Test func librdkafkaRefusesAnUnknownPropertyByName() async throws {
        let destination = try KafkaDestination(url: "kafka://127.0.0.1:9?no.such.property=1", pipeline: "p", database: "d", logger: testLogger())
        let error = await #expect(throws: FerryError.self) { _ = try await destination.open() }
        #expect(error?.kind == .configuration)
        #expect(error?.description.contains("librdkafka refuses no.such.property=1") == true, "\(String(describing: error))")
    }

    @Test func anUnreachableBrokerFailsAtOpenWithTheFix() async throws {
        let port = try Subprocess.freeLoopbackPort()
        let destination = try KafkaDestination(url: "kafka://127.0.0.1:\(port)?connect_timeout=2", pipeline: "p", database: "d", logger: testLogger())
        let error = await #expect(throws: FerryError.self) { _ = try await destination.open() }
        #expect(error?.description.contains("cannot reach the Kafka brokers 127.0.0.1:\(port) within 2 s") == true, "\(String(describing: error))")
        #expect(error?.fix?.contains("check the host and port") == true)
    }
}

/// Against librdkafka's mock cluster (Kafka-protocol brokers on loopback inside the test
/// process), read back by the independent confluent-kafka consumer in another process.
@Suite(.serialized) struct KafkaDestinationTests {
    init() throws { try KafkaTools.setUp() }

    @Test func everyChangeArrivesOnceInOrderPerKeyWithDebeziumEnvelopes() async throws {
        try await KafkaTools.exclusively { try await everyChangeArrivesOnceInOrderPerKeyWithDebeziumEnvelopesBody() }
    }

    func everyChangeArrivesOnceInOrderPerKeyWithDebeziumEnvelopesBody() async throws {
        let cluster = try KafkaMockCluster(brokers: 3)
        try await withTestDatabase(.trust, prefix: "kfk") { source in
            let prefix = source.name
            for table in ["users", "loose", "other"] { try cluster.createTopic("\(prefix).public.\(table)", partitions: 3, replicationFactor: 3) }
            try await source.psql("""
                CREATE TABLE users (id int PRIMARY KEY, name text, big text, doc jsonb, born timestamptz, price numeric(10,2));
                ALTER TABLE users ALTER COLUMN big SET STORAGE EXTERNAL;
                CREATE TABLE loose (a int, b text); ALTER TABLE loose REPLICA IDENTITY FULL;
                CREATE TABLE other (id int PRIMARY KEY);
                INSERT INTO users SELECT g, 'user' || g, repeat('x', 5000), '{"n": 1}', '2024-02-29 13:45:00+00', 12.5 FROM generate_series(1, 3) g;
                """)
            let url = "kafka://\(cluster.bootstrapServers)?tombstones=true&transaction_topic=true"
            let tables = ["public.users", "public.loose", "public.other"]
            let state = MemoryStateStore()
            try await kafkaPipeline(source, url: url, tables: tables, state: state).0.run()
            try await source.psql("""
                INSERT INTO users SELECT g, 'user' || g, 'small', NULL, NULL, NULL FROM generate_series(4, 40) g;
                UPDATE users SET name = 'renamed' WHERE id = 1;
                UPDATE users SET name = 'again' WHERE id = 1;
                UPDATE users SET id = 100 WHERE id = 2;
                DELETE FROM users WHERE id = 3;
                INSERT INTO loose VALUES (1, 'x');
                UPDATE loose SET b = 'y';
                INSERT INTO other VALUES (7);
                TRUNCATE other;
                SELECT pg_logical_emit_message(true, 'audit', 'hello');
                """)
            let (pipeline, destination) = try kafkaPipeline(source, url: url, tables: tables, state: state)
            try await pipeline.run()
            #expect(await destination.deliveredMessages > 0)

            let records = try await KafkaTools.consume(
                bootstrap: cluster.bootstrapServers,
                topics: ["\(prefix).public.users", "\(prefix).public.loose", "\(prefix).public.other", "\(prefix).message", "\(prefix).transaction"],
                expect: nil, idle: 6)
            try Self.checkEvents(records, prefix: prefix)
        }
    }

    /// What the consumer read after the snapshot and the changes of the test above.
    static func checkEvents(_ records: [KafkaRecord], prefix: String) throws {
        let users = records.filter { $0.topic == "\(prefix).public.users" }
        let events = users.compactMap(Event.init)
        let tombstones = users.filter { $0.value == nil }

        // Snapshot rows, then each change exactly once.
        #expect(events.filter { $0.op == "r" }.count == 3)
        #expect(events.filter { $0.op == "c" }.count == 37 + 1, "37 inserts and the create under the changed key")
        #expect(events.filter { $0.op == "u" }.count == 2)
        #expect(events.filter { $0.op == "d" }.count == 2, "the delete of id 3 and the delete under the old key 2")
        #expect(tombstones.count == 2 && Set(tombstones.compactMap { $0.keyObject()?["id"] as? Int }) == [2, 3])
        let changeIDs = events.filter { $0.op != "r" }.map { "\($0.lsn ?? -1)/\($0.op)/\($0.keyID ?? -1)" }
        #expect(Set(changeIDs).count == changeIDs.count, "no change delivered twice")

        // Keys: the primary key, in Debezium's key format; one key always lands in one partition.
        #expect(events.allSatisfy { $0.record.keyObject()?.keys.sorted() == ["id"] })
        var partitionOfKey: [Int: Int] = [:]
        for event in events { if let id = event.keyID { #expect(partitionOfKey.updateValue(event.record.partition, forKey: id) ?? event.record.partition == event.record.partition) } }
        #expect(Set(partitionOfKey.values).count > 1, "keys are spread over the 3 partitions")

        // Order per key: id 1 reads r, u(renamed), u(again), in offset order within its partition.
        let one = events.filter { $0.keyID == 1 }.sorted { $0.record.offset < $1.record.offset }
        #expect(one.map(\.op) == ["r", "u", "u"])
        #expect(one.map { $0.after?["name"] as? String } == ["user1", "renamed", "again"])

        // Envelope: snapshot rows typed, source filled; TOAST kept out of updates.
        let snapshotRow = try #require(one.first)
        #expect(snapshotRow.after?["big"] as? String == String(repeating: "x", count: 5000))
        #expect(snapshotRow.after?["doc"] as? String == #"{"n": 1}"#, "json as a string, as Debezium writes it")
        #expect(snapshotRow.after?["born"] as? String == "2024-02-29T13:45:00Z")
        #expect(snapshotRow.after?["price"] as? String == "12.50")
        #expect(snapshotRow.source["snapshot"] as? String == "true" && snapshotRow.source["connector"] as? String == "ferry")
        #expect(snapshotRow.source["table"] as? String == "users" && snapshotRow.source["schema"] as? String == "public")
        let update = one[1]
        #expect(update.after?["big"] == nil, "the unchanged TOAST value is absent, never null")
        #expect(update.value["unchanged_toast"] as? [String] == ["big"])
        #expect(update.source["snapshot"] as? String == "false")
        #expect((update.source["txId"] as? Int ?? 0) > 0 && (update.lsn ?? 0) > 0)
        let block = try #require(update.value["transaction"] as? [String: Any])
        #expect((block["id"] as? String)?.hasPrefix("\(update.source["txId"] as? Int ?? -1):") == true)

        let moved = events.filter { $0.keyID == 100 }
        #expect(moved.map(\.op) == ["c"])
        #expect(moved.first?.after?["name"] as? String == "user2")
        let deleted = try #require(events.first { $0.op == "d" && $0.keyID == 3 })
        #expect(deleted.after == nil && deleted.before?["id"] as? Int == 3)

        // REPLICA IDENTITY FULL: no key, the whole old row in `before`.
        let loose = records.filter { $0.topic == "\(prefix).public.loose" }.compactMap(Event.init).sorted { ($0.lsn ?? 0) < ($1.lsn ?? 0) }
        #expect(loose.map(\.op) == ["c", "u"])
        #expect(loose.allSatisfy { $0.record.key == nil })
        #expect(loose.last?.before?["b"] as? String == "x" && loose.last?.after?["b"] as? String == "y")

        // Truncate: no key.
        let other = records.filter { $0.topic == "\(prefix).public.other" }.compactMap(Event.init)
        #expect(other.map(\.op).sorted() == ["c", "t"])
        #expect(other.first { $0.op == "t" }?.record.key == nil)

        // Logical messages and transaction metadata.
        let messages = records.filter { $0.topic == "\(prefix).message" }.compactMap(Event.init)
        #expect(messages.count == 1 && messages.first?.op == "m")
        #expect((messages.first?.value["message"] as? [String: Any])?["content"] as? String == "aGVsbG8=")
        #expect(messages.first?.record.keyObject()?["prefix"] as? String == "audit")
        let metadata = records.filter { $0.topic == "\(prefix).transaction" }.compactMap { $0.valueObject() }
        #expect(metadata.filter { $0["status"] as? String == "BEGIN" }.count == metadata.filter { $0["status"] as? String == "END" }.count)
        let ends = metadata.filter { $0["status"] as? String == "END" }
        let dataEvents = events.filter { $0.op != "r" }.count + loose.count + other.count
        #expect(ends.reduce(0) { $0 + ($1["event_count"] as? Int ?? 0) } == dataEvents, "END counts every data event")
        let collections = ends.flatMap { $0["data_collections"] as? [[String: Any]] ?? [] }
        #expect(collections.first?["data_collection"] as? String == "public.users")
    }

    @Test func schemasEnableWrapsKeysAndValuesLikeKafkaConnect() async throws {
        try await KafkaTools.exclusively { try await schemasEnableWrapsKeysAndValuesLikeKafkaConnectBody() }
    }

    func schemasEnableWrapsKeysAndValuesLikeKafkaConnectBody() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try await withTestDatabase(.trust, prefix: "kfk") { source in
            try await source.psql("""
                CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL, at timestamptz, tags text[], doc json);
                INSERT INTO t VALUES (1, 'a', '2024-01-01 00:00:00+00', '{x,y}', '{"k": [1]}');
                """)
            try await kafkaPipeline(source, url: "kafka://\(cluster.bootstrapServers)?schemas=true", tables: ["public.t"], state: MemoryStateStore()).0.run()
            let records = try await KafkaTools.consume(bootstrap: cluster.bootstrapServers, topics: ["\(source.name).public.t"], expect: 1)
            let record = try #require(records.first)
            let key = try #require(record.keyObject())
            #expect((key["payload"] as? [String: Any])?["id"] as? Int == 1)
            let keySchema = try #require(key["schema"] as? [String: Any])
            #expect(keySchema["name"] as? String == "\(source.name).public.t.Key")
            #expect((keySchema["fields"] as? [[String: Any]])?.first?["type"] as? String == "int64")
            let value = try #require(record.valueObject())
            let payload = try #require(value["payload"] as? [String: Any])
            #expect(payload["op"] as? String == "r")
            #expect((payload["after"] as? [String: Any])?["doc"] as? String == #"{"k": [1]}"#)
            #expect((payload["after"] as? [String: Any])?["tags"] as? [String] == ["x", "y"])
            let schema = try #require(value["schema"] as? [String: Any])
            #expect(schema["name"] as? String == "\(source.name).public.t.Envelope")
            let after = try #require((schema["fields"] as? [[String: Any]])?.first { $0["field"] as? String == "after" })
            let fields = Dictionary(uniqueKeysWithValues: (after["fields"] as? [[String: Any]] ?? []).map { ($0["field"] as? String ?? "?", $0) })
            #expect(fields["at"]?["name"] as? String == "io.debezium.time.ZonedTimestamp")
            #expect(fields["doc"]?["name"] as? String == "io.debezium.data.Json")
            #expect(fields["tags"]?["type"] as? String == "array")
            #expect(fields["name"]?["type"] as? String == "string")
        }
    }

    /// All brokers go away mid-stream: the pipeline waits (nothing confirmed past what was
    /// delivered), then delivers everything once when they return.
    @Test func brokersDownMidStreamLoseNothingAndConfirmNothingUndelivered() async throws {
        try await KafkaTools.exclusively { try await brokersDownMidStream() }
    }

    func brokersDownMidStream() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try await withTestDatabase(.trust, prefix: "kfk") { source in
            try await source.psql("CREATE TABLE t (id int PRIMARY KEY, v int)")
            try cluster.createTopic("\(source.name).public.t", partitions: 2)
            let (pipeline, _) = try kafkaPipeline(source, url: "kafka://\(cluster.bootstrapServers)", tables: ["public.t"], snapshot: .never,
                                                  once: false, state: MemoryStateStore())
            let failure = FailureBox()
            let running = Task { do { try await pipeline.run() } catch { failure.set(error); throw error } }
            try await eventually("streaming") { pipeline.monitor.phase == .streaming }
            // Positions taken inside the writing transaction (before its commit record): other
            // tests' WAL moves pg_current_wal_lsn() past what this database will ever commit.
            let beforeOutage = try #require(LSN(try await source.psql("INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g; SELECT pg_current_wal_lsn()")))
            try await eventually("the first rows confirmed", timeout: .seconds(60)) {
                if let error = failure.error { throw error }
                return pipeline.statistics.confirmedPosition >= beforeOutage
            }
            cluster.setBrokerDown(1)
            let outageStart = try #require(LSN(try await source.psql("SELECT pg_current_wal_lsn()")))
            for batch in 0..<4 {
                try await source.psql("INSERT INTO t SELECT g, 1 FROM generate_series(\(1001 + batch * 250), \(1250 + batch * 250)) g")
            }
            let last = try #require(LSN(try await source.psql("UPDATE t SET v = 2 WHERE id <= 100; SELECT pg_current_wal_lsn()")))
            try await Task.sleep(for: .seconds(3))
            #expect(failure.error == nil, "an outage is waited out, not an error: \(String(describing: failure.error))")
            #expect(pipeline.statistics.confirmedPosition <= outageStart, "nothing written during the outage is confirmed before it is delivered")
            cluster.setBrokerUp(1)
            try await eventually("everything confirmed after the brokers return", timeout: .seconds(120)) {
                if let error = failure.error { throw error }
                return pipeline.statistics.confirmedPosition > last
            }
            pipeline.stopper.requestStop()
            try await running.value

            let records = try await KafkaTools.consume(bootstrap: cluster.bootstrapServers, topics: ["\(source.name).public.t"], expect: 2100)
            let events = records.compactMap(Event.init)
            #expect(events.count == 2100, "1,000 + 1,000 inserts and 100 updates, each once")
            let inserted = events.filter { $0.op == "c" }.compactMap(\.keyID)
            #expect(inserted.count == 2000 && Set(inserted) == Set(1...2000))
            #expect(events.filter { $0.op == "u" }.count == 100)
            // Per key, the insert comes before the update.
            var seen: Set<Int> = []
            for event in events.sorted(by: { ($0.record.partition, $0.record.offset) < ($1.record.partition, $1.record.offset) }) {
                guard let id = event.keyID else { continue }
                if event.op == "u" { #expect(seen.contains(id), "update of \(id) before its insert") }
                seen.insert(id)
            }
        }
    }

    /// A message Kafka will never take stops the pipeline with the reason; nothing past it is confirmed.
    @Test func aMessageKafkaRefusesStopsThePipelineWithTheReason() async throws {
        try await KafkaTools.exclusively { try await aMessageKafkaRefusesStopsThePipelineWithTheReasonBody() }
    }

    func aMessageKafkaRefusesStopsThePipelineWithTheReasonBody() async throws {
        let cluster = try KafkaMockCluster(brokers: 1)
        try await withTestDatabase(.trust, prefix: "kfk") { source in
            try await source.psql("CREATE TABLE t (id int PRIMARY KEY, v text)")
            let state = MemoryStateStore()
            let (pipeline, _) = try kafkaPipeline(source, url: "kafka://\(cluster.bootstrapServers)?message.max.bytes=2000",
                                                  tables: ["public.t"], snapshot: .never, state: state)
            try await pipeline.run()
            try await source.psql("INSERT INTO t VALUES (1, 'fits'); INSERT INTO t VALUES (2, repeat('y', 10000))")
            let (again, _) = try kafkaPipeline(source, url: "kafka://\(cluster.bootstrapServers)?message.max.bytes=2000",
                                               tables: ["public.t"], snapshot: .never, state: state)
            let error = await #expect(throws: FerryError.self) { try await again.run() }
            #expect(error?.kind == .destinationRejected)
            #expect(error?.description.contains("too large") == true || error?.description.contains("MSG_SIZE_TOO_LARGE") == true, "\(String(describing: error))")
            let slot = try await source.psql("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry_\(source.name)'")
            let insertOfTwo = try await source.psql("SELECT count(*) FROM t")
            #expect(insertOfTwo == "2")
            // The slot still holds the refused change: a fixed configuration sends it.
            let (fixed, _) = try kafkaPipeline(source, url: "kafka://\(cluster.bootstrapServers)", tables: ["public.t"], snapshot: .never, state: state)
            try await fixed.run()
            let records = try await KafkaTools.consume(bootstrap: cluster.bootstrapServers, topics: ["\(source.name).public.t"], expect: nil, idle: 5)
            let ids = records.compactMap(Event.init).compactMap(\.keyID)
            #expect(ids.contains(2), "the refused change arrives once the limit is fixed (slot was at \(slot))")
        }
    }
}
