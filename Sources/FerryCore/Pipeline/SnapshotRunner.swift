import Logging
import PostgresWire

/// Hands snapshot rows to every destination and flushes them before a chunk counts as done.
final class LaneSnapshotSink: Sendable {
    let lanes: [DestinationLane]
    let statistics: PipelineStatistics

    init(lanes: [DestinationLane], statistics: PipelineStatistics) {
        self.lanes = lanes
        self.statistics = statistics
    }

    func deliver(_ events: [PipelineEvent]) async throws {
        statistics.count(events)
        for lane in lanes { try await lane.writeSnapshot(events) }
    }

    func flush() async throws {
        for lane in lanes { _ = try await lane.flush() }
    }
}

enum SnapshotRunner {
    static func copy(configuration: PipelineConfiguration, record: PipelineRecord, exportedSnapshot: String?,
                     registry: TypeRegistry, state: any StateStore, sink: LaneSnapshotSink, stopper: PipelineStopper,
                     logger: Logger) async throws {
        throw FerryError(.configuration, "the initial snapshot is not wired in yet", fix: "run with --snapshot never")
    }
}
