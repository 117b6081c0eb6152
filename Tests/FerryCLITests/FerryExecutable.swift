import Foundation

/// The `ferry` binary built next to the test binary (or FERRY_EXECUTABLE).
enum FerryExecutable {
    static func path() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["FERRY_EXECUTABLE"], !explicit.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: explicit) else {
                throw FerryExecutableMissing(description: "FERRY_EXECUTABLE=\(explicit) is not an executable file")
            }
            return explicit
        }
        var directories: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            directories.append((exe as NSString).deletingLastPathComponent)
        }
        let argument0 = URL(fileURLWithPath: CommandLine.arguments[0], relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        directories.append(argument0.deletingLastPathComponent().path)
        // macOS: the test bundle is a directory (…/debug/ferryPackageTests.xctest/Contents/MacOS/…).
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            directories.append((bundle.bundlePath as NSString).deletingLastPathComponent)
        }
        for directory in directories {
            let candidate = directory + "/ferry"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw FerryExecutableMissing(description: """
            the ferry executable is not next to the test binary (looked in \(directories.joined(separator: ", "))): \
            build it first: swift build (scripts/test runs swift build --build-tests before swift test)
            """)
    }
}

struct FerryExecutableMissing: Error, CustomStringConvertible { var description: String }
