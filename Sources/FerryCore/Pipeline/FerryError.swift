/// A pipeline failure: its kind (which decides whether to retry), what happened, and the fix.
public struct FerryError: Error, Sendable, CustomStringConvertible {
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private let retryable: Bool
        private init(_ name: String, retryable: Bool) { self.name = name; self.retryable = retryable }

        /// The configuration is wrong; nothing was started.
        public static let configuration = Kind("configuration", retryable: false)
        /// A table, publication or slot is missing or unusable.
        public static let source = Kind("source", retryable: false)
        /// The slot this pipeline streams from disappeared or was invalidated.
        public static let slotLost = Kind("slot lost", retryable: false)
        /// A schema change the destinations cannot follow.
        public static let schemaChange = Kind("schema change", retryable: false)
        /// The stream did not follow the protocol the pipeline asked for.
        public static let protocolMismatch = Kind("protocol", retryable: false)
        /// A value of a type Ferry cannot decode.
        public static let unsupportedValue = Kind("unsupported value", retryable: false)
        /// A destination failed in a way a reconnect can cure (its connection was lost): the
        /// pipeline reconnects and replays from the durable position.
        public static let destination = Kind("destination", retryable: true)
        /// A destination refused a change or failed otherwise: retrying would fail the same way.
        public static let destinationRejected = Kind("destination rejected", retryable: false)

        public var isRetryable: Bool { retryable }
        public var description: String { name }
    }

    public var kind: Kind
    public var message: String
    public var fix: String?

    public init(_ kind: Kind, _ message: String, fix: String? = nil) {
        self.kind = kind
        self.message = message
        self.fix = fix
    }

    public var description: String { message + (fix.map { "\nFix: \($0)" } ?? "") }
}

extension FerryError {
    /// A destination received undecoded snapshot rows (``PipelineEvent/snapshotCopyRows(table:rows:)``)
    /// although it never accepts them: a bug in whoever delivered them.
    public static func unrequestedCopyRows(_ destination: String, table: TableSchema) -> FerryError {
        FerryError(.destinationRejected, "destination \(destination) received undecoded snapshot rows of \(table.qualifiedName), which it does not take",
                   fix: "report this as a bug; the snapshot should have decoded the rows")
    }

    /// A destination that does not take streamed in-progress transactions got a part of one.
    public static func unrequestedStreamedTransaction(_ destination: String) -> FerryError {
        FerryError(.destinationRejected, "destination \(destination) received a streamed in-progress transaction, which it does not take",
                   fix: "report this as a bug; the pipeline should have asked PostgreSQL for whole transactions")
    }
}
