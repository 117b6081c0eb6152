import Foundation

/// Raised when a condition did not hold within its time limit.
public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public let timeout: Duration
    public let lastError: String?
    public var description: String {
        "timed out after \(timeout) waiting for \(what)" + (lastError.map { "; last error: \($0)" } ?? "")
    }
}

/// Polls `condition` until it returns a value (non-nil), or throws `TimedOut`.
/// Use instead of sleeps: the wait ends as soon as the condition holds.
@discardableResult
public func eventually<T: Sendable>(
    _ what: String = "condition",
    timeout: Duration = .seconds(60),
    interval: Duration = .milliseconds(25),
    _ condition: () async throws -> T?
) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var lastError: String?
    while true {
        do {
            if let value = try await condition() { return value }
            lastError = nil
        } catch {
            lastError = "\(error)"
        }
        if clock.now >= deadline { throw TimedOut(what: what, timeout: timeout, lastError: lastError) }
        try await Task.sleep(for: interval)
    }
}

/// Polls a boolean condition until it is true, or throws `TimedOut`.
public func eventually(
    _ what: String = "condition",
    timeout: Duration = .seconds(60),
    interval: Duration = .milliseconds(25),
    _ condition: () async throws -> Bool
) async throws {
    let _: Bool = try await eventually(what, timeout: timeout, interval: interval) { try await condition() ? true : nil }
}
