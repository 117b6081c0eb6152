import ArgumentParser

extension Ferry {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Snapshot if needed, then stream every committed change to the destinations."
        )

        func run() async throws {
            throw NotYetAvailable(command: "ferry run", landsWith: "the pipeline issue")
        }
    }
}
