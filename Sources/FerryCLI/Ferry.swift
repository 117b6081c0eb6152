import ArgumentParser

/// The `ferry` command line: the one composition root of the program.
public struct Ferry: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Replicate a PostgreSQL database to other systems: a slot-consistent snapshot, then every committed change.",
        discussion: """
        Ferry reads a publication through a logical replication slot (pgoutput) and delivers \
        every committed change to its destinations, confirming a position to PostgreSQL only \
        once every destination has made it durable.
        """,
        version: FerryVersion.current,
        subcommands: [Run.self, Check.self, Status.self, Slot.self, Demo.self]
    )

    public init() {}
}

public enum FerryVersion {
    public static let current = "0.1.0-dev"
}

/// Raised by a command whose capability has not landed yet: says so plainly and exits non-zero.
public struct NotYetAvailable: Error, CustomStringConvertible {
    public let command: String
    public let landsWith: String

    public var description: String {
        "`\(command)` is not yet available in this build of Ferry (it lands with \(landsWith))."
    }
}

extension Ferry {
    /// Parses `arguments` (the process arguments when nil), runs the chosen command and exits
    /// with its status: 0 on success; otherwise the error is printed and the status is non-zero.
    public static func execute(_ arguments: [String]? = nil) async -> Never {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit()
        } catch {
            exit(withError: error)
        }
    }
}
