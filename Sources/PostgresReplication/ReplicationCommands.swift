import NIOCore
import PostgresWire

/// `IDENTIFY_SYSTEM`'s answer.
public struct SystemIdentification: Sendable, Hashable {
    public var systemID: String
    public var timeline: Int
    /// The current WAL flush position.
    public var xlogPosition: LSN
    public var database: String?
}

/// What `CREATE_REPLICATION_SLOT` does with the snapshot it builds.
public enum SlotSnapshotAction: String, Sendable, Hashable {
    /// Export it: other connections can `SET TRANSACTION SNAPSHOT` to read exactly the data the
    /// slot's stream starts after, as long as this connection runs no other command.
    case export
    /// Use it in this connection's current transaction (which must be `REPEATABLE READ`, with
    /// nothing run yet).
    case use
    /// Neither.
    case nothing
}

/// `CREATE_REPLICATION_SLOT`'s answer.
public struct CreatedSlot: Sendable, Hashable {
    public var name: String
    /// The first position whose commits the slot will stream.
    public var consistentPoint: LSN
    /// The exported snapshot, for `SET TRANSACTION SNAPSHOT` (only with `.export`).
    public var snapshotName: String?
    public var outputPlugin: String
}

/// The pgoutput options of `START_REPLICATION`.
public struct PGOutputOptions: Sendable, Hashable {
    public enum Streaming: String, Sendable, Hashable {
        case off, on, parallel
    }

    public var publications: [String]
    /// The protocol version to ask for; `nil` picks the highest the server speaks (up to 4).
    public var protocolVersion: Int?
    public var binary: Bool
    public var messages: Bool
    public var streaming: Streaming
    public var twoPhase: Bool
    /// `none` streams only changes without a replication origin; `any` (the default) all.
    public var origin: String?

    public init(publications: [String], protocolVersion: Int? = nil, binary: Bool = false, messages: Bool = false,
                streaming: Streaming = .off, twoPhase: Bool = false, origin: String? = nil) {
        self.publications = publications
        self.protocolVersion = protocolVersion
        self.binary = binary
        self.messages = messages
        self.streaming = streaming
        self.twoPhase = twoPhase
        self.origin = origin
    }

    /// The highest pgoutput protocol version of a server: 1 (PG 10–13), 2 (14), 3 (15), 4 (16+).
    public static func highestProtocolVersion(serverVersionNumber: Int) -> Int {
        switch serverVersionNumber {
        case 160_000...: return 4
        case 150_000..<160_000: return 3
        case 140_000..<150_000: return 2
        default: return 1
        }
    }

    /// The protocol version these options need, checked against what the server speaks.
    public func resolvedProtocolVersion(serverVersionNumber: Int) throws -> Int {
        let highest = Self.highestProtocolVersion(serverVersionNumber: serverVersionNumber)
        let needed = max(streaming == .parallel ? 4 : streaming == .on ? 2 : 1, twoPhase ? 3 : 1)
        let version = protocolVersion ?? highest
        let server = "PostgreSQL \(serverVersionNumber / 10_000)"
        guard (1...4).contains(version), version <= highest else {
            throw PGConnectionError(.invalidConfiguration,
                "pgoutput protocol version \(version) is not available on \(server) (it speaks 1 to \(highest))",
                fix: "leave the protocol version unset to use the highest the server speaks")
        }
        guard version >= needed else {
            throw PGConnectionError(.invalidConfiguration,
                "the chosen options (streaming \(streaming.rawValue), two_phase \(twoPhase)) need pgoutput protocol \(needed), but \(version) was chosen",
                fix: needed > highest ? "these options need a newer PostgreSQL than \(server)" : "use protocol version \(needed) or higher")
        }
        if (binary || messages) && serverVersionNumber < 140_000 {
            throw PGConnectionError(.invalidConfiguration, "binary and messages options need PostgreSQL 14 or newer (server: \(server))",
                                    fix: "turn them off for this server")
        }
        if origin != nil && serverVersionNumber < 160_000 {
            throw PGConnectionError(.invalidConfiguration, "the origin option needs PostgreSQL 16 or newer (server: \(server))",
                                    fix: "leave origin unset for this server")
        }
        return version
    }

