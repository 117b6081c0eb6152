import NIOCore
import PGOutput

/// Decodes column values by type OID, from PostgreSQL's text output format or its binary
/// send format, into ``Value``.
///
/// Where the bytes come from:
/// - pgoutput tuples (`TupleValue.text` / `.binary`): text by default; with `binary 'true'`
///   every column whose type has a send function comes in binary, the others in text — so
///   decode per column with the format the column came in (``decode(_:typeOID:typeModifier:)``
///   does that).
/// - `COPY … TO STDOUT` text (after COPY's own backslash unescaping and `\N` for NULL) or
///   `FORMAT binary` (the field bytes), and simple-query results (``decode(typeOID:typeModifier:text:)``).
///
/// Text values are what the type's output function prints under the session settings the
/// pipeline must set on every connection it reads values from (startup `options` or `SET`):
/// `DateStyle=ISO`, `TimeZone=UTC`, `IntervalStyle=postgres` (or `iso_8601`, also parsed),
/// `extra_float_digits=3` (any value > 0 gives the shortest exact floats), `bytea_output=hex`
/// (`escape` is parsed too) and `client_encoding=UTF8`. Offsets other than UTC in
/// `timestamptz` text are still read correctly.
///
/// Total over arbitrary bytes: malformed input throws ``ValueDecodingError``, never traps;
/// counts and lengths are checked against the bytes present before anything is allocated.
/// No Foundation, no regular expressions: one allocation per value at most (its
/// string/array storage), arrays aside.
///
/// The binary layouts follow each type's `*_send` function in PostgreSQL's source
/// (`numeric_send`, `array_send`, `range_send`, `record_send`, `network_send`,
/// `tsvectorsend`, `hstore_send`, …).
public struct ValueDecoder: Sendable {
    /// Domains, enums, custom arrays, ranges and extension types of the source.
    public var registry: TypeRegistry

    /// Arrays, composites, ranges and domains may nest this deep (PostgreSQL itself allows
    /// 6 array dimensions).
    public static let maximumNesting = 32

    /// pgoutput text values are kept as the source printed them (``Value/unknown(typeOID:text:)``,
    /// checked to be UTF-8) instead of being parsed: for destinations that use values only in
    /// their PostgreSQL text form (``Destination/takesSourceText``), where parsing and printing
    /// again would give the same text under the pipeline's session settings.
    public var keepsSourceText: Bool

    public init(registry: TypeRegistry = TypeRegistry(), keepsSourceText: Bool = false) {
        self.registry = registry
        self.keepsSourceText = keepsSourceText
    }

    /// Decodes one non-NULL value.
    ///
    /// - Parameters:
    ///   - typeOID: the column's type as pgoutput's Relation message (or `RowDescription`) gives it.
    ///   - typeModifier: the column's `atttypmod`; no type needs it to decode (it is accepted
    ///     so callers pass what they have).
    ///   - format: whether `bytes` are the text or the binary form.
    /// - Throws: ``ValueDecodingError``.
    public func decode(typeOID: UInt32, typeModifier: Int32 = -1, format: ValueFormat, bytes: ByteBuffer) throws -> Value {
        try bytes.withUnsafeReadableBytes { raw in
            switch format {
            case .text: try decodeText(typeOID, raw, depth: 0)
            case .binary: try decodeBinary(typeOID, raw, depth: 0)
            }
        }
    }

    /// Decodes one column of a pgoutput tuple: `n` is ``Value/null``, `u` is
    /// ``Value/unchangedToast`` (never NULL), `t` and `b` are decoded in their format.
    public func decode(_ value: TupleValue, typeOID: UInt32, typeModifier: Int32 = -1) throws -> Value {
        switch value {
        case .null: .null
        case .unchangedToast: .unchangedToast
        case .text(let bytes): try bytes.withUnsafeReadableBytes { try decode(.text, $0, typeOID: typeOID) }
        case .binary(let bytes): try bytes.withUnsafeReadableBytes { try decode(.binary, $0, typeOID: typeOID) }
        }
    }

