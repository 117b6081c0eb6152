// Property/fuzz test of the pgoutput decoder: random bytes and mutated golden messages.
//
// The default run uses 20,000 inputs (deterministic seed). The long run, 1,000,000 inputs:
//
//   FERRY_FUZZ_ITERATIONS=1000000 swift test -c release --scratch-path .build-pgoutput --filter PGOutputFuzz
//
// (about 7 s of fuzzing in release, 40 s in a debug build; without -c release it works too).
// FERRY_FUZZ_SEED=<UInt64> changes the seed. Properties checked for every input:
// - decode returns a message or throws PGOutputDecodingError (a trap would crash the run);
// - on success the payload is consumed entirely and, unless a string had invalid UTF-8
//   repaired, re-encoding the message gives back exactly the input bytes;
// - on failure the payload and decoder state are untouched, the offset lies inside the
//   payload and the copied bytes are the payload's first ≤ 64 bytes.
import Foundation
import NIOCore
import PostgresWire
import Testing
@testable import PGOutput

/// SplitMix64: small, fast, deterministic.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct PGOutputFuzzTests {
    static let tags: [UInt8] = Array("BCORYIUDTMSEcAbPKrp".utf8)
    static let interestingBytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xFE, 0xFF] + Array("nutbNKO".utf8)
    static let interestingInt32: [UInt32] = [0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]

    static var iterations: Int {
        ProcessInfo.processInfo.environment["FERRY_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 20_000
    }

    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["FERRY_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x00FE_11E5_2025
    }

    struct Seed {
        var bytes: [UInt8]
        var decoder: PGOutputDecoder
    }

    /// Every fixture message with the decoder state it belongs to, plus hand-built messages
    /// for layouts the fixtures cannot show (parallel Stream Abort, streamed Truncate/Message/Type).
    static func corpus() throws -> [[Seed]] {
        var groups: [[Seed]] = []
        for fixture in try Fixture.loadAll() {
            groups.append(try fixture.messagesWithDecoderState().map { Seed(bytes: $0.payload.bytes, decoder: $0.decoder) })
        }
        var streaming = PGOutputDecoder(protocolVersion: 4, parallelStreaming: true)
        var start = bytes(.tag("S"), .u32(5), .u8(1))
        _ = try streaming.decode(&start)
        let plain = PGOutputDecoder(protocolVersion: 4, parallelStreaming: true)
        groups.append([
            Seed(bytes: bytes(.tag("A"), .u32(5), .u32(6), .u64(7), .i64(8)).bytes, decoder: plain),
            Seed(bytes: bytes(.tag("T"), .u32(5), .i32(2), .u8(3), .u32(1), .u32(2)).bytes, decoder: streaming),
            Seed(bytes: bytes(.tag("M"), .u32(5), .u8(1), .u64(9), .string("p"), .i32(2), .raw([1, 2])).bytes, decoder: streaming),
            Seed(bytes: bytes(.tag("Y"), .u32(5), .u32(16_500), .string("public"), .string("t")).bytes, decoder: streaming),
            Seed(bytes: bytes(.tag("D"), .u32(5), .u32(1), .tag("O"), .i16(2), .tag("u"), .tag("b"), .i32(1), .raw([9])).bytes, decoder: streaming),
            Seed(bytes: bytes(.tag("E")).bytes, decoder: streaming),
        ])
        return groups
    }

    static func mutate(_ input: inout [UInt8], _ rng: inout SplitMix64) {
        let count = Int.random(in: 1...4, using: &rng)
        for _ in 0..<count {
            switch Int.random(in: 0..<9, using: &rng) {
            case 0 where !input.isEmpty:  // flip a bit
                let i = Int.random(in: 0..<input.count, using: &rng)
                input[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            case 1 where !input.isEmpty:  // random byte
                input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 2 where !input.isEmpty:  // interesting byte
                input[Int.random(in: 0..<input.count, using: &rng)] = interestingBytes.randomElement(using: &rng) ?? 0
            case 3:  // truncate
                input.removeLast(Int.random(in: 0...input.count, using: &rng))
            case 4:  // insert random bytes
                let at = Int.random(in: 0...input.count, using: &rng)
                let extra = (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                input.insert(contentsOf: extra, at: at)
            case 5 where !input.isEmpty:  // delete a range
                let from = Int.random(in: 0..<input.count, using: &rng)
                let to = Swift.min(input.count, from + Int.random(in: 1...8, using: &rng))
                input.removeSubrange(from..<to)
            case 6 where input.count >= 4:  // interesting Int16/Int32 (counts and lengths)
                let value = interestingInt32.randomElement(using: &rng) ?? 0
                let width = Bool.random(using: &rng) ? 2 : 4
                let at = Int.random(in: 0...(input.count - width), using: &rng)
                for k in 0..<width { input[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(width - 1 - k))) }
            case 7 where !input.isEmpty:  // duplicate a range
                let from = Int.random(in: 0..<input.count, using: &rng)
                let to = Swift.min(input.count, from + Int.random(in: 1...16, using: &rng))
                input.insert(contentsOf: input[from..<to], at: Int.random(in: 0...input.count, using: &rng))
            case 8 where !input.isEmpty:  // another tag
                input[0] = tags.randomElement(using: &rng) ?? 0
            default:
                break
            }
        }
    }

    static func randomDecoder(_ rng: inout SplitMix64) -> PGOutputDecoder {
        var decoder = PGOutputDecoder(
            protocolVersion: Int.random(in: 1...4, using: &rng), parallelStreaming: Bool.random(using: &rng)
        )
        if Bool.random(using: &rng) {
            var start = bytes(.tag("S"), .u32(UInt32.random(in: 0...UInt32.max, using: &rng)), .u8(0))
            _ = try? decoder.decode(&start)
        }
        return decoder
    }

    @Test func randomAndMutatedPayloadsNeverTrap() throws {
        let iterations = Self.iterations
        var rng = SplitMix64(seed: Self.seed)
        let corpus = try Self.corpus()
        var decodedCount = 0
        var errorCounts: [PGOutputDecodingError.Kind: Int] = [:]
        var failures: [String] = []
        var processed = 0
        let started = ContinuousClock.now

        for iteration in 0..<iterations {
            var input: [UInt8]
            var decoder: PGOutputDecoder
            let choice = Int.random(in: 0..<10, using: &rng)
            if choice < 2 {
                // Random bytes, mostly behind a valid tag.
                let length = Int.random(in: 0...48, using: &rng)
                input = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if !input.isEmpty, Int.random(in: 0..<5, using: &rng) > 0 {
                    input[0] = Self.tags.randomElement(using: &rng) ?? 0
                }
                decoder = Self.randomDecoder(&rng)
            } else {
                let group = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
                let seed = group[Int.random(in: 0..<group.count, using: &rng)]
                input = seed.bytes
                decoder = choice == 9 ? Self.randomDecoder(&rng) : seed.decoder
                if choice != 8 { Self.mutate(&input, &rng) }  // 1 in 10: the seed unchanged
            }

            let payload = ByteBuffer(bytes: input)
            var consumed = payload
            let stateBefore = decoder.openStreamXid
            do {
                let message = try decoder.decode(&consumed)
                decodedCount += 1
                if consumed.readableBytes != 0 {
                    failures.append("#\(iteration): \(consumed.readableBytes) bytes left")
                }
                let reencoded = TestEncoder.encode(message)
                let repaired = TestEncoder.strings(of: message).contains { $0.unicodeScalars.contains("\u{FFFD}") }
                if reencoded != payload && !repaired {
                    failures.append("#\(iteration): re-encoding differs for \(payload.bytes)")
                }
                switch message {
                case .streamStart(let start) where decoder.openStreamXid != start.xid:
                    failures.append("#\(iteration): stream start not tracked")
                case .streamStop where decoder.openStreamXid != nil:
                    failures.append("#\(iteration): stream stop not tracked")
                default: break
                }
            } catch {
                errorCounts[error.kind, default: 0] += 1
                if consumed != payload || consumed.readerIndex != payload.readerIndex {
                    failures.append("#\(iteration): payload consumed on error")
                }
                if decoder.openStreamXid != stateBefore { failures.append("#\(iteration): state changed on error") }
                if error.offset < 0 || error.offset > input.count { failures.append("#\(iteration): offset \(error.offset)") }
                if error.bytes != Array(input.prefix(PGOutputDecodingError.maximumCopiedBytes)) {
                    failures.append("#\(iteration): copied bytes wrong")
                }
                if error.payloadLength != input.count { failures.append("#\(iteration): payload length wrong") }
            }
            processed += 1
            if failures.count > 20 { break }
        }

        let elapsed = ContinuousClock.now - started
        let summary = errorCounts.sorted { $0.value > $1.value }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        print("PGOutputFuzz: \(processed) of \(iterations) inputs (seed \(Self.seed)) in \(elapsed): \(decodedCount) decoded; errors: \(summary)")
        #expect(failures.isEmpty, "\(failures.prefix(20).joined(separator: "\n"))")
        #expect(decodedCount > 0)
        #expect(processed == iterations)
        #expect(errorCounts.values.reduce(0, +) + decodedCount == processed)
        // The mutations reach the interesting error paths.
        if iterations >= 20_000 {
            for kind: PGOutputDecodingError.Kind in [.truncated, .trailingBytes, .invalidLength, .invalidCount, .invalidColumnKind] {
                #expect(errorCounts[kind, default: 0] > 0, "never hit \(kind)")
            }
        }
    }
}
