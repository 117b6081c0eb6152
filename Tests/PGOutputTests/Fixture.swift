// Golden pgoutput captures (Fixtures/*.txt, written by Fixtures/capture.sh).
import Foundation
import NIOCore
import PostgresWire
import Testing
@testable import PGOutput

/// A golden capture from a real PostgreSQL server (see Fixtures/capture.sh).
struct Fixture: CustomStringConvertible {
    let name: String
    /// The `#` header lines, without the `#`.
    let comments: [String]
    /// One pgoutput payload per line.
    let messages: [ByteBuffer]
    /// `proto_version` from the header's read options.
    let protocolVersion: Int

    var description: String { name }

    static let names = [
        "replica_identity_default", "replica_identity_full", "replica_identity_index",
        "primary_key_change", "unchanged_toast", "truncate", "logical_messages",
        "custom_type", "origin", "binary", "streaming", "two_phase", "stream_prepare",
    ]

    static func load(_ name: String) throws -> Fixture {
        let url = try #require(
            Bundle.module.url(forResource: name, withExtension: "txt", subdirectory: "Fixtures"),
            "fixture \(name).txt is missing"
        )
        let text = try String(contentsOf: url, encoding: .utf8)
        var comments: [String] = []
        var messages: [ByteBuffer] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") {
                comments.append(String(line.dropFirst()))
            } else {
                messages.append(try #require(ByteBuffer(hex: line), "bad hex in \(name): \(line.prefix(40))"))
            }
        }
        let version = comments.lazy.compactMap { line -> Int? in
            guard let range = line.range(of: "'proto_version', '") else { return nil }
            return line[range.upperBound...].first.flatMap { Int(String($0)) }
        }.first
        return Fixture(name: name, comments: comments, messages: messages, protocolVersion: version ?? 1)
    }

    static func loadAll() throws -> [Fixture] { try names.map(load) }

    /// Decodes every message in order with a decoder for the fixture's protocol version.
    func decodeAll() throws -> [PGOutputMessage] {
        var decoder = PGOutputDecoder(protocolVersion: protocolVersion)
        return try messages.map { message in
            var payload = message
            let decoded = try decoder.decode(&payload)
            #expect(payload.readableBytes == 0)
            return decoded
        }
    }

    /// Each message paired with the decoder state it must be decoded in.
    func messagesWithDecoderState() throws -> [(payload: ByteBuffer, decoder: PGOutputDecoder)] {
        var decoder = PGOutputDecoder(protocolVersion: protocolVersion)
        var result: [(ByteBuffer, PGOutputDecoder)] = []
        for message in messages {
            result.append((message, decoder))
            var payload = message
            _ = try decoder.decode(&payload)
        }
        return result
    }
}

extension ByteBuffer {
    init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = Self.nibble(utf8[index]), let low = Self.nibble(utf8[index + 1]) else { return nil }
            buffer.writeInteger(high << 4 | low)
            index += 2
        }
        self = buffer
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