    /// The option list of `START_REPLICATION … LOGICAL X/X (…)`.
    public func optionList(protocolVersion: Int) -> String {
        let names = publications.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: ",")
        var options = ["proto_version '\(protocolVersion)'", "publication_names \(SQLQuoting.literal(names))"]
        if binary { options.append("binary 'true'") }
        if messages { options.append("messages 'true'") }
        if streaming != .off { options.append("streaming '\(streaming.rawValue)'") }
        if twoPhase { options.append("two_phase 'true'") }
        if let origin { options.append("origin \(SQLQuoting.literal(origin))") }
        return options.joined(separator: ", ")
    }
}

/// Replication slot names: lower-case letters, digits and underscores, at most 63 bytes.
func validateSlotName(_ name: String) throws {
    guard !name.isEmpty, name.utf8.count <= 63,
          name.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" })
    else {
        throw PGConnectionError(.invalidConfiguration, "\"\(name)\" is not a valid replication slot name",
                                fix: "use only lower-case letters, digits and underscores (at most 63 characters)")
    }
}

extension PGConnection {
    private func requireReplication(_ command: String) throws {
        guard isReplication else {
            throw PGConnectionError(.invalidConfiguration, "\(command) needs a replication connection",
                                    fix: "connect with replication: .database (replication=database)")
        }
    }

    public func identifySystem() async throws -> SystemIdentification {
        try requireReplication("IDENTIFY_SYSTEM")
        guard let result = try await simpleQuery("IDENTIFY_SYSTEM").last, let row = result.rows.first, row.count >= 3,
              let timeline = row[1].flatMap({ Int($0) }), let position = row[2].flatMap({ LSN($0) })
        else { throw PGConnectionError(.protocolViolation, "IDENTIFY_SYSTEM returned an unexpected row") }
        return SystemIdentification(systemID: row[0] ?? "", timeline: timeline, xlogPosition: position,
                                    database: row.count > 3 ? row[3] : nil)
    }

    /// Creates a logical replication slot with the pgoutput plugin.
    ///
    /// Slot creation waits for every transaction running on the server to finish: a long
    /// open transaction blocks it.
    public func createReplicationSlot(_ name: String, temporary: Bool = false, snapshot: SlotSnapshotAction = .nothing,
                                      twoPhase: Bool = false) async throws -> CreatedSlot {
        try requireReplication("CREATE_REPLICATION_SLOT")
        try validateSlotName(name)
        let version = serverVersionNumber
        var command = "CREATE_REPLICATION_SLOT \"\(name)\"" + (temporary ? " TEMPORARY" : "") + " LOGICAL pgoutput"
        if version >= 150_000 {
            var options = ["SNAPSHOT '\(snapshot.rawValue)'"]
            if twoPhase { options.append("TWO_PHASE") }
            command += " (" + options.joined(separator: ", ") + ")"
        } else {
            if twoPhase {
                throw PGConnectionError(.invalidConfiguration, "two-phase replication slots need PostgreSQL 15 or newer",
                                        fix: "create the slot without two_phase on this server")
            }
            switch snapshot {
            case .export: command += " EXPORT_SNAPSHOT"
            case .use: command += " USE_SNAPSHOT"
            case .nothing: command += " NOEXPORT_SNAPSHOT"
            }
        }
        let result: QueryResult
        do {
            guard let last = try await simpleQuery(command).last else {
                throw PGConnectionError(.protocolViolation, "CREATE_REPLICATION_SLOT returned no row")
            }
            result = last
        } catch let error as PGConnectionError where error.sqlState == "42710" {
            throw PGConnectionError(.server, "replication slot \"\(name)\" already exists",
                fix: "reuse it (Ferry resumes from its position), or drop it with `ferry slot drop \(name)`",
                serverError: error.serverError)
        } catch let error as PGConnectionError where error.sqlState == "53400" {
            throw PGConnectionError(.notReplicationCapable, "all replication slots are in use: \(error.serverError?.message ?? "")",
                fix: "drop unused slots (ferry slot list / drop) or raise max_replication_slots", serverError: error.serverError)
        }
        guard let consistent = result.value("consistent_point").flatMap({ LSN($0) }) else {
            throw PGConnectionError(.protocolViolation, "CREATE_REPLICATION_SLOT returned no consistent point")
        }
        return CreatedSlot(name: result.value("slot_name") ?? name, consistentPoint: consistent,
                           snapshotName: result.value("snapshot_name"), outputPlugin: result.value("output_plugin") ?? "pgoutput")
    }

