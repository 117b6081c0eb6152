import CSQLite
import FerryCore

/// How PostgreSQL columns and values are stored in the SQLite replica: the table is on
/// ``SQLiteDestination``.
enum SQLiteTypeMapping {
    /// The declared SQLite type of a PostgreSQL column.
    static func declaredType(forTypeOID oid: UInt32) -> String {
        switch oid {
        case TypeOID.bool, TypeOID.int2, TypeOID.int4, TypeOID.int8, TypeOID.oid, TypeOID.xid, TypeOID.cid:
            "INTEGER"
        case TypeOID.float4, TypeOID.float8:
            "REAL"
        case TypeOID.bytea:
            "BLOB"
        default:
            "TEXT"
        }
    }

    /// Binds `value` as the table above describes. `.unchangedToast` must have been left out of
    /// the statement by the caller; it binds NULL here only as a last resort.
    static func bind(_ value: Value, to statement: SQLiteStatement, at index: Int32, scratch: inout [UInt8]) throws {
        switch value {
        case .null, .unchangedToast:
            try statement.bindNull(at: index)
        case .bool(let v):
            try statement.bind(Int64(v ? 1 : 0), at: index)
        case .int16(let v):
            try statement.bind(Int64(v), at: index)
        case .int32(let v):
            try statement.bind(Int64(v), at: index)
        case .int64(let v):
            try statement.bind(v, at: index)
        case .float64(let v):
            if v.isNaN { try statement.bind("NaN", at: index) } else { try statement.bind(v, at: index) }
        case .float32(let v):
            if v.isNaN {
                try statement.bind("NaN", at: index)
            } else if v.isInfinite {
                try statement.bind(Double(v), at: index)
            } else {
                // The shortest decimal that reads back as this float4, as PostgreSQL prints it.
                try statement.bind(Double(String(v)) ?? Double(v), at: index)
            }
        case .text(let v), .numeric(let v), .json(let v), .jsonb(let v), .inet(let v), .cidr(let v),
             .macaddr(let v), .macaddr8(let v), .bitString(let v), .tsvector(let v), .unknown(_, let v):
            try statement.bind(v, at: index)
        case .bytes(let v), .unknownBinary(_, let v):
            try statement.bind(v, at: index)
        case .money(let cents):
            scratch.removeAll(keepingCapacity: true)
            appendMoneyDecimal(cents, to: &scratch)
            try bindScratch(scratch, statement, index)
        case .timestamptz(let timestamp):
            scratch.removeAll(keepingCapacity: true)
            appendTimestampTZ(timestamp, to: &scratch)
            try bindScratch(scratch, statement, index)
        default:
            scratch.removeAll(keepingCapacity: true)
            if value.appendPostgresText(to: &scratch) {
                try bindScratch(scratch, statement, index)
            } else {
                try statement.bindNull(at: index)
            }
        }
    }

    private static func bindScratch(_ scratch: [UInt8], _ statement: SQLiteStatement, _ index: Int32) throws {
        try scratch.withUnsafeBufferPointer { try statement.bindText(utf8: $0, at: index) }
    }

    /// `-1234.56` for `-123456` (two fraction digits, as `money` under `lc_monetary=C`).
    static func appendMoneyDecimal(_ cents: Int64, to out: inout [UInt8]) {
        if cents < 0 { out.append(UInt8(ascii: "-")) }
        out.append(contentsOf: String(cents.magnitude / 100).utf8)
        out.append(UInt8(ascii: "."))
        let fraction = cents.magnitude % 100
        if fraction < 10 { out.append(UInt8(ascii: "0")) }
        out.append(contentsOf: String(fraction).utf8)
    }

    /// PostgreSQL's `timestamptz` text in UTC with a `+00:00` offset (SQLite's date functions do
    /// not read PostgreSQL's `+00`): `2024-02-29 13:45:00.5+00:00`, `0044-03-15 12:00:00+00:00 BC`.
    static func appendTimestampTZ(_ timestamp: Value.Timestamp, to out: inout [UInt8]) {
        let start = out.count
        guard Value.timestamp(timestamp).appendPostgresText(to: &out) else { return }
        guard case .microseconds = timestamp else { return }
        let suffix = Array(" BC".utf8)
        if out.count - start > suffix.count, Array(out[(out.count - suffix.count)...]) == suffix {
            out.removeLast(suffix.count)
            out.append(contentsOf: "+00:00 BC".utf8)
        } else {
            out.append(contentsOf: "+00:00".utf8)
        }
    }
}
