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

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Preflight a source: wal_level, slots, privileges, keys, publication; each finding with a fix."
        )

        func run() async throws {
            throw NotYetAvailable(command: "ferry check", landsWith: "the operations issue")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show slot lag, destination positions, throughput and snapshot progress."
        )

        func run() async throws {
            throw NotYetAvailable(command: "ferry status", landsWith: "the operations issue")
        }
    }

    struct Slot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, drop or drain replication slots.",
            subcommands: [List.self, Drop.self]
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the replication slots of a source.")
            func run() async throws {
                throw NotYetAvailable(command: "ferry slot list", landsWith: "the operations issue")
            }
        }

        struct Drop: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Drop a replication slot.")
            func run() async throws {
                throw NotYetAvailable(command: "ferry slot drop", landsWith: "the operations issue")
            }
        }
    }

    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the main job end to end on a throwaway local PostgreSQL into an embedded SQLite replica."
        )

        func run() async throws {
            throw NotYetAvailable(command: "ferry demo", landsWith: "the pipeline issue")
        }
    }
}