    /// Drops a slot; with `wait`, waits for an active walsender on it to go away instead of failing.
    public func dropReplicationSlot(_ name: String, wait: Bool = false) async throws {
        try requireReplication("DROP_REPLICATION_SLOT")
        try validateSlotName(name)
        do {
            try await simpleQuery("DROP_REPLICATION_SLOT \"\(name)\"" + (wait ? " WAIT" : ""))
        } catch let error as PGConnectionError where error.sqlState == "42704" {
            throw PGConnectionError(.server, "replication slot \"\(name)\" does not exist", serverError: error.serverError)
        }
    }

    /// Starts streaming from `slot` and returns the stream of decoded messages. The connection
    /// belongs to the stream until the stream is stopped.
    ///
    /// Streaming starts at the later of `start` and the slot's confirmed position.
    public func startReplication(slot: String, start: LSN = .invalid, options: PGOutputOptions,
                                 statusInterval: Duration = .seconds(5),
                                 feedback: ReplicationFeedback? = nil) async throws -> ReplicationStream {
        try requireReplication("START_REPLICATION")
        try validateSlotName(slot)
        try ensureUsable()
        guard !options.publications.isEmpty else {
            throw PGConnectionError(.invalidConfiguration, "START_REPLICATION needs at least one publication",
                                    fix: "name the publication(s) to stream")
        }
        let version = try options.resolvedProtocolVersion(serverVersionNumber: serverVersionNumber)
        try await send(.query("START_REPLICATION SLOT \"\(slot)\" LOGICAL \(start) (\(options.optionList(protocolVersion: version)))"))
        var failure: PGConnectionError?
        while true {
            let message = try await next()
            switch message {
            case .copyBothResponse:
                let feedback = feedback ?? ReplicationFeedback(flushed: start)
                let interval = TimeAmount.nanoseconds(Int64(statusInterval.components.seconds) * 1_000_000_000
                                                      + statusInterval.components.attoseconds / 1_000_000_000)
                let handler = self.handler
                try await channel.eventLoop.submit {
                    guard let context = handler.value.context else { return }
                    handler.value.startReplicationFeedback(feedback, interval: interval, context: context)
                }.get()
                return ReplicationStream(connection: self, feedback: feedback, protocolVersion: version,
                                         parallelStreaming: options.streaming == .parallel)
            case .errorResponse(let fields):
                failure = replicationStartError(serverError(fields), slot: slot, publications: options.publications)
            case .noticeResponse(let fields):
                logNotice(fields)
            case .readyForQuery:
                throw failure ?? PGConnectionError(.protocolViolation, "START_REPLICATION ended without streaming")
            case .commandComplete, .rowDescription, .dataRow:
                continue
            default:
                throw unexpected(message, during: "START_REPLICATION")
            }
        }
    }

    private func replicationStartError(_ error: PGConnectionError, slot: String, publications: [String]) -> PGConnectionError {
        switch error.sqlState {
        case "42704":
            return PGConnectionError(.server, "replication slot \"\(slot)\" does not exist",
                fix: "it may have been dropped (Neon drops slots that stop advancing; a branch restore deletes them): create it again and re-snapshot",
                serverError: error.serverError)
        case "55006":
            return PGConnectionError(.server, "replication slot \"\(slot)\" is in use by another process: \(error.serverError?.message ?? "")",
                fix: "stop the other consumer, or wait for its walsender to time out (wal_sender_timeout)", serverError: error.serverError)
        default:
            if (error.serverError?.message ?? "").contains("publication") {
                return PGConnectionError(.server, "\(error.serverError?.message ?? "publication error") (publications: \(publications.joined(separator: ", ")))",
                    fix: "create the publication (CREATE PUBLICATION … FOR TABLE …) or fix its name", serverError: error.serverError)
            }
            return error
        }
    }
}
