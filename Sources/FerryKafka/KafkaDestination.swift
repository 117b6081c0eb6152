import FerryCore
import Logging
import PostgresWire

/// Kafka (`kafka://HOST:PORT[,…]`, options in ``KafkaOptions``): one message per change, in
/// the envelope of Debezium's PostgreSQL connector (``DebeziumEnvelope``), so that consumers
/// of Debezium topics read Ferry's unchanged.
///
/// - **Topics**: `{prefix}.{schema}.{table}` (prefix: the pipeline's name unless
///   `topic_prefix` says otherwise; the template is `topic`). Logical messages
///   (`pg_logical_emit_message`) go to `{prefix}.message` with key `{"prefix": …}`; transaction
///   metadata (optional) to `{prefix}.transaction`.
/// - **Keys**: the row's key columns, `{"id": 1}` (with `schemas=true`, `{"schema": …,
///   "payload": …}`). Tables under `REPLICA IDENTITY FULL` or without a key get no key (as
///   Debezium does for tables without a primary key); their order holds only within a
///   partition. Truncate events have no key. With `tombstones=true` a delete is followed by a
///   message with the same key and no value.
/// - **Order**: librdkafka's idempotent producer keeps the order of messages per partition,
///   and the partitioner (`murmur2_random`, the Java client's) maps a key to one partition:
///   the events of a row arrive in commit order.
/// - **Durability**: `flush()` waits until librdkafka reports every message written so far
///   as delivered (`acks=all`) and only then returns the last commit's position: the flush
///   LSN confirmed to PostgreSQL never passes an undelivered message. While brokers are away
///   librdkafka retries without end (`message.timeout.ms=0`) and the flush waits (the
///   pipeline stops reading: backpressure); it resumes when they return. A delivery that
///   fails for good (message too large, topic missing and not auto-created, authorization,
///   a fatal idempotence error) stops the pipeline with librdkafka's reason; nothing after it
///   is confirmed.
/// - **Delivery is at-least-once**: Kafka cannot store the position with the messages, so
///   after a crash the pipeline sends again from the last confirmed position; consumers
///   deduplicate on `source.lsn` (+ `source.table`), as with Debezium.
/// - **Unchanged TOAST** values are left out of `after` and named in `unchanged_toast`.
/// - Schema changes write no message: the next events carry the new columns (and, with
///   `schemas=true`, the new schema).
public actor KafkaDestination: Destination {
    public nonisolated let name: String
    public nonisolated let options: KafkaOptions
    public nonisolated let pipeline: String
    public nonisolated let prefix: String

    private let logger: Logger
    private let envelope: DebeziumEnvelope
    private var producer: KafkaProducer?
    private var key = JSONWriter(reservingCapacity: 256)
    private var value = JSONWriter(reservingCapacity: 4096)
    private var transaction: TransactionInfo?
    private var lastCommit: LSN?
    private var durablePosition: LSN?
    /// Per table definition (the schema object, kept alive here so its identity stays unique).
    private var tables: [ObjectIdentifier: TableTopic] = [:]
    /// Transaction metadata: events so far in the open transaction, and per table.
    private var eventCount = 0
    private var tableEventCounts: [(table: String, count: Int)] = []
    private let transactionTopic: String?
    private let messageTopic: String

    /// Messages reported delivered (for tests and logs).
    public var deliveredMessages: Int { producer?.tracker.delivered ?? 0 }

    /// A table's topic, pre-rendered envelope parts and, with `schemas=true`, its schemas, for
    /// one table definition.
    private final class TableTopic {
        let rendering: DebeziumEnvelope.Rendering
        let topic: String
        let handle: OpaquePointer
        let keySchema: [UInt8]
        let valueSchema: [UInt8]

        init(rendering: DebeziumEnvelope.Rendering, topic: String, handle: OpaquePointer, keySchema: [UInt8], valueSchema: [UInt8]) {
            self.rendering = rendering
            self.topic = topic
            self.handle = handle
            self.keySchema = keySchema
            self.valueSchema = valueSchema
        }
    }

    /// Messages librdkafka's full queue did not take yet (a few at most: the events of one change).
    private var backlog: [(topic: OpaquePointer, name: String, key: [UInt8]?, value: [UInt8]?)] = []

    /// - Parameters:
    ///   - url: `kafka://…` (see ``KafkaOptions``).
    ///   - pipeline: the pipeline's name (`source.name`, the default topic prefix).
    ///   - database: the source database's name (`source.db`).
    public init(url: String, pipeline: String, database: String, name: String? = nil,
                logger: Logger = Logger(label: "ferry.kafka")) throws {
        try self.init(options: KafkaOptions(url: url), pipeline: pipeline, database: database,
                      name: name ?? Redaction.redact(url), logger: logger)
    }

    public init(options: KafkaOptions, pipeline: String, database: String, name: String? = nil,
                logger: Logger = Logger(label: "ferry.kafka")) {
        self.options = options
        self.pipeline = pipeline
        self.prefix = options.topicPrefix ?? pipeline
        self.name = name ?? "kafka://\(options.bootstrapServers)"
        self.envelope = DebeziumEnvelope(pipeline: pipeline, database: database,
                                         values: ValueJSONOptions(unchangedToastPlaceholder: nil,
                                                                  jsonAsString: options.jsonAsString || options.schemas))
        self.transactionTopic = options.transactionTopic?.replacingAll("{prefix}", with: prefix)
        self.messageTopic = "\(prefix).message"
        var logger = logger
        logger[metadataKey: "destination"] = "\(self.name)"
        self.logger = logger
    }

    // MARK: Destination

    /// Creates the producer and asks the brokers for metadata, so a wrong address or a broker
    /// that is down fails here, with the reason, rather than stalling the first flush.
    public func open() throws -> DestinationResume {
        guard producer == nil else { return DestinationResume() }
        let producer = try KafkaProducer(options: options, clientID: "ferry-\(pipeline)", logger: logger, shown: name)
        do {
            let brokers = try producer.brokerCount(timeoutMilliseconds: Int32(options.connectTimeoutSeconds * 1000))
            logger.info("connected to Kafka", metadata: ["brokers": "\(brokers)", "librdkafka": "\(librdkafkaVersion)"])
        } catch {
            let detail = producer.tracker.lastClusterError.map { " (\($0))" } ?? ""
            throw FerryError(.destination, "cannot reach the Kafka brokers \(options.bootstrapServers) within \(options.connectTimeoutSeconds) s: \(error.message)\(detail)",
                             fix: "check the host and port in \(name), that the brokers run, and the security.protocol/SASL options")
        }
        self.producer = producer
        return DestinationResume()
    }

    public func write(_ events: [PipelineEvent]) async throws {
        guard let producer else { throw FerryError(.destination, "the Kafka destination \(name) is not open") }
        try checkFailures(producer)
        let now = DebeziumEnvelope.nowMilliseconds()
        for event in events {
            switch event {
            case .begin(let info):
                transaction = info
                eventCount = 0
                tableEventCounts.removeAll(keepingCapacity: true)
                if let transactionTopic { try sendTransactionEvent(begin: true, info, topic: transactionTopic, now: now) }
            case .commit(let info, let endLSN):
                if let transactionTopic { try sendTransactionEvent(begin: false, info, topic: transactionTopic, now: now) }
                transaction = nil
                lastCommit = endLSN
            case .change(let change, let lsn):
                try send(change, lsn: lsn, now: now)
            case .snapshotRow(let table, let row):
                try sendRow(op: .read, table: table, keyRow: row, before: nil, after: row, lsn: nil, now: now)
            case .message(let prefix, let content, let lsn, _):
                try sendMessage(prefix: prefix, content: content, lsn: lsn, now: now)
            case .schemaChange(let change):
                logger.debug("schema change: later events carry the new columns", metadata: ["table": "\(change.new.qualifiedName)"])
            case .snapshotTableStarted, .snapshotTableFinished:
                break
            case .snapshotCopyRows(let table, _):
                throw FerryError.unrequestedCopyRows(name, table: table)
            case .streamStart, .subtransaction, .streamStop, .streamCommit, .streamAbort:
                throw FerryError.unrequestedStreamedTransaction(name)
            }
            if !backlog.isEmpty { try await drainBacklog() }
        }
        producer.poll()
    }

    /// Waits until every message written so far is delivered, then returns the last commit.
    /// While brokers are away this waits for them (backpressure); a cancelled task stops waiting.
    public func flush() async throws -> LSN? {
        guard let producer else { return durablePosition }
        try await waitForDeliveries(producer, limit: nil)
        try checkFailures(producer)
        if let lastCommit { durablePosition = lastCommit }
        return durablePosition
    }

    /// Waits up to 10 s for the messages in flight, then lets the producer go: undelivered
    /// messages were never confirmed, so the next run sends them again.
    public func close() async throws {
        guard let producer else { return }
        do {
            try await waitForDeliveries(producer, limit: .seconds(10))
        } catch {
            logger.warning("closing with \(producer.tracker.outstanding) Kafka messages undelivered; they were not confirmed and are sent again on the next run",
                           metadata: ["reason": "\(error)"])
        }
        // The producer's topic handles go with it.
        tables.removeAll()
        self.producer = nil
        transaction = nil
    }

    private func waitForDeliveries(_ producer: KafkaProducer, limit: Duration?) async throws {
        let clock = ContinuousClock()
        let started = clock.now
        var lastWarning = started
        var pause = Duration.milliseconds(1)
        producer.flush(timeoutMilliseconds: 0)
        while producer.tracker.outstanding > 0 {
            try checkFailures(producer)
            if let limit, clock.now - started >= limit {
                throw FerryError(.destination, "\(producer.tracker.outstanding) Kafka messages still undelivered after \(limit)")
            }
            if clock.now - started < Self.briskWait {
                // Acknowledgements come within a few milliseconds while the brokers are there:
                // wait for them in librdkafka (1 ms at a time) instead of sleeping in steps, so
                // the pipeline, which waits for this flush, goes on as soon as they are in.
                if Task.isCancelled { try await backOff(&pause, producer) }
                producer.flush(timeoutMilliseconds: 1)
                continue
            }
            try await backOff(&pause, producer)
            producer.flush(timeoutMilliseconds: 0)
            if clock.now - lastWarning >= .seconds(30) {
                lastWarning = clock.now
                logger.warning("waiting for Kafka to take \(producer.tracker.outstanding) messages; the pipeline waits with them (nothing is confirmed past them)",
                               metadata: ["waiting_s": "\((clock.now - started).components.seconds)",
                                          "last_error": "\(producer.tracker.lastClusterError ?? "none")"])
            }
        }
    }

    // MARK: Events

    private func send(_ change: Change, lsn: LSN, now: Int64) throws {
        switch change {
        case .insert(let table, let row):
            try sendRow(op: .create, table: table, keyRow: row, before: nil, after: row, lsn: lsn, now: now)
        case .update(let table, let old, let oldIsKeyOnly, let row):
            if let old, oldIsKeyOnly, DebeziumEnvelope.hasKey(table) {
                // PostgreSQL sends the old key only when the key changed: Debezium writes a
                // delete under the old key (and its tombstone) and a create under the new one.
                try sendRow(op: .delete, table: table, keyRow: old, before: (old, true), after: nil, lsn: lsn, now: now)
                try sendRow(op: .create, table: table, keyRow: row, before: nil, after: row, lsn: lsn, now: now)
            } else {
                try sendRow(op: .update, table: table, keyRow: row, before: old.map { ($0, oldIsKeyOnly) }, after: row, lsn: lsn, now: now)
            }
        case .delete(let table, let old, let oldIsKeyOnly):
            try sendRow(op: .delete, table: table, keyRow: old, before: (old, oldIsKeyOnly), after: nil, lsn: lsn, now: now)
        case .truncate(let tables, _, _):
            for table in tables {
                try sendRow(op: .truncate, table: table, keyRow: nil, before: nil, after: nil, lsn: lsn, now: now)
            }
        }
    }

    private func sendRow(op: DebeziumEnvelope.Operation, table: TableSchema, keyRow: Row?, before: (row: Row, keyOnly: Bool)?,
                         after: Row?, lsn: LSN?, now: Int64) throws {
        let target = try topic(for: table)
        key.reset()
        var hasKey = false
        if let keyRow, DebeziumEnvelope.hasKey(table) {
            withSchema(&key, target.keySchema) { hasKey = envelope.writeKey(&$0, rendering: target.rendering, row: keyRow) }
        }
        var block: DebeziumEnvelope.TransactionBlock?
        if transactionTopic != nil, op != .read, let transaction {
            eventCount += 1
            block = DebeziumEnvelope.TransactionBlock(id: DebeziumEnvelope.TransactionBlock.id(of: transaction),
                                                      totalOrder: eventCount, dataCollectionOrder: countTableEvent(table.qualifiedName))
        }
        value.reset()
        withSchema(&value, target.valueSchema) {
            envelope.writeValue(&$0, op: op, rendering: target.rendering, before: before, after: after, lsn: lsn,
                                transaction: op == .read ? nil : transaction, now: now, transactionBlock: block)
        }
        try emit(topic: target.handle, name: target.topic, key: hasKey ? key.bytes : nil, value: value.bytes)
        if op == .delete && options.tombstones && hasKey {
            try emit(topic: target.handle, name: target.topic, key: key.bytes, value: nil)
        }
    }

    /// `body`'s JSON, wrapped as `{"schema": …, "payload": …}` with `schemas=true`.
    private func withSchema(_ json: inout JSONWriter, _ schema: [UInt8], _ body: (inout JSONWriter) -> Void) {
        guard options.schemas else { return body(&json) }
        json.bytes += #"{"schema":"#.utf8
        json.bytes += schema
        json.bytes += #","payload":"#.utf8
        body(&json)
        json.bytes.append(UInt8(ascii: "}"))
    }

    private func countTableEvent(_ table: String) -> Int {
        if let index = tableEventCounts.firstIndex(where: { $0.table == table }) {
            tableEventCounts[index].count += 1
            return tableEventCounts[index].count
        }
        tableEventCounts.append((table, 1))
        return 1
    }

    private func sendMessage(prefix messagePrefix: String, content: [UInt8], lsn: LSN, now: Int64) throws {
        key.reset()
        key.beginObject()
        key.key("prefix"); key.string(messagePrefix)
        key.endObject()
        value.reset()
        envelope.writeMessage(&value, prefix: messagePrefix, content: content, lsn: lsn, transaction: transaction, now: now)
        try emit(topic: try handle(messageTopic), name: messageTopic, key: key.bytes, value: value.bytes)
    }

    /// Debezium's transaction metadata: BEGIN, and END with the event counts per table.
    private func sendTransactionEvent(begin: Bool, _ info: TransactionInfo, topic: String, now: Int64) throws {
        let id = DebeziumEnvelope.TransactionBlock.id(of: info)
        key.reset()
        key.beginObject()
        key.key("id"); key.string(id)
        key.endObject()
        value.reset()
        value.beginObject()
        value.key("status"); value.string(begin ? "BEGIN" : "END")
        value.key("id"); value.string(id)
        value.key("event_count")
        if begin { value.null() } else { value.integer(Int64(eventCount)) }
        value.key("data_collections")
        if begin {
            value.null()
        } else {
            value.beginArray()
            for (table, count) in tableEventCounts {
                value.beginObject()
                value.key("data_collection"); value.string(table)
                value.key("event_count"); value.integer(Int64(count))
                value.endObject()
            }
            value.endArray()
        }
        value.key("ts_ms"); value.integer(DebeziumEnvelope.milliseconds(info.commitTime))
        value.endObject()
        try emit(topic: try handle(topic), name: topic, key: key.bytes, value: value.bytes)
    }

    private func topic(for table: TableSchema) throws -> TableTopic {
        if let known = tables[ObjectIdentifier(table)] { return known }
        let topic = options.topic(schema: table.schema, table: table.name, prefix: prefix)
        var keySchema = JSONWriter()
        var valueSchema = JSONWriter()
        if options.schemas {
            let schemaName = "\(prefix).\(table.schema).\(table.name)"
            envelope.writeKeySchema(&keySchema, table: table, name: schemaName)
            envelope.writeValueSchema(&valueSchema, table: table, name: schemaName, transactionBlock: transactionTopic != nil)
        }
        let entry = TableTopic(rendering: envelope.rendering(for: table), topic: topic, handle: try handle(topic),
                               keySchema: keySchema.bytes, valueSchema: valueSchema.bytes)
        tables[ObjectIdentifier(table)] = entry
        return entry
    }

    /// The producer's handle of `topic` (it keeps them).
    private func handle(_ topic: String) throws -> OpaquePointer {
        guard let producer else { throw FerryError(.destination, "the Kafka destination \(name) is not open") }
        do {
            return try producer.topic(topic)
        } catch {
            throw FerryError(.destinationRejected, "Kafka refused topic \(topic): \(error.message)",
                             fix: "check the topic template and prefix in \(name)")
        }
    }

    /// Queues a message, or keeps it in the backlog when librdkafka's queue is full (or
    /// earlier messages wait there: order is kept).
    private func emit(topic: OpaquePointer, name topicName: String, key: [UInt8]?, value: [UInt8]?) throws {
        guard backlog.isEmpty, let producer else {
            backlog.append((topic, topicName, key, value))
            return
        }
        if try !enqueue(producer, topic: topic, name: topicName, key: key, value: value) {
            backlog.append((topic, topicName, key, value))
        }
    }

    private func enqueue(_ producer: KafkaProducer, topic: OpaquePointer, name topicName: String, key: [UInt8]?, value: [UInt8]?) throws -> Bool {
        do {
            return try producer.produce(topic: topic, key: key, value: value)
        } catch {
            throw FerryError(.destinationRejected, "Kafka refused a message for topic \(topicName): \(error.message)",
                             fix: "check the topic name and the producer options in \(name)")
        }
    }

    /// While librdkafka's queue is full: serves delivery reports, waits, and queues the backlog.
    private func drainBacklog() async throws {
        guard let producer else { throw FerryError(.destination, "the Kafka destination \(name) is not open") }
        var pause = Duration.milliseconds(1)
        while !backlog.isEmpty {
            producer.poll()
            try checkFailures(producer)
            while let first = backlog.first, try enqueue(producer, topic: first.topic, name: first.name, key: first.key, value: first.value) {
                backlog.removeFirst()
            }
            if backlog.isEmpty { return }
            try await backOff(&pause, producer)
        }
    }

    /// How long a flush waits in librdkafka before it sleeps between polls (a broker outage
    /// must not keep a thread busy).
    static let briskWait = Duration.milliseconds(50)

    /// Waits `pause` before polling again (1 ms doubling to 20 ms); a cancelled task stops.
    private func backOff(_ pause: inout Duration, _ producer: KafkaProducer) async throws {
        let stopped = FerryError(.destination, "stopped while \(producer.tracker.outstanding) Kafka messages were still undelivered; they are sent again on restart")
        if Task.isCancelled { throw stopped }
        do {
            try await Task.sleep(for: pause)
        } catch {
            throw stopped
        }
        pause = min(pause * 2, .milliseconds(20))
    }

    private func checkFailures(_ producer: KafkaProducer) throws {
        if producer.tracker.fatal || producer.tracker.failure != nil {
            let reason = producer.fatalError() ?? producer.tracker.failure ?? producer.tracker.lastClusterError ?? "unknown"
            throw FerryError(.destinationRejected, "Kafka delivery failed for good: \(reason); the position is not confirmed past it",
                             fix: Self.fix(for: reason))
        }
    }

    static func fix(for reason: String) -> String {
        if reason.contains("UNKNOWN_TOPIC") || reason.contains("Unknown topic") {
            return "create the topic, or let the brokers create topics (auto.create.topics.enable=true); then run ferry again: nothing is lost"
        }
        if reason.contains("MSG_SIZE_TOO_LARGE") || reason.contains("too large") {
            return "raise the topic's max.message.bytes (and message.max.bytes=… in the destination URL); then run ferry again: nothing is lost"
        }
        if reason.contains("AUTHORIZATION") || reason.contains("Authorization") {
            return "grant the producer WRITE (and IDEMPOTENT_WRITE) on the topics; then run ferry again: nothing is lost"
        }
        return "fix the cause and run ferry again: undelivered changes are sent again from the last confirmed position"
    }
}
