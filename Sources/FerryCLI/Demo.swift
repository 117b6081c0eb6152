import ArgumentParser

extension Ferry {
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the main job end to end on a throwaway local PostgreSQL into an embedded SQLite replica."
        )

        func run() async throws {
            throw NotYetAvailable(command: "ferry demo", landsWith: "the pipeline issue")
        }
    }
}
