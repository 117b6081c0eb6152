import Logging
import PostgresWire

/// Hands snapshot rows to every destination; `flush()` returns once every destination made
/// them durable, which is when the coordinator records a chunk as done.
final class LaneSnapshotSink: SnapshotSink {
    let lanes: [DestinationLane]
    let statistics: PipelineStatistics

    init(lanes: [DestinationLane], statistics: PipelineStatistics) {
        self.lanes = lanes
        self.statistics = statistics
    }

    func write(_ events: [PipelineEvent]) async throws {
        statistics.count(events)
        if lanes.count == 1 {
            try await lanes[0].writeSnapshot(events)
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in lanes { group.addTask { try await lane.writeSnapshot(events) } }
            try await group.waitForAll()
        }
    }

    func flush() async throws {
        for lane in lanes { _ = try await lane.flush() }
    }

    /// Only when every destination takes them (one undecoded stream for all).
    func acceptsBinaryCopyRows(for table: TableSchema) async throws -> Bool {
        for lane in lanes {
            guard try await lane.destination.acceptsBinaryCopyRows(for: table) else { return false }
        }
        return true
    }
}

/// Runs the slot-consistent snapshot of a pipeline's tables.
enum SnapshotRunner {
    /// Copies the tables; a stop request is not honoured until the copy ends (the resumable
    /// chunks make an interrupted copy cheap to finish on the next run).
    static func copy(configuration: PipelineConfiguration, record: PipelineRecord, exportedSnapshot: String?,
                     state: any StateStore, sink: LaneSnapshotSink, logger: Logger, monitor: PipelineMonitor? = nil) async throws {
        let selectors: [TableSelector]
        if record.tables.isEmpty {
            selectors = [.publication(record.publication)]
        } else {
            selectors = try record.tables.map { try TableSelector(parsing: $0) }
        }
        let coordinator = SnapshotCoordinator(
            source: configuration.source, tables: selectors, snapshotName: exportedSnapshot, stateStore: state,
            pipeline: configuration.name, options: SnapshotOptions(parallelism: configuration.snapshotParallelism),
            logger: logger)
        monitor?.attach(snapshot: { coordinator.progress })
        let summary = try await coordinator.run(into: sink, reporter: SnapshotProgressReporter(logger: logger))
        logger.info("snapshot complete", metadata: [
            "tables": "\(summary.tables.count)", "rows": "\(summary.progress.rows)", "bytes": "\(summary.progress.bytes)",
            "seconds": "\(summary.progress.elapsed.components.seconds)",
        ])
    }
}
