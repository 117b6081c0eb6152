import ArgumentParser
import FerryCore

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

extension Ferry {
    /// Parses `arguments` (the process arguments when nil), runs the chosen command and exits
    /// with its status: 0 on success; otherwise the error is printed and the status is non-zero.
    public static func execute(_ arguments: [String]? = nil) async -> Never {
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            exit(withError: error)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit()
        } catch where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
            // --help, --version, exit codes, validation: ArgumentParser prints and exits as usual.
            exit(withError: error)
        } catch {
            // Whatever failed, a password in a connection string never reaches the terminal.
            exit(withError: RedactedError(description: Redaction.redact("\(error)")))
        }
    }
}

/// An error as the user sees it, with secrets removed.
struct RedactedError: Error, CustomStringConvertible {
    let description: String
}
