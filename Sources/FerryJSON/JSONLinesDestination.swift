#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FerryCore
import Logging
import PostgresWire

/// A file or standard output written by ``JSONLinesDestination`` failed.
public struct JSONLinesError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The `errno` of the failing call, when there was one.
    public var errno: Int32?

    public init(message: String, errno: Int32? = nil) {
        self.message = message
        self.errno = errno
    }

    public var description: String {
        guard let errno else { return message }
        return "\(message): \(String(cString: strerror(errno)))"
    }
}

/// JSON lines (`jsonl:PATH`, or `-` for standard output): one JSON object per line and per
/// change, in Debezium's envelope, so consumers of Debezium's PostgreSQL connector work.
///
/// ## A change
/// ```json
/// {"before":null,"after":{"id":1,"name":"Ada"},
///  "source":{"connector":"ferry","name":"<pipeline>","db":"<database>","schema":"public","table":"users",
///            "txId":771,"lsn":24023128,"ts_ms":1709214300123,"snapshot":"false"},
///  "op":"c","ts_ms":1709214300456}
/// ```
/// - `op`: `c` insert, `u` update, `d` delete, `r` snapshot row, `t` truncate (one line per
///   truncated table, `before` and `after` null), `m` a `pg_logical_emit_message` message
///   (`"message": {"prefix": …, "content": <base64>}`, as Debezium writes it).
/// - `before`: the old row when PostgreSQL sent it: only the key columns when only the key was
///   sent (updates that changed the key, deletes, under `DEFAULT`/`INDEX` identity), the whole
///   row under `FULL` identity; otherwise `null`.
/// - values are typed as ``ValueJSONOptions`` describes (numbers as numbers, `numeric` as
///   exact strings, times ISO-8601, `bytea` base64, `json` nested).
/// - **Unchanged TOAST**: a column whose value was not sent because it did not change is
///   *absent* from `after` (never `null`, never a placeholder), and its name is listed in an
///   extra top-level field `"unchanged_toast": ["col", …]` (present only when non-empty). A
///   consumer merges: absent means "keep what you have".
/// - `source.lsn` is the WAL position of the change's record, as a number; `source.txId` the
///   transaction id; `source.ts_ms` the commit time (ms since 1970). Snapshot rows have
///   `"snapshot": "true"`, `txId` and `lsn` null, and `source.ts_ms` the time they were read.
///   The top-level `ts_ms` is when Ferry wrote the line.
///
/// ## A schema change
/// ```json
/// {"op":"schema","source":{…,"schema":"public","table":"users"},"ts_ms":…,
///  "changes":[{"type":"column_added","column":"email"}],
///  "columns":[{"name":"id","type_oid":23,"type_modifier":-1,"key":true,"type_name":"int4"}, …],
///  "replica_identity":"default"}
/// ```
/// `changes` types: `column_added`, `column_dropped` (`column`), `column_renamed` (`from`,
/// `to`), `type_changed` (`column`, `from_type_oid`, `to_type_oid`, `from_type_modifier`,
/// `to_type_modifier`), `key_changed` (`from`, `to`: column names), `table_renamed` (`from`,
/// `to`: `schema.table`), `replica_identity_changed` (`from`, `to`). `columns` is the new
/// definition. Snapshot table start/finish markers write no line.
///
/// ## Delivery: at-least-once
/// Lines are buffered (``bufferSize`` bytes) and written when the buffer fills; `flush()` writes
/// the buffer, `fsync`s a file, and returns the `endLSN` of the last commit written. Lines of a
/// transaction not yet committed may already be in the file, and after a crash the pipeline
/// delivers again from its last confirmed position, so **a line can appear more than once:
/// consumers deduplicate on `source.lsn` (with `source.table`)**. JSON lines cannot store a
/// position atomically with the data, so `open()` returns no durable position: the pipeline keeps
/// it in its state store. A line cut by a crash is ended with a newline at the next `open()`.
public actor JSONLinesDestination: Destination {
    /// Where the lines go.
    public enum Output: Sendable, Hashable, CustomStringConvertible {
        case file(String)
        case standardOutput

        /// `-` is standard output; anything else a file path.
        public init(_ argument: String) {
            self = argument == "-" ? .standardOutput : .file(argument)
        }

        public var description: String {
            switch self {
            case .file(let path): path
            case .standardOutput: "-"
            }
        }
    }

    public nonisolated let name: String
    public nonisolated let output: Output
    public nonisolated let pipeline: String
    public nonisolated let database: String
    /// Bytes buffered before they are written out.
    public nonisolated let bufferSize: Int

    private let logger: Logger
    private var descriptor: Int32 = -1
    /// The pending lines; written out when it holds `bufferSize` bytes.
    private var json: JSONWriter
    private var transaction: TransactionInfo?
    /// The `endLSN` of the last commit whose lines are buffered or written.
    private var lastCommit: LSN?
    /// The `endLSN` of the last commit written and synced.
    private var durablePosition: LSN?
    private let envelope: DebeziumEnvelope
    /// Per table definition (the schema object is kept alive here, so its identity stays unique).
    private var renderings: [ObjectIdentifier: DebeziumEnvelope.Rendering] = [:]

    /// - Parameters:
    ///   - output: a file (appended to, created if needed) or standard output.
    ///   - pipeline: the pipeline's name (`source.name`).
    ///   - database: the source database's name (`source.db`).
    ///   - name: the destination's name within the pipeline (default `jsonl:PATH`).
    ///   - bufferSize: bytes buffered before a write (at least 64 KiB).
    public init(output: Output, pipeline: String, database: String, name: String? = nil,
                bufferSize: Int = 256 * 1024, logger: Logger = Logger(label: "ferry.jsonl")) {
        self.output = output
        self.pipeline = pipeline
        self.database = database
        self.name = name ?? "jsonl:\(output)"
        self.bufferSize = max(64 * 1024, bufferSize)
        self.envelope = DebeziumEnvelope(pipeline: pipeline, database: database)
        self.json = JSONWriter(reservingCapacity: self.bufferSize + 16 * 1024)
        var logger = logger
        logger[metadataKey: "destination"] = "\(self.name)"
        self.logger = logger
    }

    /// `path` is a file path, or `-` for standard output.
    public init(path: String, pipeline: String, database: String, name: String? = nil,
                bufferSize: Int = 256 * 1024, logger: Logger = Logger(label: "ferry.jsonl")) {
        self.init(output: Output(path), pipeline: pipeline, database: database, name: name,
                  bufferSize: bufferSize, logger: logger)
    }

    // MARK: Destination

    public func open() throws -> DestinationResume {
        guard descriptor < 0 else { return DestinationResume() }
        switch output {
        case .standardOutput:
            descriptor = STDOUT_FILENO
        case .file(let path):
            let fd = posixOpen(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw JSONLinesError(message: "cannot open \(path)", errno: errno) }
            descriptor = fd
            try endCutLine(path)
        }
        return DestinationResume()
    }

    public func write(_ events: [PipelineEvent]) throws {
        guard descriptor >= 0 else { throw JSONLinesError(message: "the JSON lines destination \(name) is not open") }
        let now = DebeziumEnvelope.nowMilliseconds()
        for event in events {
            switch event {
            case .begin(let info):
                transaction = info
            case .commit(_, let endLSN):
                transaction = nil
                lastCommit = endLSN
            case .change(let change, let lsn):
                writeChange(change, lsn: lsn, now: now)
            case .snapshotRow(let table, let row):
                line(op: .read, table: table, before: nil, after: row, lsn: nil, now: now)
            case .schemaChange(let change):
                writeSchemaChange(change, now: now)
            case .message(let prefix, let content, let lsn, _):
                envelope.writeMessage(&json, prefix: prefix, content: content, lsn: lsn, transaction: transaction, now: now)
                json.bytes.append(UInt8(ascii: "\n"))
            case .snapshotTableStarted, .snapshotTableFinished:
                break
            case .snapshotCopyRows(let table, _):
                throw FerryError.unrequestedCopyRows(name, table: table)
            case .streamStart, .subtransaction, .streamStop, .streamCommit, .streamAbort:
                throw FerryError.unrequestedStreamedTransaction(name)
            }
            if json.bytes.count >= bufferSize { try writeBuffer() }
        }
    }

    public func flush() throws -> LSN? {
        guard descriptor >= 0 else { return durablePosition }
        try writeBuffer()
        if case .file(let path) = output, fsync(descriptor) != 0 {
            throw JSONLinesError(message: "cannot fsync \(path)", errno: errno)
        }
        if let lastCommit { durablePosition = lastCommit }
        return durablePosition
    }

    public func close() throws {
        guard descriptor >= 0 else { return }
        _ = try flush()
        if case .file = output { _ = posixClose(descriptor) }
        descriptor = -1
        transaction = nil
    }

    // MARK: Lines

    private func writeChange(_ change: Change, lsn: LSN, now: Int64) {
        switch change {
        case .insert(let table, let row):
            line(op: .create, table: table, before: nil, after: row, lsn: lsn, now: now)
        case .update(let table, let old, let oldIsKeyOnly, let row):
            line(op: .update, table: table, before: old.map { ($0, oldIsKeyOnly) }, after: row, lsn: lsn, now: now)
        case .delete(let table, let old, let oldIsKeyOnly):
            line(op: .delete, table: table, before: (old, oldIsKeyOnly), after: nil, lsn: lsn, now: now)
        case .truncate(let tables, _, _):
            for table in tables {
                line(op: .truncate, table: table, before: nil, after: nil, lsn: lsn, now: now)
            }
        }
    }

    private func line(op: DebeziumEnvelope.Operation, table: TableSchema, before: (row: Row, keyOnly: Bool)?, after: Row?,
                      lsn: LSN?, now: Int64) {
        let rendering: DebeziumEnvelope.Rendering
        if let known = renderings[ObjectIdentifier(table)] {
            rendering = known
        } else {
            rendering = envelope.rendering(for: table)
            renderings[ObjectIdentifier(table)] = rendering
        }
        envelope.writeValue(&json, op: op, rendering: rendering, before: before, after: after, lsn: lsn,
                            transaction: op == .read ? nil : transaction, now: now)
        json.bytes.append(UInt8(ascii: "\n"))
    }

    private func writeSchemaChange(_ change: SchemaChange, now: Int64) {
        json.beginObject()
        json.key("op"); json.string("schema")
        envelope.writeSource(&json, schema: change.new.schema, table: change.new.name, lsn: nil,
                             transaction: transaction, snapshot: false, now: now)
        json.key("ts_ms"); json.integer(now)
        json.key("changes")
        json.beginArray()
        for difference in change.differences {
            json.beginObject()
            switch difference {
            case .columnAdded(let column):
                json.key("type"); json.string("column_added")
                json.key("column"); json.string(column)
            case .columnDropped(let column):
                json.key("type"); json.string("column_dropped")
                json.key("column"); json.string(column)
            case .columnRenamed(let from, let to):
                json.key("type"); json.string("column_renamed")
                json.key("from"); json.string(from)
                json.key("to"); json.string(to)
            case .typeChanged(let column, let fromOID, let toOID, let fromModifier, let toModifier):
                json.key("type"); json.string("type_changed")
                json.key("column"); json.string(column)
                json.key("from_type_oid"); json.integer(Int64(fromOID))
                json.key("to_type_oid"); json.integer(Int64(toOID))
                json.key("from_type_modifier"); json.integer(Int64(fromModifier))
                json.key("to_type_modifier"); json.integer(Int64(toModifier))
            case .keyChanged(let from, let to):
                json.key("type"); json.string("key_changed")
                json.key("from"); stringArray(from)
                json.key("to"); stringArray(to)
            case .tableRenamed(let from, let to):
                json.key("type"); json.string("table_renamed")
                json.key("from"); json.string(from)
                json.key("to"); json.string(to)
            case .replicaIdentityChanged(let from, let to):
                json.key("type"); json.string("replica_identity_changed")
                json.key("from"); json.string(from.rawValue)
                json.key("to"); json.string(to.rawValue)
            }
            json.endObject()
        }
        json.endArray()
        json.key("columns")
        json.beginArray()
        for column in change.new.columns {
            json.beginObject()
            json.key("name"); json.string(column.name)
            json.key("type_oid"); json.integer(Int64(column.typeOID))
            json.key("type_modifier"); json.integer(Int64(column.typeModifier))
            json.key("key"); json.bool(column.isKey)
            if let typeName = column.typeName { json.key("type_name"); json.string(typeName) }
            if let notNull = column.notNull { json.key("not_null"); json.bool(notNull) }
            json.endObject()
        }
        json.endArray()
        json.key("replica_identity"); json.string(change.new.replicaIdentity.rawValue)
        endLine()
    }

    private func stringArray(_ strings: [String]) {
        json.beginArray()
        for string in strings { json.string(string) }
        json.endArray()
    }

    private func endLine() {
        json.endObject()
        json.bytes.append(UInt8(ascii: "\n"))
    }

    // MARK: Output

    private func writeBuffer() throws {
        guard !json.bytes.isEmpty else { return }
        let fd = descriptor
        try json.bytes.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = posixWrite(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw JSONLinesError(message: "cannot write to \(output)", errno: errno)
                }
                offset += written
            }
        }
        json.reset()
    }

    /// Ends a line a crash cut short, so the next line starts on its own.
    private func endCutLine(_ path: String) throws {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw JSONLinesError(message: "cannot stat \(path)", errno: errno) }
        guard status.st_size > 0, (status.st_mode & S_IFMT) == S_IFREG else { return }
        var last: UInt8 = 0
        guard pread(descriptor, &last, 1, status.st_size - 1) == 1 else { return }
        if last != UInt8(ascii: "\n") {
            json.bytes.append(UInt8(ascii: "\n"))
            try writeBuffer()
            logger.warning("the file ended with an incomplete line (an earlier crash); a newline was added", metadata: ["path": "\(path)"])
        }
    }
}

// File-scope wrappers: inside the actor, `open`, `write` and `close` name its own methods.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }
private func posixClose(_ fd: Int32) -> Int32 { close(fd) }
