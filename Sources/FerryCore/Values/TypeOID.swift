/// OIDs of PostgreSQL's built-in types (`pg_type.oid`, fixed in `pg_type.dat`; the same in
/// every server version since they were added).
public enum TypeOID {
    public static let bool: UInt32 = 16
    public static let bytea: UInt32 = 17
    public static let char: UInt32 = 18
    public static let name: UInt32 = 19
    public static let int8: UInt32 = 20
    public static let int2: UInt32 = 21
    public static let int2vector: UInt32 = 22
    public static let int4: UInt32 = 23
    public static let regproc: UInt32 = 24
    public static let text: UInt32 = 25
    public static let oid: UInt32 = 26
    public static let tid: UInt32 = 27
    public static let xid: UInt32 = 28
    public static let cid: UInt32 = 29
    public static let oidvector: UInt32 = 30
    public static let json: UInt32 = 114
    public static let xml: UInt32 = 142
    public static let point: UInt32 = 600
    public static let lseg: UInt32 = 601
    public static let path: UInt32 = 602
    public static let box: UInt32 = 603
    public static let polygon: UInt32 = 604
    public static let line: UInt32 = 628
    public static let cidr: UInt32 = 650
    public static let float4: UInt32 = 700
    public static let float8: UInt32 = 701
    public static let unknown: UInt32 = 705
    public static let circle: UInt32 = 718
    public static let macaddr8: UInt32 = 774
    public static let money: UInt32 = 790
    public static let macaddr: UInt32 = 829
    public static let inet: UInt32 = 869
    public static let bpchar: UInt32 = 1042
    public static let varchar: UInt32 = 1043
    public static let date: UInt32 = 1082
    public static let time: UInt32 = 1083
    public static let timestamp: UInt32 = 1114
    public static let timestamptz: UInt32 = 1184
    public static let interval: UInt32 = 1186
    public static let timetz: UInt32 = 1266
    public static let bit: UInt32 = 1560
    public static let varbit: UInt32 = 1562
    public static let numeric: UInt32 = 1700
    public static let refcursor: UInt32 = 1790
    public static let record: UInt32 = 2249
    public static let uuid: UInt32 = 2950
    public static let pgLSN: UInt32 = 3220
    public static let tsvector: UInt32 = 3614
    public static let tsquery: UInt32 = 3615
    public static let jsonb: UInt32 = 3802
    public static let jsonpath: UInt32 = 4072
    public static let int4range: UInt32 = 3904
    public static let numrange: UInt32 = 3906
    public static let tsrange: UInt32 = 3908
    public static let tstzrange: UInt32 = 3910
    public static let daterange: UInt32 = 3912
    public static let int8range: UInt32 = 3926
    public static let int4multirange: UInt32 = 4451
    public static let nummultirange: UInt32 = 4532
    public static let tsmultirange: UInt32 = 4533
    public static let tstzmultirange: UInt32 = 4534
    public static let datemultirange: UInt32 = 4535
    public static let int8multirange: UInt32 = 4536
    public static let xid8: UInt32 = 5069

    /// OIDs below this are assigned by initdb (`FirstNormalObjectId`); user-defined and
    /// extension types are at or above it.
    public static let firstNormalObjectID: UInt32 = 16384

    /// The element type of a built-in array type, nil if `oid` is not one.
    public static func builtinArrayElement(_ oid: UInt32) -> UInt32? {
        switch oid {
        case 1000: bool
        case 1001: bytea
        case 1002: char
        case 1003: name
        case 1005: int2
        case 1006: int2vector
        case 1007: int4
        case 1008: regproc
        case 1009: text
        case 1010: tid
        case 1011: xid
        case 1012: cid
        case 1013: oidvector
        case 1014: bpchar
        case 1015: varchar
        case 1016: int8
        case 1017: point
        case 1018: lseg
        case 1019: path
        case 1020: box
        case 1021: float4
        case 1022: float8
        case 1027: polygon
        case 1028: oid
        case 1034: 1033 // aclitem
        case 1040: macaddr
        case 1041: inet
        case 651: cidr
        case 775: macaddr8
        case 791: money
        case 1115: timestamp
        case 1182: date
        case 1183: time
        case 1185: timestamptz
        case 1187: interval
        case 1231: numeric
        case 1263: 2275 // cstring
        case 1270: timetz
        case 1561: bit
        case 1563: varbit
        case 2201: refcursor
        case 2207: 2202 // regprocedure
        case 2208: 2203 // regoper
        case 2209: 2204 // regoperator
        case 2210: 2205 // regclass
        case 2211: 2206 // regtype
        case 2287: record
        case 2949: 2970 // txid_snapshot
        case 2951: uuid
        case 3221: pgLSN
        case 3643: tsvector
        case 3644: 3642 // gtsvector
        case 3645: tsquery
        case 3735: 3734 // regconfig
        case 3770: 3769 // regdictionary
        case 3807: jsonb
        case 4073: jsonpath
        case 3905: int4range
        case 3907: numrange
        case 3909: tsrange
        case 3911: tstzrange
        case 3913: daterange
        case 3927: int8range
        case 4090: 4089 // regnamespace
        case 4097: 4096 // regrole
        case 4192: 4191 // regcollation
        case 5039: 5038 // pg_snapshot
        case 6150: int4multirange
        case 6151: nummultirange
        case 6152: tsmultirange
        case 6153: tstzmultirange
        case 6155: datemultirange
        case 6157: int8multirange
        case 199: json
        case 143: xml
        case 629: line
        case 719: circle
        case 271: xid8
        default: nil
        }
    }

    /// The subtype of a built-in range type, nil if `oid` is not one.
    public static func builtinRangeSubtype(_ oid: UInt32) -> UInt32? {
        switch oid {
        case int4range: int4
        case numrange: numeric
        case tsrange: timestamp
        case tstzrange: timestamptz
        case daterange: date
        case int8range: int8
        default: nil
        }
    }

    /// The range type of a built-in multirange type, nil if `oid` is not one.
    public static func builtinMultirangeRange(_ oid: UInt32) -> UInt32? {
        switch oid {
        case int4multirange: int4range
        case nummultirange: numrange
        case tsmultirange: tsrange
        case tstzmultirange: tstzrange
        case datemultirange: daterange
        case int8multirange: int8range
        default: nil
        }
    }
}
