#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import PostgresWire

/// Change events in the envelope of Debezium's PostgreSQL connector, shared by every
/// destination that writes events (JSON lines, Kafka, …) so that existing Debezium consumers
/// read them unchanged.
///
/// A value:
/// ```json
/// {"before":null,"after":{"id":1,"name":"Ada"},
///  "source":{"connector":"ferry","name":"<pipeline>","db":"<database>","schema":"public","table":"users",
///            "txId":771,"lsn":24023128,"ts_ms":1709214300123,"snapshot":"false"},
///  "op":"c","ts_ms":1709214300456}
/// ```
/// A key: the key columns, `{"id":1}`.
///
/// - `op`: `c` insert, `u` update, `d` delete, `r` snapshot row, `t` truncate.
/// - `before`: the old row when PostgreSQL sent it (key columns only, or the whole row under
///   `REPLICA IDENTITY FULL`), else `null`.
/// - values as ``ValueJSONOptions`` describes.
/// - **Unchanged TOAST**: a column whose value was not sent because it did not change is
///   *absent* from `after` (never `null`, never a placeholder) and listed in a top-level
///   `"unchanged_toast": ["col", …]` (present only when non-empty).
/// - `source.lsn` is the change's WAL position as a number, `source.txId` the transaction id,
///   `source.ts_ms` the commit time in ms since 1970. Snapshot rows: `"snapshot": "true"`,
///   `txId` and `lsn` null, `source.ts_ms` the time they were read. Top-level `ts_ms`: when
///   Ferry wrote the event.
/// - With transaction metadata on, a `"transaction": {"id": "<txId>:<commit lsn>",
///   "total_order": n, "data_collection_order": m}` block, as Debezium's
///   `provide.transaction.metadata` writes it.
public struct DebeziumEnvelope: Sendable {
    public enum Operation: String, Sendable {
        case create = "c", update = "u", delete = "d", read = "r", truncate = "t"
    }

    /// Debezium's `transaction` block of a data event.
    public struct TransactionBlock: Sendable, Hashable {
        public var id: String
        /// 1-based position of the event among all events of the transaction.
        public var totalOrder: Int
        /// 1-based position of the event among the transaction's events of its table.
        public var dataCollectionOrder: Int

        public init(id: String, totalOrder: Int, dataCollectionOrder: Int) {
            self.id = id
            self.totalOrder = totalOrder
            self.dataCollectionOrder = dataCollectionOrder
        }

        /// Debezium's transaction id: `"<xid>:<commit LSN as a number>"`.
        public static func id(of transaction: TransactionInfo) -> String {
            "\(transaction.xid):\(transaction.commitLSN.rawValue)"
        }
    }

    /// `source.name`: the pipeline's name.
    public var pipeline: String
    /// `source.db`: the source database's name.
    public var database: String
    /// How column values are written. Unchanged TOAST values are never written (see above).
    public var values: ValueJSONOptions

    public init(pipeline: String, database: String, values: ValueJSONOptions = ValueJSONOptions()) {
        self.pipeline = pipeline
        self.database = database
        self.values = values
    }

    /// What is the same in every event of one table definition, rendered once: the quoted
    /// column names and the start of the `source` object.
    public struct Rendering: Sendable {
        public let table: TableSchema
        let columnKeys: [[UInt8]]
        let isKey: [Bool]
        /// `{"connector":"ferry","name":…,"db":…,"schema":…,"table":…,"txId":`
        let sourcePrefix: [UInt8]
    }

    /// Renders the parts of `table`'s events that never change (cache it per table definition).
    public func rendering(for table: TableSchema) -> Rendering {
        Rendering(table: table, columnKeys: table.columns.map { JSONWriter.quotedKey($0.name) },
                  isKey: table.columns.map(\.isKey), sourcePrefix: sourcePrefix(schema: table.schema, table: table.name))
    }

    // MARK: Payloads

