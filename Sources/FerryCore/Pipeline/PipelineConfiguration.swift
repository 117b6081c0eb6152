import PostgresWire

/// What one pipeline replicates, and how.
public struct PipelineConfiguration: Sendable {
    public enum SnapshotMode: String, Sendable, CaseIterable {
        /// Copy the tables consistently with the slot, then stream (the default).
        case initial
        /// Stream only: changes from the slot's creation on.
        case never
    }

    /// Names the slot, the publication and the state (lower-case letters, digits, underscores).
    public var name: String
    public var source: ConnectionConfiguration
    /// Tables to replicate: `schema.table` or `schema.*`. Empty: every table of the publication.
    public var tables: [String]
    /// An existing publication to use, or the one to create (default `ferry_<name>`).
    public var publication: String?
    /// The slot to use or create (default `ferry_<name>`).
    public var slot: String?
    public var snapshot: SnapshotMode
    /// Connections copying tables in parallel during the snapshot.
    public var snapshotParallelism: Int
    /// Stop once caught up with the WAL position current at start (cron-style sync).
    public var once: Bool
    /// Most events handed to destinations at once.
    public var batchSize: Int
    /// How often destinations are flushed and the position confirmed while changes flow.
    public var flushInterval: Duration
    /// How often standby status updates are sent.
    public var statusInterval: Duration
    /// Bytes of server messages buffered before the client stops reading the socket. Large
    /// enough for a whole block of a streamed transaction (the server streams one when its
    /// reorder buffer passes logical_decoding_work_mem, 64 MB by default): a walsender waiting
    /// to send does not decode, so a smaller buffer makes decoding and applying take turns
    /// (a 1,000,000-row transaction into Postgres: 20.5 s with 4 MB, 15.3 s with 64 MB here).
    public var receiveBufferBytes: Int
    /// While in-progress transactions are streamed: the most reorder-buffer memory (kB) the
    /// replication session's walsender holds before it streams the largest transaction
    /// (`logical_decoding_work_mem`, lowered to this for the session when the server's is
    /// higher; nil: the server's). Smaller than the server's default 64 MB, a large transaction
    /// starts reaching the destination sooner and less of it is left to send after its COMMIT
    /// (a 1,000,000-row insert into Postgres: applied about 0.2 s sooner with 8 MB here).
    public var streamingWorkMemoryKB: Int? = 8 << 10
    /// Reconnect with backoff after the source connection drops (nil: fail at once).
    public var reconnect: ReconnectPolicy? = ReconnectPolicy()
    /// Emit `pg_logical_emit_message` this often on the source, so a slot whose published
    /// tables are quiet still sees WAL it can confirm (nil: off).
    public var heartbeatInterval: Duration?
    /// When the slot vanished or was invalidated: drop what is left of it, forget the
    /// pipeline's state and take the snapshot again, instead of stopping with an error.
    public var resnapshotOnSlotLoss = false
    /// How often the slot is looked at while streaming (existence, `wal_status`).
    public var slotCheckInterval: Duration = .seconds(10)

    public init(name: String, source: ConnectionConfiguration, tables: [String] = [], publication: String? = nil,
                slot: String? = nil, snapshot: SnapshotMode = .initial, snapshotParallelism: Int = 4, once: Bool = false,
                batchSize: Int = 2_000, flushInterval: Duration = .milliseconds(200), statusInterval: Duration = .seconds(5),
                receiveBufferBytes: Int = 64 << 20) {
        self.name = name
        self.source = source
        self.tables = tables
        self.publication = publication
        self.slot = slot
        self.snapshot = snapshot
        self.snapshotParallelism = snapshotParallelism
        self.once = once
        self.batchSize = batchSize
        self.flushInterval = flushInterval
        self.statusInterval = statusInterval
        self.receiveBufferBytes = receiveBufferBytes
    }

    public var slotName: String { slot ?? "ferry_\(name)" }
    /// The `application_name` of the pipeline's connections (the user's, if the URL sets one):
    /// how a stale walsender of this pipeline is recognised after a reconnect.
    public var applicationName: String { source.applicationName ?? "ferry_\(name)" }
    public var publicationName: String { publication ?? "ferry_\(name)" }

    /// Checks names before anything touches the source.
    public func validate() throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_")
        guard !name.isEmpty, name.count <= 40, name.allSatisfy({ allowed.contains($0) }) else {
            throw FerryError(.configuration, "pipeline name \"\(name)\" is not valid",
                             fix: "use lower-case letters, digits and underscores (at most 40), e.g. --name orders_sync")
        }
        guard slotName.count <= 63, slotName.allSatisfy({ allowed.contains($0) }) else {
            throw FerryError(.configuration, "slot name \"\(slotName)\" is not valid",
                             fix: "slot names use lower-case letters, digits and underscores (at most 63)")
        }
        for table in tables where table.split(separator: ".").count != 2 {
            throw FerryError(.configuration, "table \"\(table)\" is not schema-qualified",
                             fix: "write tables as schema.table or schema.* (e.g. public.orders, public.*)")
        }
        if tables.isEmpty && publication == nil {
            throw FerryError(.configuration, "no tables and no publication given",
                             fix: "name tables with --tables public.orders,public.items, or an existing publication with --publication")
        }
        guard snapshotParallelism >= 1 && snapshotParallelism <= 64 else {
            throw FerryError(.configuration, "snapshot parallelism must be between 1 and 64")
        }
        guard batchSize >= 1 else { throw FerryError(.configuration, "batch size must be at least 1") }
    }
}

/// Backoff for reconnecting to the source: `initial`, doubling up to `maximum`, with jitter;
/// back to `initial` once a connection lasted `resetAfter`.
public struct ReconnectPolicy: Sendable, Hashable {
    public var initial: Duration = .milliseconds(500)
    public var maximum: Duration = .seconds(30)
    public var resetAfter: Duration = .seconds(60)
    /// Give up after this many failed attempts in a row (nil: never).
    public var maximumAttempts: Int?

    public init(initial: Duration = .milliseconds(500), maximum: Duration = .seconds(30), maximumAttempts: Int? = nil) {
        self.initial = initial
        self.maximum = maximum
        self.maximumAttempts = maximumAttempts
    }

    public func delay(attempt: Int) -> Duration {
        var delay = initial
        for _ in 0..<min(attempt, 20) where delay < maximum { delay *= 2 }
        delay = min(delay, maximum)
        return delay * Double.random(in: 0.8...1.2)
    }
}
