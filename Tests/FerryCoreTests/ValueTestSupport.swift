import FerryCore
import NIOCore
import Testing

/// Hand-written binary values: big-endian integers and length-prefixed fields.
struct Bytes: ExpressibleByArrayLiteral {
    var bytes: [UInt8] = []

    init(arrayLiteral elements: UInt8...) { bytes = elements }
    init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    func u8(_ value: UInt8) -> Bytes { var copy = self; copy.bytes.append(value); return copy }
    func i16(_ value: Int16) -> Bytes { integer(value) }
    func u16(_ value: UInt16) -> Bytes { integer(value) }
    func i32(_ value: Int32) -> Bytes { integer(value) }
    func u32(_ value: UInt32) -> Bytes { integer(value) }
    func i64(_ value: Int64) -> Bytes { integer(value) }
    func u64(_ value: UInt64) -> Bytes { integer(value) }
    func f64(_ value: Double) -> Bytes { integer(value.bitPattern) }
    func raw(_ more: [UInt8]) -> Bytes { var copy = self; copy.bytes += more; return copy }
    func raw(_ text: String) -> Bytes { raw(Array(text.utf8)) }
    /// Int32 length + bytes; nil is a NULL (-1).
    func field(_ more: [UInt8]?) -> Bytes {
        guard let more else { return i32(-1) }
        return i32(Int32(more.count)).raw(more)
    }

    private func integer<T: FixedWidthInteger>(_ value: T) -> Bytes {
        var copy = self
        withUnsafeBytes(of: value.bigEndian) { copy.bytes += $0 }
        return copy
    }
}

let plainDecoder = ValueDecoder()

func decodeText(_ oid: UInt32, _ text: String, decoder: ValueDecoder = plainDecoder) throws -> Value {
    try decoder.decode(typeOID: oid, format: .text, bytes: ByteBuffer(string: text))
}

func decodeBinary(_ oid: UInt32, _ bytes: Bytes, decoder: ValueDecoder = plainDecoder) throws -> Value {
    try decoder.decode(typeOID: oid, format: .binary, bytes: ByteBuffer(bytes: bytes.bytes))
}

func decodeBinary(_ oid: UInt32, _ bytes: [UInt8], decoder: ValueDecoder = plainDecoder) throws -> Value {
    try decoder.decode(typeOID: oid, format: .binary, bytes: ByteBuffer(bytes: bytes))
}

/// Decodes `text` and `binary` and checks both give `expected`, and that `expected`
/// prints back as `text`.
func expectBoth(_ oid: UInt32, text: String, binary: Bytes, _ expected: Value,
                decoder: ValueDecoder = plainDecoder, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let fromText = try decodeText(oid, text, decoder: decoder)
    let fromBinary = try decodeBinary(oid, binary, decoder: decoder)
    #expect(fromText == expected, "text \(text)", sourceLocation: sourceLocation)
    #expect(fromBinary == expected, "binary of \(text)", sourceLocation: sourceLocation)
    #expect(expected.postgresText == text, sourceLocation: sourceLocation)
}