    /// Decodes one column of a pgoutput tuple read in place (``TupleData/forEachColumn(_:)``).
    public func decode(_ kind: TupleData.Kind, _ bytes: UnsafeRawBufferPointer, typeOID: UInt32) throws -> Value {
        switch kind {
        case .null: return .null
        case .unchangedToast: return .unchangedToast
        case .text where keepsSourceText:
            guard let text = utf8String(bytes) else {
                throw ValueDecodingError(.invalidEncoding, typeOID: typeOID, format: .text, bytes: bytes)
            }
            return .unknown(typeOID: typeOID, text: text)
        case .text: return try decodeText(typeOID, bytes, depth: 0)
        case .binary: return try decodeBinary(typeOID, bytes, depth: 0)
        }
    }

    /// Decodes a value in text form, e.g. a simple-query result column; nil is NULL.
    public func decode(typeOID: UInt32, typeModifier: Int32 = -1, text: String?) throws -> Value {
        guard var text else { return .null }
        return try text.withUTF8 { try decodeText(typeOID, UnsafeRawBufferPointer($0), depth: 0) }
    }

    /// Decodes a value in binary form from raw bytes.
    public func decode(typeOID: UInt32, typeModifier: Int32 = -1, binary bytes: some Collection<UInt8>) throws -> Value {
        if let result = try bytes.withContiguousStorageIfAvailable({ try decodeBinary(typeOID, UnsafeRawBufferPointer($0), depth: 0) }) {
            return result
        }
        return try Array(bytes).withUnsafeBytes { try decodeBinary(typeOID, $0, depth: 0) }
    }

    // MARK: Type resolution

    /// How a type OID decodes, after following domains.
    enum Resolved {
        /// A built-in scalar type (handled by the main switch).
        case builtin(UInt32)
        case array(arrayOID: UInt32, elementOID: UInt32)
        case range(rangeOID: UInt32, subtypeOID: UInt32)
        case multirange(multirangeOID: UInt32, rangeOID: UInt32)
        case composite(UInt32)
        case hstore(UInt32)
        case string
        case unknown(UInt32)
    }

    /// Follows domains (bounded) and classifies a type outside the built-in scalars.
    func resolve(_ oid: UInt32) -> Resolved {
        var oid = oid
        for _ in 0..<Self.maximumNesting {
            if let element = TypeOID.builtinArrayElement(oid) { return .array(arrayOID: oid, elementOID: element) }
            if let subtype = TypeOID.builtinRangeSubtype(oid) { return .range(rangeOID: oid, subtypeOID: subtype) }
            if let range = TypeOID.builtinMultirangeRange(oid) { return .multirange(multirangeOID: oid, rangeOID: range) }
            if oid == TypeOID.record { return .composite(oid) }
            if oid < TypeOID.firstNormalObjectID { return .builtin(oid) }
            guard let entry = registry[oid] else { return .unknown(oid) }
            switch entry.kind {
            case .domain(let base):
                oid = base
                continue
            case .enumeration, .string: return .string
            case .array(let element): return .array(arrayOID: oid, elementOID: element)
            case .range(let subtype): return .range(rangeOID: oid, subtypeOID: subtype)
            case .multirange(let range): return .multirange(multirangeOID: oid, rangeOID: range)
            case .composite: return .composite(oid)
            case .hstore: return .hstore(oid)
            case .other: return .unknown(oid)
            }
        }
        return .unknown(oid)
    }

    func error(_ code: ValueDecodingError.Code, _ oid: UInt32, _ format: ValueFormat, _ detail: String,
               _ bytes: UnsafeRawBufferPointer) -> ValueDecodingError {
        ValueDecodingError(code, typeOID: oid, format: format, detail: detail, bytes: bytes)
    }
}

/// UTF-8 text of a whole value; nil if invalid.
@inline(__always)
func utf8String(_ bytes: UnsafeRawBufferPointer) -> String? {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return "" }
    let buffer = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: bytes.count)
    // ASCII (most values: numbers, dates, keys) is valid UTF-8 as it is; String(decoding:)
    // takes it without the generic validating path (a tenth of the change path's CPU).
    if isASCII(bytes) { return String(decoding: buffer, as: UTF8.self) }
    return String(validating: buffer, as: UTF8.self)
}

/// Whether every byte is below 0x80, eight at a time.
@inline(__always)
func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
    var index = 0
    let count = bytes.count
    while index + 8 <= count {
        if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
        index += 8
    }
    while index < count {
        if bytes[index] & 0x80 != 0 { return false }
        index += 1
    }
    return true
}