    /// Writes an event's value object. `rendering` is the table's (see ``rendering(for:)``);
    /// `transaction` the source transaction the change belongs to (nil for snapshot rows).
    public func writeValue(
        _ json: inout JSONWriter, op: Operation, rendering: Rendering, before: (row: Row, keyOnly: Bool)?, after: Row?,
        lsn: LSN?, transaction: TransactionInfo?, now: Int64, transactionBlock: TransactionBlock? = nil
    ) {
        var unchangedToast: [String] = []
        var unchangedBefore: [String] = []
        json.beginObject()
        json.key("before")
        if let before { rowObject(&json, before.row, rendering, keyOnly: before.keyOnly, unchangedToast: &unchangedBefore) } else { json.null() }
        json.key("after")
        if let after { rowObject(&json, after, rendering, keyOnly: false, unchangedToast: &unchangedToast) } else { json.null() }
        json.key("source")
        json.rawValue { bytes in
            bytes.append(contentsOf: rendering.sourcePrefix)
            appendSourceRest(&bytes, lsn: lsn, transaction: op == .read ? nil : transaction, snapshot: op == .read, now: now)
        }
        json.key("op"); json.string(op.rawValue)
        json.key("ts_ms"); json.integer(now)
        if let transactionBlock {
            json.key("transaction")
            json.beginObject()
            json.key("id"); json.string(transactionBlock.id)
            json.key("total_order"); json.integer(Int64(transactionBlock.totalOrder))
            json.key("data_collection_order"); json.integer(Int64(transactionBlock.dataCollectionOrder))
            json.endObject()
        }
        if !unchangedToast.isEmpty {
            json.key("unchanged_toast")
            json.beginArray()
            for column in unchangedToast { json.string(column) }
            json.endArray()
        }
        json.endObject()
    }

    /// Writes an event's key object (the key columns of `row`) and returns true, or writes
    /// nothing and returns false when the table has no key Ferry can use: no key columns, or
    /// `REPLICA IDENTITY FULL` (every column is "key" then, and a key that changes with every
    /// update would scatter one row's events over partitions). Debezium writes no key for
    /// tables without a primary key either.
    @discardableResult
    public func writeKey(_ json: inout JSONWriter, rendering: Rendering, row: Row) -> Bool {
        guard Self.hasKey(rendering.table) else { return false }
        json.beginObject()
        for index in row.indices where index < rendering.isKey.count && rendering.isKey[index] {
            json.key(quoted: rendering.columnKeys[index])
            json.value(row[index], options: values)
        }
        json.endObject()
        return true
    }

    /// Writes a `pg_logical_emit_message` message as Debezium does: op `m`, and
    /// `"message": {"prefix": …, "content": <base64>}`.
    public func writeMessage(_ json: inout JSONWriter, prefix: String, content: [UInt8], lsn: LSN,
                             transaction: TransactionInfo?, now: Int64) {
        json.beginObject()
        json.key("op"); json.string("m")
        json.key("ts_ms"); json.integer(now)
        writeSource(&json, schema: "", table: "", lsn: lsn, transaction: transaction, snapshot: false, now: now)
        json.key("message")
        json.beginObject()
        json.key("prefix"); json.string(prefix)
        json.key("content"); json.base64(content)
        json.endObject()
        json.endObject()
    }

    /// Whether events of `table` get a key (see ``writeKey(_:rendering:row:)``).
    public static func hasKey(_ table: TableSchema) -> Bool {
        table.replicaIdentity != .full && table.columns.contains(where: \.isKey)
    }

    /// The `source` member.
    public func writeSource(_ json: inout JSONWriter, schema: String, table: String, lsn: LSN?,
                            transaction: TransactionInfo?, snapshot: Bool, now: Int64) {
        json.key("source")
        json.rawValue { bytes in
            bytes.append(contentsOf: sourcePrefix(schema: schema, table: table))
            appendSourceRest(&bytes, lsn: lsn, transaction: transaction, snapshot: snapshot, now: now)
        }
    }

