import Foundation

/// What `--json` prints on standard output: one document, then a newline.
enum MachineOutput {
    static func writeJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        writeLine(try encoder.encode(value))
    }

    static func writeLine(_ data: Data) {
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}
