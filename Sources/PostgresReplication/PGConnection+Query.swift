import NIOCore
import PostgresWire

/// The result of one statement of a simple query: its columns, rows as text, and tag.
public struct QueryResult: Sendable {
    public var fields: [RowDescription.Field]
    public var rows: [[String?]]
    public var commandTag: String

    public init(fields: [RowDescription.Field] = [], rows: [[String?]] = [], commandTag: String = "") {
        self.fields = fields
        self.rows = rows
        self.commandTag = commandTag
    }

    /// The value of column `name` in row `row`.
    public func value(_ name: String, row: Int = 0) -> String? {
        guard row < rows.count, let index = fields.firstIndex(where: { $0.name == name }), index < rows[row].count else { return nil }
        return rows[row][index]
    }
}

extension PGConnection {
    /// Runs SQL with the simple query protocol (the only one a walsender accepts) and returns
    /// one result per statement, values as text. A server error is thrown after the server is
    /// ready again, so the connection stays usable.
    @discardableResult
    public func simpleQuery(_ sql: String) async throws -> [QueryResult] {
        try ensureUsable()
        try await send(.query(sql))
        let exchange = try await readExchange(during: "a simple query")
        if let failure = exchange.failure { throw failure }
        return exchange.results
    }

    /// Runs one statement with the extended protocol, with text parameters (nil: NULL):
    /// Parse (unless `statement` names one this connection prepared already), Bind, Execute
    /// and Sync go in one write, and the reply is read up to ReadyForQuery. Rows come back as
    /// text. A named statement stays prepared for the connection's life (see
    /// ``preparedStatements``); without a name the unnamed statement is parsed every time.
    /// A server error is thrown once the server is ready again, so the connection stays usable.
    @discardableResult
    public func extendedQuery(_ sql: String, parameters: [String?], prepareAs statement: String? = nil) async throws -> QueryResult {
        try ensureUsable()
        let name = statement ?? ""
        let parse = statement.map { !preparedStatements.contains($0) } ?? true
        var buffer = channel.allocator.buffer(capacity: 64 + (parse ? sql.utf8.count : 0) + parameters.reduce(0) { $0 + 4 + ($1?.utf8.count ?? 0) })
        do {
            if parse { try FrontendMessage.parse(statement: name, query: sql, parameterTypes: []).encode(into: &buffer) }
            try FrontendMessage.bind(portal: "", statement: name, parameters: parameters).encode(into: &buffer)
            try FrontendMessage.execute(portal: "", maxRows: 0).encode(into: &buffer)
            try FrontendMessage.sync.encode(into: &buffer)
        } catch {
            throw classify(error)
        }
        try await write(buffer)
        let exchange = try await readExchange(during: "an extended query")
        // Recorded even when Execute failed: the server keeps a statement it parsed.
        if exchange.parsed, let statement { preparedStatements.insert(statement) }
        if let failure = exchange.failure { throw failure }
        return exchange.results.last ?? QueryResult()
    }

    /// What the server answered to one exchange, up to ReadyForQuery.
    struct Exchange {
        /// One per statement that ended (CommandComplete or EmptyQueryResponse), rows as text.
        var results: [QueryResult] = []
        /// The server parsed a statement (ParseComplete).
        var parsed = false
        /// The first server error; the server skipped the rest of the exchange after it.
        var failure: PGConnectionError?
    }

    /// Reads the replies to a simple or extended query up to ReadyForQuery. COPY is refused
    /// here (``copyIn(_:_:)`` and ``copyOut(_:_:)`` run it).
    func readExchange(during phase: String) async throws -> Exchange {
        var exchange = Exchange()
        var current = QueryResult()
        while true {
            let message = try await next()
            switch message {
            case .rowDescription(let fields):
                current.fields = fields
            case .dataRow(let row):
                current.rows.append(row.columns.map { $0.map { String(buffer: $0) } })
            case .commandComplete(let tag):
                current.commandTag = tag
                exchange.results.append(current)
                current = QueryResult()
            case .emptyQueryResponse:
                exchange.results.append(current)
                current = QueryResult()
            case .parseComplete:
                exchange.parsed = true
            case .bindComplete, .noData, .portalSuspended:
                continue
            case .errorResponse, .noticeResponse, .parameterStatus:
                takeStatus(message, failure: &exchange.failure)
            case .copyInResponse:
                try await send(.copyFail(message: "Ferry sends COPY data only with copyIn"))
            case .copyOutResponse:
                exchange.failure = exchange.failure ?? PGConnectionError(.server, "\(phase) received COPY data; use copyOut(_:) for COPY … TO STDOUT")
            case .copyData, .copyDone:
                continue
            case .copyBothResponse:
                throw unexpected(message, during: "\(phase) (use startReplication for START_REPLICATION)")
            case .readyForQuery:
                return exchange
            default:
                throw unexpected(message, during: phase)
            }
        }
    }