    /// `{"connector":"ferry","name":…,"db":…,"schema":…,"table":…,"txId":`: the part of
    /// `source` that is the same for every event of a table.
    private func sourcePrefix(schema: String, table: String) -> [UInt8] {
        var prefix = JSONWriter(reservingCapacity: 128)
        prefix.beginObject()
        prefix.key("connector"); prefix.string("ferry")
        prefix.key("name"); prefix.string(pipeline)
        prefix.key("db"); prefix.string(database)
        prefix.key("schema"); prefix.string(schema)
        prefix.key("table"); prefix.string(table)
        prefix.key("txId")
        return prefix.bytes
    }

    /// The rest of `source` after ``sourcePrefix(schema:table:)``: txId, lsn, ts_ms (the commit
    /// time, or `now` outside a transaction), snapshot, and the closing brace.
    private func appendSourceRest(_ bytes: inout [UInt8], lsn: LSN?, transaction: TransactionInfo?, snapshot: Bool, now: Int64) {
        if let transaction { bytes.appendDecimal(UInt64(transaction.xid)) } else { bytes.append(contentsOf: "null".utf8) }
        bytes.append(contentsOf: #","lsn":"#.utf8)
        if let lsn { bytes.appendDecimal(Int64(clamping: lsn.rawValue)) } else { bytes.append(contentsOf: "null".utf8) }
        bytes.append(contentsOf: #","ts_ms":"#.utf8)
        bytes.appendDecimal(transaction.map { Self.milliseconds($0.commitTime) } ?? now)
        bytes.append(contentsOf: snapshot ? #","snapshot":"true"}"#.utf8 : #","snapshot":"false"}"#.utf8)
    }

    private func rowObject(_ json: inout JSONWriter, _ row: Row, _ rendering: Rendering, keyOnly: Bool,
                           unchangedToast: inout [String]) {
        json.beginObject()
        let count = min(row.count, rendering.columnKeys.count)
        for index in 0..<count {
            if keyOnly && !rendering.isKey[index] { continue }
            let value = row[index]
            if case .unchangedToast = value {
                unchangedToast.append(rendering.table.columns[index].name)
                continue
            }
            json.key(quoted: rendering.columnKeys[index])
            json.value(value, options: values)
        }
        json.endObject()
    }

    // MARK: Kafka Connect schemas (`schemas.enable`)

    /// The key's schema in Kafka Connect's JsonConverter form (`{"type":"struct",…}`).
    public func writeKeySchema(_ json: inout JSONWriter, table: TableSchema, name: String) {
        structSchema(&json, name: "\(name).Key", optional: false, field: nil) { json in
            for column in table.columns where column.isKey { fieldSchema(&json, column, optional: false) }
        }
    }

    /// The value's schema (Debezium's `Envelope`) in Kafka Connect's JsonConverter form.
    public func writeValueSchema(_ json: inout JSONWriter, table: TableSchema, name: String, transactionBlock: Bool) {
        structSchema(&json, name: "\(name).Envelope", optional: false, field: nil) { json in
            for field in ["before", "after"] {
                structSchema(&json, name: "\(name).Value", optional: true, field: field) { json in
                    // Every field optional: NULL, a key-only `before` and unchanged TOAST leave fields out.
                    for column in table.columns { fieldSchema(&json, column, optional: true) }
                }
            }
            structSchema(&json, name: "dev.ferry.Source", optional: false, field: "source") { json in
                for (field, type, optional) in [("connector", "string", false), ("name", "string", false), ("db", "string", false),
                                                ("schema", "string", false), ("table", "string", false), ("txId", "int64", true),
                                                ("lsn", "int64", true), ("ts_ms", "int64", false), ("snapshot", "string", true)] {
                    simpleField(&json, field: field, type: type, optional: optional)
                }
            }
            simpleField(&json, field: "op", type: "string", optional: false)
            simpleField(&json, field: "ts_ms", type: "int64", optional: true)
            if transactionBlock {
                structSchema(&json, name: "event.block", optional: true, field: "transaction") { json in
                    simpleField(&json, field: "id", type: "string", optional: false)
                    simpleField(&json, field: "total_order", type: "int64", optional: false)
                    simpleField(&json, field: "data_collection_order", type: "int64", optional: false)
                }
            }
            json.beginObject()
            json.key("type"); json.string("array")
            json.key("items")
            json.beginObject()
            json.key("type"); json.string("string")
            json.key("optional"); json.bool(false)
            json.endObject()
            json.key("optional"); json.bool(true)
            json.key("field"); json.string("unchanged_toast")
            json.endObject()
        }
    }

    /// `{"type":"struct","fields":[…],"optional":…,"name":…[,"field":…]}`.
    private func structSchema(_ json: inout JSONWriter, name: String, optional: Bool, field: String?,
                              fields: (inout JSONWriter) -> Void) {
        json.beginObject()
        json.key("type"); json.string("struct")
        json.key("fields")
        json.beginArray()
        fields(&json)
        json.endArray()
        json.key("optional"); json.bool(optional)
        json.key("name"); json.string(name)
        if let field { json.key("field"); json.string(field) }
        json.endObject()
    }

    private func simpleField(_ json: inout JSONWriter, field: String, type: String, optional: Bool) {
        json.beginObject()
        json.key("type"); json.string(type)
        json.key("optional"); json.bool(optional)
        json.key("field"); json.string(field)
        json.endObject()
    }

    private func fieldSchema(_ json: inout JSONWriter, _ column: TableSchema.Column, optional: Bool) {
        json.beginObject()
        typeSchema(&json, oid: column.typeOID)
        json.key("optional"); json.bool(optional)
        json.key("field"); json.string(column.name)
        json.endObject()
    }

    /// The Kafka Connect type (and Debezium semantic name) of a column of type `oid`, matching
    /// how ``JSONWriter/value(_:options:)`` writes its values.
    private func typeSchema(_ json: inout JSONWriter, oid: UInt32) {
        if let element = TypeOID.builtinArrayElement(oid) {
            json.key("type"); json.string("array")
            json.key("items")
            json.beginObject()
            typeSchema(&json, oid: element)
            json.key("optional"); json.bool(true)
            json.endObject()
            return
        }
        let (type, name) = Self.connectType(oid, jsonAsString: values.jsonAsString)
        json.key("type"); json.string(type)
        if let name { json.key("name"); json.string(name) }
    }

    /// Kafka Connect schema type and Debezium semantic type name of a scalar type.
    public static func connectType(_ oid: UInt32, jsonAsString: Bool) -> (type: String, name: String?) {
        switch oid {
        case TypeOID.bool: ("boolean", nil)
        case TypeOID.int2: ("int16", nil)
        case TypeOID.int4: ("int32", nil)
        case TypeOID.int8, TypeOID.oid: ("int64", nil)
        case TypeOID.float4: ("float", nil)
        case TypeOID.float8: ("double", nil)
        case TypeOID.bytea: ("bytes", nil)
        case TypeOID.date: ("string", "io.debezium.time.IsoDate")
        case TypeOID.time: ("string", "io.debezium.time.IsoTime")
        case TypeOID.timetz: ("string", "io.debezium.time.ZonedTime")
        case TypeOID.timestamp: ("string", "io.debezium.time.IsoTimestamp")
        case TypeOID.timestamptz: ("string", "io.debezium.time.ZonedTimestamp")
        case TypeOID.interval: ("string", "io.debezium.time.Interval")
        case TypeOID.uuid: ("string", "io.debezium.data.Uuid")
        case TypeOID.xml: ("string", "io.debezium.data.Xml")
        case TypeOID.json, TypeOID.jsonb: ("string", jsonAsString ? "io.debezium.data.Json" : nil)
        default: ("string", nil)
        }
    }

    // MARK: Time

    /// Milliseconds since 1970 now.
    public static func nowMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    /// A PostgreSQL timestamp as milliseconds since 1970 (rounded down).
    public static func milliseconds(_ timestamp: PostgresTimestamp) -> Int64 {
        let micros = timestamp.microsecondsSince1970
        return micros >= 0 ? micros / 1000 : (micros - 999) / 1000
    }
}
