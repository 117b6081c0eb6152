import ArgumentParser

extension Ferry {
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Preflight a source: wal_level, slots, privileges, keys, publication; each finding with a fix."
        )

        func run() async throws {
            throw NotYetAvailable(command: "ferry check", landsWith: "the operations issue")
        }
    }
}