    /// Rows of the last statement of `sql`, values as text.
    public func query(_ sql: String) async throws -> [[String?]] {
        try await simpleQuery(sql).last?.rows ?? []
    }

    /// Runs `COPY … TO STDOUT` and hands the data to `body` as it arrives: each call gets one
    /// CopyData message, or several in a row that had arrived together (PostgreSQL sends one
    /// per row: calling `body` for each costs more than copying them into one buffer). The
    /// next data is not taken before `body` returns, and the socket is not read further while
    /// the receive buffer is full: memory stays bounded however large the table.
    ///
    /// Returns the command tag (`COPY n`). If `body` throws, the connection is closed (COPY
    /// cannot be abandoned half-way on the same connection) and the error is rethrown.
    @discardableResult
    public func copyOut(_ sql: String, _ body: (ByteBuffer) async throws -> Void) async throws -> String {
        try ensureUsable()
        try await send(.query(sql))
        var tag = ""
        var failure: PGConnectionError?
        var sawCopy = false
        while true {
            let message = try await next()
            switch message {
            case .copyOutResponse:
                sawCopy = true
            case .copyData(let chunk):
                do {
                    try await body(joiningBufferedCopyData(chunk))
                } catch {
                    await close()
                    throw error
                }
            case .copyDone:
                continue
            case .commandComplete(let commandTag):
                tag = commandTag
            case .rowDescription, .dataRow, .emptyQueryResponse:
                continue
            case .errorResponse, .noticeResponse, .parameterStatus:
                takeStatus(message, failure: &failure)
            case .copyInResponse:
                try await send(.copyFail(message: "copyOut only reads"))
            case .readyForQuery:
                if let failure { throw failure }
                guard sawCopy else {
                    throw PGConnectionError(.server, "copyOut expects a COPY … TO STDOUT statement; the server ran `\(tag)`")
                }
                return tag
            default:
                throw unexpected(message, during: "COPY TO STDOUT")
            }
        }
    }

    /// Runs `COPY … FROM STDIN` and sends what `body` hands to its `send` closure as CopyData
    /// (each call one message). Returns the command tag (`COPY n`).
    ///
    /// A server error (a duplicate key, a value the column refuses) is thrown once the server
    /// is ready again, with its SQLSTATE, and the connection stays usable: the server discards
    /// the data that follows an error until CopyDone. If `body` throws, the COPY is cancelled
    /// with CopyFail and `body`'s error is rethrown.
    @discardableResult
    public func copyIn(_ sql: String, _ body: (_ send: (ByteBuffer) async throws -> Void) async throws -> Void) async throws -> String {
        try ensureUsable()
        try await send(.query(sql))
        var failure: PGConnectionError?
        // Until the server is ready for the data (or refused the statement).
        waiting: while true {
            let message = try await next()
            switch message {
            case .copyInResponse:
                break waiting
            case .errorResponse, .noticeResponse, .parameterStatus:
                takeStatus(message, failure: &failure)
            case .commandComplete, .rowDescription, .dataRow, .emptyQueryResponse:
                continue
            case .readyForQuery:
                throw failure ?? PGConnectionError(.server, "copyIn expects a COPY … FROM STDIN statement; the server did not ask for data")
            default:
                throw unexpected(message, during: "COPY FROM STDIN")
            }
        }
        var bodyError: (any Error)?
        do {
            try await body { chunk in
                var buffer = self.channel.allocator.buffer(capacity: chunk.readableBytes + 5)
                FrontendMessage.encodeCopyData(chunk, into: &buffer)
                try await self.write(buffer)
            }
            try await send(.copyDone)
        } catch {
            if isBroken { throw error }
            bodyError = error
            try await send(.copyFail(message: "Ferry stopped sending COPY data: \(error)"))
        }
        var tag = ""
        while true {
            let message = try await next()
            switch message {
            case .commandComplete(let commandTag):
                tag = commandTag
            case .errorResponse, .noticeResponse, .parameterStatus:
                takeStatus(message, failure: &failure)
            case .readyForQuery:
                if let bodyError { throw bodyError }
                if let failure { throw failure }
                return tag
            default:
                throw unexpected(message, during: "COPY FROM STDIN")
            }
        }
    }

    /// What every exchange does with these messages: a server error is kept for after
    /// ReadyForQuery (the first one), a notice is logged, a parameter change recorded.
    func takeStatus(_ message: BackendMessage, failure: inout PGConnectionError?) {
        switch message {
        case .errorResponse(let fields): failure = failure ?? serverError(fields)
        case .noticeResponse(let fields): logNotice(fields)
        case .parameterStatus(let name, let value): parameters[name] = value
        default: break
        }
    }

    func ensureUsable() throws {
        if isBroken {
            throw PGConnectionError(.connectionClosed, "the connection to \(endpoint) is no longer usable after an earlier failure",
                                    fix: "open a new connection")
        }
    }
}
