import ArgumentParser
import Testing
@testable import FerryCLI

/// The README's first command runs in CI: a throwaway server, snapshot + streaming under a
/// workload, and the replica compared row by row with the source (it throws on a mismatch).
@Suite struct DemoTests {
    @Test func demoEndsWithTheReplicaMatchingTheSource() async throws {
        let command = try Ferry.parseAsRoot(["demo", "--rows", "5000", "--seconds", "2"])
        guard var demo = command as? any AsyncParsableCommand else {
            Issue.record("demo is not an async command"); return
        }
        try await demo.run()
    }

    /// Without a workload, the demo's "caught up" point is reached before the pipeline has made
    /// its slot: the demo must still see the pipeline catch up (it throws when it does not
    /// within its deadline), instead of waiting for the deadline.
    @Test func demoWithoutWorkloadCatchesUp() async throws {
        let command = try Ferry.parseAsRoot(["demo", "--rows", "500", "--seconds", "0"])
        guard var demo = command as? any AsyncParsableCommand else {
            Issue.record("demo is not an async command"); return
        }
        try await demo.run()
    }

    @Test func rejectsOutOfRangeArguments() {
        #expect(throws: (any Error).self) { _ = try Ferry.parseAsRoot(["demo", "--rows", "0"]) }
        #expect(throws: (any Error).self) { _ = try Ferry.parseAsRoot(["demo", "--seconds", "-1"]) }
    }
}
