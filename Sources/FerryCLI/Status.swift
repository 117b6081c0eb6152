import ArgumentParser

extension Ferry {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show slot lag, destination positions, throughput and snapshot progress."
        )

        func run() async throws {
            throw NotYetAvailable(command: "ferry status", landsWith: "the operations issue")
        }
    }
}
