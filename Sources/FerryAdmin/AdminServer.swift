import FerryCore
import Foundation
import Hummingbird
import Logging
import Prometheus
import Synchronization

/// The admin HTTP server of `ferry run`: `/healthz`, `/readyz`, `/metrics` (Prometheus text
/// format, every name prefixed `ferry_`) and `/status` (JSON).
public final class AdminServer: Sendable {
    public let host: String
    public let requestedPort: Int
    public let monitor: PipelineMonitor
    public let registry: PrometheusCollectorRegistry
    private let logger: Logger
    private let running = Mutex<Task<Void, any Error>?>(nil)

    /// - Parameter registry: the registry the pipeline's metrics were made in (see ``metricsFactory(_:)``).
    public init(host: String, port: Int, monitor: PipelineMonitor, registry: PrometheusCollectorRegistry, logger: Logger) {
        self.host = host
        self.requestedPort = port
        self.monitor = monitor
        self.registry = registry
        self.logger = logger
    }

    /// The factory to hand the pipeline so that its metrics land in `registry`.
    public static func metricsFactory(_ registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
        ]
        factory.defaultValueHistogramBuckets = [1, 10, 50, 100, 500, 1000, 2000, 5000]
        return factory
    }

    /// Starts listening; returns the port bound (useful with port 0). Throws with a clear
    /// message when the address is taken or invalid.
    public func start() async throws -> Int {
        let router = Router()
        let monitor = self.monitor
        let registry = self.registry
        router.get("healthz") { _, _ -> Response in
            let failed = monitor.phase == .failed
            return Self.text(failed ? "failed\n" : "ok\n", status: failed ? .serviceUnavailable : .ok)
        }
        router.get("readyz") { _, _ -> Response in
            let phase = monitor.phase
            return Self.text(phase == .streaming ? "ready\n" : "not ready: \(phase.rawValue)\n",
                             status: phase == .streaming ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ -> Response in
            monitor.refresh()
            var body = ByteBuffer()
            body.writeBytes(registry.emitToBuffer())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: body))
        }
        router.get("status") { _, _ -> Response in
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(monitor.status())
            var body = ByteBuffer()
            body.writeBytes(data)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
        }
        // Hummingbird logs its own shutdown (a cancelled child channel) as an error; bind
        // failures reach the caller as a FerryError instead.
        var quiet = logger
        quiet.logLevel = .critical
        let bound = AsyncStream<Result<Int, any Error>>.makeStream()
        let application = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: requestedPort), serverName: nil),
            onServerRunning: { channel in
                bound.continuation.yield(.success(channel.localAddress?.port ?? 0))
            },
            logger: quiet)
        let task = Task {
            do {
                try await application.run()
            } catch {
                bound.continuation.yield(.failure(error))
                throw error
            }
        }
        running.withLock { $0 = task }
        for await result in bound.stream {
            switch result {
            case .success(let port):
                logger.info("admin server listening", metadata: ["address": "\(host):\(port)"])
                return port
            case .failure(let error):
                throw FerryError(.configuration, "the admin server cannot listen on \(host):\(requestedPort): \(error)",
                                 fix: "pick a free address with --admin HOST:PORT, or turn it off with --admin off")
            }
        }
        throw FerryError(.configuration, "the admin server did not start on \(host):\(requestedPort)")
    }

    public func stop() async {
        let task = running.withLock { task -> Task<Void, any Error>? in
            defer { task = nil }
            return task
        }
        task?.cancel()
        _ = await task?.result
    }

    private static func text(_ body: String, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
