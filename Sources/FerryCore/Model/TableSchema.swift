import PGOutput

/// A published table as the replication stream (a Relation message) or the catalog describes it.
///
/// A reference type: every change of a table points at the same schema object, and a schema
/// change produces a new object, so `===` tells whether two changes saw the same definition.
public final class TableSchema: Sendable, CustomStringConvertible {
    public struct Column: Sendable, Hashable {
        public var name: String
        public var typeOID: UInt32
        public var typeModifier: Int32
        /// Part of the replica identity (the primary key, the identity index, or every column under FULL).
        public var isKey: Bool
        /// The type's name as the catalog spells it (`int4`, `public.mood`), when known.
        public var typeName: String?
        /// Declared NOT NULL, when known (from the catalog; the stream does not say).
        public var notNull: Bool?

        public init(name: String, typeOID: UInt32, typeModifier: Int32 = -1, isKey: Bool = false,
                    typeName: String? = nil, notNull: Bool? = nil) {
            self.name = name
            self.typeOID = typeOID
            self.typeModifier = typeModifier
            self.isKey = isKey
            self.typeName = typeName
            self.notNull = notNull
        }
    }

    public enum ReplicaIdentity: String, Sendable, Hashable {
        case `default`, nothing, full, index
    }

    /// The table's OID (pgoutput's relation id).
    public let relationID: UInt32
    public let schema: String
    public let name: String
    public let columns: [Column]
    public let replicaIdentity: ReplicaIdentity
    /// `schema.name`, unquoted (made once: destinations look tables up by it for every row).
    public let qualifiedName: String

    public init(relationID: UInt32, schema: String, name: String, columns: [Column], replicaIdentity: ReplicaIdentity = .default) {
        self.relationID = relationID
        self.schema = schema
        self.name = name
        self.qualifiedName = "\(schema).\(name)"
        self.columns = columns
        self.replicaIdentity = replicaIdentity
    }

    /// From a pgoutput Relation message.
    public convenience init(_ relation: PGOutputMessage.Relation) {
        let identity: ReplicaIdentity
        switch relation.replicaIdentity {
        case .default: identity = .default
        case .nothing: identity = .nothing
        case .full: identity = .full
        case .index: identity = .index
        }
        self.init(relationID: relation.id, schema: relation.namespace, name: relation.name,
                  columns: relation.columns.map { Column(name: $0.name, typeOID: $0.typeOID, typeModifier: $0.typeModifier, isKey: $0.isKey) },
                  replicaIdentity: identity)
    }

    /// Indexes of the key columns, in column order.
    public var keyColumnIndexes: [Int] { columns.indices.filter { columns[$0].isKey } }

    public var description: String { qualifiedName }

    /// Whether two schemas describe the same columns (names, types, typmods, keys) in the same order.
    public func hasSameDefinition(as other: TableSchema) -> Bool {
        schema == other.schema && name == other.name && replicaIdentity == other.replicaIdentity
            && columns.map(\.name) == other.columns.map(\.name)
            && columns.map(\.typeOID) == other.columns.map(\.typeOID)
            && columns.map(\.typeModifier) == other.columns.map(\.typeModifier)
            && columns.map(\.isKey) == other.columns.map(\.isKey)
    }
}

/// How a table's definition changed between two Relation messages.
public struct SchemaChange: Sendable, CustomStringConvertible {
    public enum Difference: Sendable, Hashable {
        case columnAdded(String)
        case columnDropped(String)
        case columnRenamed(from: String, to: String)
        case typeChanged(column: String, fromOID: UInt32, toOID: UInt32, fromModifier: Int32, toModifier: Int32)
        case keyChanged(from: [String], to: [String])
        case tableRenamed(from: String, to: String)
        case replicaIdentityChanged(from: TableSchema.ReplicaIdentity, to: TableSchema.ReplicaIdentity)
    }

    public let old: TableSchema
    public let new: TableSchema
    public let differences: [Difference]

    /// Compares two definitions of the same relation. A column whose name disappeared while a
    /// new name appeared at the same position with the same type is reported as a rename.
    public init(old: TableSchema, new: TableSchema) {
        self.old = old
        self.new = new
        var differences: [Difference] = []
        if old.qualifiedName != new.qualifiedName {
            differences.append(.tableRenamed(from: old.qualifiedName, to: new.qualifiedName))
        }
        let oldNames = Set(old.columns.map(\.name)), newNames = Set(new.columns.map(\.name))
        var renamedFrom = Set<String>(), renamedTo = Set<String>()
        for (index, column) in old.columns.enumerated() where !newNames.contains(column.name) {
            if index < new.columns.count, !oldNames.contains(new.columns[index].name),
               new.columns[index].typeOID == column.typeOID {
                differences.append(.columnRenamed(from: column.name, to: new.columns[index].name))
                renamedFrom.insert(column.name)
                renamedTo.insert(new.columns[index].name)
            }
        }
        for column in old.columns where !newNames.contains(column.name) && !renamedFrom.contains(column.name) {
            differences.append(.columnDropped(column.name))
        }
        for column in new.columns where !oldNames.contains(column.name) && !renamedTo.contains(column.name) {
            differences.append(.columnAdded(column.name))
        }
        for column in new.columns {
            if let before = old.columns.first(where: { $0.name == column.name }),
               before.typeOID != column.typeOID || before.typeModifier != column.typeModifier {
                differences.append(.typeChanged(column: column.name, fromOID: before.typeOID, toOID: column.typeOID,
                                                fromModifier: before.typeModifier, toModifier: column.typeModifier))
            }
        }
        let oldKey = old.columns.filter(\.isKey).map(\.name), newKey = new.columns.filter(\.isKey).map(\.name)
        if oldKey != newKey && differences.allSatisfy({ if case .columnRenamed = $0 { false } else { true } }) {
            differences.append(.keyChanged(from: oldKey, to: newKey))
        }
        if old.replicaIdentity != new.replicaIdentity {
            differences.append(.replicaIdentityChanged(from: old.replicaIdentity, to: new.replicaIdentity))
        }
        self.differences = differences
    }

    public var description: String {
        "\(new.qualifiedName): " + differences.map { "\($0)" }.joined(separator: ", ")
    }
}
