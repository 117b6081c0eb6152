/// What Ferry knows about the source's non-built-in types (OID ≥ 16384): domains, enums,
/// arrays of custom types, ranges, composites, extension types.
///
/// pgoutput reports a domain column with the domain's OID and an enum column with the enum's
/// OID; ``ValueDecoder`` uses the registry to decode a domain like its base type, an enum as
/// text, a custom array with its element type. Types it does not know decode as
/// ``Value/unknown(typeOID:text:)``.
///
/// The pipeline fills it once per source connection by running ``query(serverVersionNumber:)``
/// and passing the rows (as text, e.g. `PGConnection.query`) to ``init(rows:)``, and again
/// when a Relation message names a type OID it does not know (pgoutput also sends a Type `Y`
/// message before the first use of a non-built-in type in a session, which is a good moment
/// to refresh).
public struct TypeRegistry: Sendable, Hashable {
    /// How values of a type are decoded.
    public enum Kind: Sendable, Hashable {
        /// `typtype = 'd'`: decoded as the base type (which may itself be a domain).
        case domain(baseTypeOID: UInt32)
        /// `typtype = 'e'`: decoded as ``Value/text(_:)`` (the label).
        case enumeration
        /// An array type (`typcategory = 'A'`) over a non-built-in element type.
        case array(elementTypeOID: UInt32)
        /// `typtype = 'r'`: decoded as ``Value/unknown(typeOID:text:)``; the binary form is
        /// rendered to PostgreSQL's text with the subtype.
        case range(subtypeOID: UInt32)
        /// `typtype = 'm'` (PostgreSQL 14+), like ``range(subtypeOID:)``.
        case multirange(rangeTypeOID: UInt32)
        /// `typtype = 'c'`: a composite (row) type, as ``Value/unknown(typeOID:text:)``.
        case composite
        /// The `hstore` extension type, as ``Value/unknown(typeOID:text:)``.
        case hstore
        /// A base type of the string category (`typcategory = 'S'`, e.g. `citext`): its text
        /// and binary forms are its characters, decoded as ``Value/text(_:)``.
        case string
        /// Any other type: ``Value/unknown(typeOID:text:)`` from text,
        /// ``Value/unknownBinary(typeOID:bytes:)`` from binary.
        case other
    }

    /// One `pg_type` row.
    public struct Entry: Sendable, Hashable {
        public var oid: UInt32
        public var namespace: String
        public var name: String
        public var kind: Kind
        /// `typdelim`: the element separator in the text form of arrays of this type.
        public var arrayDelimiter: UInt8

        public init(oid: UInt32, namespace: String, name: String, kind: Kind, arrayDelimiter: UInt8 = UInt8(ascii: ",")) {
            self.oid = oid
            self.namespace = namespace
            self.name = name
            self.kind = kind
            self.arrayDelimiter = arrayDelimiter
        }
    }

    /// A row of the registry query that could not be read.
    public struct RowError: Error, Sendable, Hashable, CustomStringConvertible {
        public var row: Int
        public var message: String
        public var description: String { "pg_type row \(row): \(message)" }
    }

    private var entries: [UInt32: Entry]

    public init(_ entries: some Sequence<Entry> = []) {
        self.entries = [:]
        for entry in entries { self.entries[entry.oid] = entry }
    }

    public subscript(oid: UInt32) -> Entry? { entries[oid] }

    public var count: Int { entries.count }

    public mutating func insert(_ entry: Entry) { entries[entry.oid] = entry }

    /// The SQL that lists the types the registry needs, for PostgreSQL 14 and newer
    /// (``query(serverVersionNumber:)`` for older servers). Columns: oid, namespace, name,
    /// typtype, typbasetype, typelem, typcategory, typdelim, range subtype, multirange's range.
    public static let query = query(serverVersionNumber: 140_000)

    /// The registry query for a server version (`server_version_num`); multiranges exist
    /// from 14 on.
    public static func query(serverVersionNumber: Int) -> String {
        let multirange = serverVersionNumber >= 140_000
            ? "COALESCE(m.rngtypid, 0)"
            : "0::oid"
        let multirangeJoin = serverVersionNumber >= 140_000
            ? "\nLEFT JOIN pg_catalog.pg_range m ON m.rngmultitypid = t.oid"
            : ""
        return """
            SELECT t.oid, n.nspname, t.typname, t.typtype, t.typbasetype, t.typelem, t.typcategory, t.typdelim, \
            COALESCE(r.rngsubtype, 0), \(multirange)
            FROM pg_catalog.pg_type t
            JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
            LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid\(multirangeJoin)
            WHERE t.oid >= 16384
            ORDER BY t.oid
            """
    }

    /// Builds the registry from the rows of ``query`` as text.
    public init(rows: [[String?]]) throws {
        self.init()
        for (index, row) in rows.enumerated() {
            guard row.count >= 8 else { throw RowError(row: index, message: "expected at least 8 columns, got \(row.count)") }
            func oid(_ column: Int) throws -> UInt32 {
                guard column < row.count else { return 0 }
                guard let text = row[column], let value = UInt32(text) else {
                    throw RowError(row: index, message: "column \(column + 1) is not an OID")
                }
                return value
            }
            func byte(_ column: Int) -> UInt8 { row[column]?.utf8.first ?? 0 }
            let typeOID = try oid(0)
            let baseType = try oid(4), element = try oid(5)
            let subtype = try oid(8), multirangeOf = try oid(9)
            let kind: Kind
            switch byte(3) {
            case UInt8(ascii: "d"): kind = .domain(baseTypeOID: baseType)
            case UInt8(ascii: "e"): kind = .enumeration
            case UInt8(ascii: "r"): kind = .range(subtypeOID: subtype)
            case UInt8(ascii: "m"): kind = .multirange(rangeTypeOID: multirangeOf)
            case UInt8(ascii: "c"): kind = .composite
            case UInt8(ascii: "b"):
                if byte(6) == UInt8(ascii: "A") && element != 0 {
                    kind = .array(elementTypeOID: element)
                } else if row[2] == "hstore" {
                    kind = .hstore
                } else if byte(6) == UInt8(ascii: "S") {
                    kind = .string
                } else {
                    kind = .other
                }
            default: kind = .other
            }
            let delimiter = byte(7)
            insert(Entry(oid: typeOID, namespace: row[1] ?? "", name: row[2] ?? "", kind: kind,
                         arrayDelimiter: delimiter == 0 ? UInt8(ascii: ",") : delimiter))
        }
    }

    /// The delimiter of arrays of `elementTypeOID` (`;` for `box`, `,` for everything else
    /// built in).
    func arrayDelimiter(elementTypeOID: UInt32) -> UInt8 {
        if elementTypeOID == TypeOID.box { return UInt8(ascii: ";") }
        return entries[elementTypeOID]?.arrayDelimiter ?? UInt8(ascii: ",")
    }
}
