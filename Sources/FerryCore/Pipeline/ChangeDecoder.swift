import NIOCore
import PGOutput
import PostgresReplication
import PostgresWire

/// Turns decoded pgoutput messages into typed pipeline events: keeps the schema of each
/// relation, reports definition changes, and decodes every column by type OID.
public struct ChangeDecoder: Sendable {
    public private(set) var relations: [UInt32: TableSchema] = [:]
    public var values: ValueDecoder
    private var transaction: TransactionInfo?
    /// Inside a block of a streamed transaction: its xid, and the (sub)transaction of the last change.
    private var streamed: (top: UInt32, subtransaction: UInt32)?

    public init(values: ValueDecoder = ValueDecoder(), knownSchemas: [TableSchema] = []) {
        self.values = values
        for schema in knownSchemas { relations[schema.relationID] = schema }
    }

    /// Appends the events for `message` (none for messages that carry no data for destinations).
    public mutating func append(_ message: WALMessage, to events: inout [PipelineEvent]) throws {
        switch message.message {
        case .begin(let begin):
            let info = TransactionInfo(xid: begin.xid, commitLSN: begin.finalLSN, commitTime: begin.commitTimestamp)
            transaction = info
            events.append(.begin(info))
        case .commit(let commit):
            let info = transaction ?? TransactionInfo(xid: 0, commitLSN: commit.commitLSN, commitTime: commit.commitTimestamp)
            transaction = nil
            events.append(.commit(info, endLSN: commit.endLSN))
        case .relation(let relation):
            let schema = TableSchema(relation)
            if let known = relations[relation.id] {
                if known.hasSameDefinition(as: schema) { return }
                relations[relation.id] = schema
                events.append(.schemaChange(SchemaChange(old: known, new: schema)))
            } else {
                relations[relation.id] = schema
            }
        case .insert(let insert):
            noteSubtransaction(insert.streamXid, to: &events)
            let table = try schema(insert.relationID)
            events.append(.change(.insert(table: table, row: try row(insert.newTuple, table)), lsn: message.walStart))
        case .update(let update):
            noteSubtransaction(update.streamXid, to: &events)
            let table = try schema(update.relationID)
            let new = try row(update.newTuple, table)
            switch update.oldTuple {
            case .key(let old)?:
                events.append(.change(.update(table: table, old: try row(old, table), oldIsKeyOnly: true, row: new), lsn: message.walStart))
            case .full(let old)?:
                events.append(.change(.update(table: table, old: try row(old, table), oldIsKeyOnly: false, row: new), lsn: message.walStart))
            case nil:
                events.append(.change(.update(table: table, old: nil, oldIsKeyOnly: false, row: new), lsn: message.walStart))
            }
        case .delete(let delete):
            noteSubtransaction(delete.streamXid, to: &events)
            let table = try schema(delete.relationID)
            let keyOnly: Bool
            if case .key = delete.oldTuple { keyOnly = true } else { keyOnly = false }
            events.append(.change(.delete(table: table, old: try row(delete.oldTuple.tuple, table), oldIsKeyOnly: keyOnly),
                                  lsn: message.walStart))
        case .truncate(let truncate):
            noteSubtransaction(truncate.streamXid, to: &events)
            let tables = try truncate.relationIDs.map { try schema($0) }
            events.append(.change(.truncate(tables: tables, cascade: truncate.options.contains(.cascade),
                                            restartIdentity: truncate.options.contains(.restartIdentity)), lsn: message.walStart))
        case .message(let logical):
            if logical.isTransactional { noteSubtransaction(logical.streamXid, to: &events) }
            events.append(.message(prefix: logical.prefix, content: Array(logical.content.readableBytesView),
                                   lsn: logical.lsn, transactional: logical.isTransactional))
        case .origin, .type:
            return
        case .streamStart(let start):
            streamed = (start.xid, start.xid)
            events.append(.streamStart(xid: start.xid, first: start.isFirstSegment))
        case .streamStop:
            streamed = nil
            events.append(.streamStop)
        case .streamCommit(let commit):
            let info = TransactionInfo(xid: commit.xid, commitLSN: commit.commitLSN, commitTime: commit.commitTimestamp)
            events.append(.streamCommit(info, endLSN: commit.endLSN))
        case .streamAbort(let abort):
            events.append(.streamAbort(xid: abort.xid, subtransaction: abort.subtransactionXid))
        case .beginPrepare, .prepare, .streamPrepare, .commitPrepared, .rollbackPrepared:
            throw FerryError(.protocolMismatch,
                "the server sent a \(message.message) message, but this pipeline did not ask for two-phase decoding",
                fix: "report this as a bug: Ferry starts replication without the two_phase option")
        }
    }

    /// Inside a block of a streamed transaction: before a change made by another
    /// (sub)transaction than the one before it, says which.
    private mutating func noteSubtransaction(_ xid: UInt32?, to events: inout [PipelineEvent]) {
        guard let xid, let current = streamed, current.subtransaction != xid else { return }
        streamed = (current.top, xid)
        events.append(.subtransaction(xid: xid))
    }

    private func schema(_ relationID: UInt32) throws -> TableSchema {
        guard let schema = relations[relationID] else {
            throw FerryError(.protocolMismatch, "a change arrived for relation \(relationID) before its Relation message",
                             fix: "report this as a bug; restarting the pipeline replays from the last confirmed position")
        }
        return schema
    }

    private func row(_ tuple: TupleData, _ table: TableSchema) throws -> Row {
        guard tuple.count == table.columns.count else {
            throw FerryError(.protocolMismatch,
                "a row of \(table.qualifiedName) has \(tuple.count) columns, its Relation message \(table.columns.count)",
                fix: "report this as a bug")
        }
        var row = Row()
        row.reserveCapacity(tuple.count)
        // The columns are read in place (no slice, no copy of a column, which retains its name).
        try table.columns.withUnsafeBufferPointer { columns in
            try tuple.forEachColumn { kind, bytes in
                let index = row.count
                do {
                    row.append(try values.decode(kind, bytes, typeOID: columns[index].typeOID))
                } catch {
                    let column = columns[index]
                    throw FerryError(.unsupportedValue,
                        "column \(column.name) of \(table.qualifiedName) (type OID \(column.typeOID)) has a value Ferry cannot decode: \(error)",
                        fix: "report this with the column's type; other columns and tables are unaffected")
                }
            }
        }
        guard row.count == table.columns.count else {
            throw FerryError(.protocolMismatch, "a row of \(table.qualifiedName) ended after \(row.count) of its \(table.columns.count) columns",
                             fix: "report this as a bug")
        }
        return row
    }
}
