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
            let table = try schema(insert.relationID)
            events.append(.change(.insert(table: table, row: try row(insert.newTuple, table)), lsn: message.walStart))
        case .update(let update):
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
            let table = try schema(delete.relationID)
            let keyOnly: Bool
            if case .key = delete.oldTuple { keyOnly = true } else { keyOnly = false }
            events.append(.change(.delete(table: table, old: try row(delete.oldTuple.tuple, table), oldIsKeyOnly: keyOnly),
                                  lsn: message.walStart))
        case .truncate(let truncate):
            let tables = try truncate.relationIDs.map { try schema($0) }
            events.append(.change(.truncate(tables: tables, cascade: truncate.options.contains(.cascade),
                                            restartIdentity: truncate.options.contains(.restartIdentity)), lsn: message.walStart))
        case .message(let logical):
            events.append(.message(prefix: logical.prefix, content: Array(logical.content.readableBytesView),
                                   lsn: logical.lsn, transactional: logical.isTransactional))
        case .origin, .type:
            return
        case .streamStart, .streamStop, .streamCommit, .streamAbort, .beginPrepare, .prepare, .streamPrepare,
             .commitPrepared, .rollbackPrepared:
            throw FerryError(.protocolMismatch,
                "the server sent a \(message.message) message, but this pipeline asked for neither streaming nor two-phase",
                fix: "report this as a bug: Ferry starts replication without the streaming and two_phase options")
        }
    }

    private func schema(_ relationID: UInt32) throws -> TableSchema {
        guard let schema = relations[relationID] else {
            throw FerryError(.protocolMismatch, "a change arrived for relation \(relationID) before its Relation message",
                             fix: "report this as a bug; restarting the pipeline replays from the last confirmed position")
        }
        return schema
    }

    private func row(_ tuple: TupleData, _ table: TableSchema) throws -> Row {
        guard tuple.values.count == table.columns.count else {
            throw FerryError(.protocolMismatch,
                "a row of \(table.qualifiedName) has \(tuple.values.count) columns, its Relation message \(table.columns.count)",
                fix: "report this as a bug")
        }
        var row = Row()
        row.reserveCapacity(tuple.values.count)
        for (index, value) in tuple.values.enumerated() {
            let column = table.columns[index]
            do {
                row.append(try values.decode(value, typeOID: column.typeOID, typeModifier: column.typeModifier))
            } catch {
                throw FerryError(.unsupportedValue,
                    "column \(column.name) of \(table.qualifiedName) (type OID \(column.typeOID)) has a value Ferry cannot decode: \(error)",
                    fix: "report this with the column's type; other columns and tables are unaffected")
            }
        }
        return row
    }
}
