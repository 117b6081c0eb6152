import ArgumentParser
import Testing
@testable import FerryCLI

@Suite struct CommandLineTests {
    @Test func helpListsTheFiveCommands() {
        let help = Ferry.helpMessage()
        for command in ["run", "check", "status", "slot", "demo"] {
            #expect(help.contains("\n  \(command) "), "`ferry --help` should list `\(command)`:\n\(help)")
        }
    }

    @Test(arguments: [["run"], ["check"], ["status"], ["slot", "list"], ["slot", "drop"], ["demo"]])
    func unfinishedCommandsSaySoAndFail(_ arguments: [String]) async throws {
        var command = try Ferry.parseAsRoot(arguments)
        do {
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            Issue.record("`ferry \(arguments.joined(separator: " "))` succeeded but is not implemented")
        } catch let error as NotYetAvailable {
            #expect(error.description.contains("not yet available"))
            #expect(error.command == "ferry " + arguments.joined(separator: " "))
            #expect(Ferry.exitCode(for: error) != .success)
        }
    }
}
