import CoreMetrics
import FerryCore
import FerryJSON
import FerryKafka
import FerryPostgres
import FerrySQLite
import Logging

/// Builds a pipeline from what the user asked for: the one place destinations are chosen.
enum PipelineAssembly {
    static func make(configuration: PipelineConfiguration, destinations urls: [DestinationURL], statePath: String,
                     logger: Logger, metrics: any MetricsFactory = NOOPMetricsHandler.instance) async throws -> Pipeline {
        let destinations: [any Destination] = try urls.map { url -> any Destination in
            switch url {
            case .postgres(let text):
                return try PostgresDestination(url: text, pipeline: configuration.name, logger: logger, metrics: metrics)
            case .kafka(let text):
                return try KafkaDestination(url: text, pipeline: configuration.name, database: configuration.source.database, logger: logger)
            case .sqlite(let path):
                return SQLiteDestination(path: path, pipeline: configuration.name, logger: logger)
            case .jsonLinesFile(let path):
                return JSONLinesDestination(output: .file(path), pipeline: configuration.name,
                                            database: configuration.source.database, logger: logger)
            case .jsonLinesStdout:
                return JSONLinesDestination(output: .standardOutput, pipeline: configuration.name,
                                            database: configuration.source.database, logger: logger)
            }
        }
        let state = try SQLiteStateStore(path: statePath, logger: logger)
        return Pipeline(configuration: configuration, destinations: destinations, state: state, logger: logger, metrics: metrics)
    }
}
