/// A small, fast JSON writer: appends UTF-8 to a byte array, no Foundation, no
/// intermediate objects. Commas between members and elements are inserted automatically.
///
/// ```swift
/// var json = JSONWriter()
/// json.beginObject()
/// json.key("id"); json.value(.int64(7))
/// json.key("name"); json.string("Zoë \"Z\"")
/// json.endObject()
/// json.string // {"id":7,"name":"Zoë \"Z\""}
/// ```
public struct JSONWriter: Sendable {
    /// The JSON written so far, UTF-8.
    public var bytes: [UInt8]
    /// Bit n set: the container at depth n already has a member, so the next needs a comma.
    private var hasMembers: UInt64 = 0
    private var depth = 0
    private var afterKey = false

    public init(reservingCapacity capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// The JSON written so far.
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    /// Clears the output, keeping its storage.
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        hasMembers = 0
        depth = 0
        afterKey = false
    }

    // MARK: Structure

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        push()
    }

    public mutating func endObject() {
        pop()
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        push()
    }

    public mutating func endArray() {
        pop()
        bytes.append(UInt8(ascii: "]"))
    }

    /// An object member's name; the next call writes its value.
    public mutating func key(_ name: String) {
        separate()
        JSONWriter.appendQuoted(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        afterKey = true
    }

    // MARK: Scalars

    public mutating func null() {
        separate()
        bytes.append("null")
    }

    public mutating func bool(_ value: Bool) {
        separate()
        if value { bytes.append("true") } else { bytes.append("false") }
    }

    public mutating func integer(_ value: Int64) {
        separate()
        bytes.appendDecimal(value)
    }

    /// A finite number in its shortest round-trip form; NaN and ±infinity, which JSON
    /// cannot express, as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    public mutating func number(_ value: Double) {
        separate()
        if value.isFinite {
            FloatText.append(value, to: &bytes)
        } else {
            bytes.append(UInt8(ascii: "\""))
            FloatText.append(value, to: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
    }

    public mutating func number(_ value: Float) {
        separate()
        if value.isFinite {
            FloatText.append(value, to: &bytes)
        } else {
            bytes.append(UInt8(ascii: "\""))
            FloatText.append(value, to: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
    }

    public mutating func string(_ value: String) {
        separate()
        JSONWriter.appendQuoted(value, to: &bytes)
    }

    /// A string given as UTF-8 bytes (already valid UTF-8).
    public mutating func string(utf8 value: some Collection<UInt8>) {
        separate()
        JSONWriter.appendQuoted(utf8: value, to: &bytes)
    }

    /// A string given as UTF-8 bytes (already valid UTF-8).
    public mutating func string(utf8 value: [UInt8]) {
        separate()
        JSONWriter.appendQuoted(utf8: value, to: &bytes)
    }

    /// Standard base64 (RFC 4648, padded) of `value`, as a string.
    public mutating func base64(_ value: some Collection<UInt8>) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        JSONWriter.appendBase64(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Text that is already JSON (e.g. a `json` column), written as is.
    public mutating func raw(_ json: String) {
        separate()
        bytes.append(contentsOf: json.utf8)
    }

    /// An object member's name already quoted and followed by `:` (`"id":`), as
    /// ``quotedKey(_:)`` makes it: for names written over and over.
    public mutating func key(quoted: [UInt8]) {
        separate()
        bytes.append(contentsOf: quoted)
        afterKey = true
    }

    /// `"name":` as UTF-8, for ``key(quoted:)``.
    public static func quotedKey(_ name: String) -> [UInt8] {
        var bytes: [UInt8] = []
        appendQuoted(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        return bytes
    }

    /// A value written straight into ``bytes`` by `body` (which must write exactly one JSON value).
    public mutating func rawValue(_ body: (inout [UInt8]) -> Void) {
        separate()
        body(&bytes)
    }

    // MARK: Helpers

    private mutating func separate() {
        if afterKey {
            afterKey = false
            return
        }
        guard depth > 0 else { return }
        let bit: UInt64 = 1 << UInt64((depth - 1) & 63)
        if hasMembers & bit != 0 { bytes.append(UInt8(ascii: ",")) } else { hasMembers |= bit }
    }

    private mutating func push() {
        depth += 1
        hasMembers &= ~(1 << UInt64((depth - 1) & 63))
    }

    private mutating func pop() {
        if depth > 0 { depth -= 1 }
        afterKey = false
    }

    /// `"…"` with `"`, `\` and control characters escaped (`\n`, `\u0001`…); everything
    /// else, including non-ASCII, as UTF-8.
    public static func appendQuoted(_ string: String, to out: inout [UInt8]) {
        var string = string
        string.withUTF8 { appendQuoted(utf8: $0, to: &out) }
    }

    public static func appendQuoted(utf8 bytes: [UInt8], to out: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { appendQuoted(utf8: $0, to: &out) }
    }

    public static func appendQuoted(utf8 bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ appendQuoted(utf8: $0, to: &out) }) { return done }
        Array(bytes).withUnsafeBufferPointer { appendQuoted(utf8: $0, to: &out) }
    }

    public static func appendQuoted(utf8 bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var runStart = 0
        for index in 0..<bytes.count {
            let byte = bytes[index]
            if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") { continue }
            if runStart < index { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index])) }
            runStart = index + 1
            out.append(UInt8(ascii: "\\"))
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            case 0x08: out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "f"))
            default:
                out.append(UInt8(ascii: "u"))
                out.append(UInt8(ascii: "0"))
                out.append(UInt8(ascii: "0"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0xF)])
            }
        }
        if runStart < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...])) }
        out.append(UInt8(ascii: "\""))
    }

    private static let base64Alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func appendBase64(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ appendBase64($0, to: &out) }) { return done }
        Array(bytes).withUnsafeBufferPointer { appendBase64($0, to: &out) }
    }

    public static func appendBase64(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        let alphabet = base64Alphabet
        var index = 0
        while index + 3 <= bytes.count {
            let b0 = bytes[index], b1 = bytes[index + 1], b2 = bytes[index + 2]
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)])
            out.append(alphabet[Int(b2 & 0x3F)])
            index += 3
        }
        if index < bytes.count {
            let b0 = bytes[index]
            let b1: UInt8 = index + 1 < bytes.count ? bytes[index + 1] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(index + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
    }
}
