import CRdkafka
import FerryCore

/// librdkafka's built-in mock cluster: Kafka-protocol brokers inside this process, reachable
/// over TCP on loopback by any client (other processes too). For tests and local trials of
/// the Kafka destination; it keeps messages in memory while it lives.
public final class KafkaMockCluster: @unchecked Sendable {
    private let host: OpaquePointer
    private let cluster: OpaquePointer
    /// `HOST:PORT,…` of the brokers.
    public let bootstrapServers: String
    public let brokerCount: Int

    public init(brokers: Int = 1) throws {
        guard let configuration = rd_kafka_conf_new() else { throw FerryError(.destination, "librdkafka could not allocate a configuration") }
        var errorText = [CChar](repeating: 0, count: 512)
        _ = rd_kafka_conf_set(configuration, "log_level", "3", &errorText, errorText.count)
        guard let host = rd_kafka_new(RD_KAFKA_PRODUCER, configuration, &errorText, errorText.count) else {
            throw FerryError(.destination, "librdkafka cannot create the mock cluster's host client: \(cText(errorText))")
        }
        guard let cluster = rd_kafka_mock_cluster_new(host, Int32(brokers)) else {
            rd_kafka_destroy(host)
            throw FerryError(.destination, "librdkafka cannot create a mock cluster")
        }
        self.host = host
        self.cluster = cluster
        self.brokerCount = brokers
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(host)
    }

    /// Creates a topic (otherwise topics are created on first use).
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws {
        let error = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor))
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw FerryError(.destination, "mock cluster: cannot create topic \(name): \(String(cString: rd_kafka_err2str(error)))")
        }
    }

    /// Takes broker `id` (1…brokerCount) down: connections are closed and refused.
    public func setBrokerDown(_ id: Int) {
        _ = rd_kafka_mock_broker_set_down(cluster, Int32(id))
    }

    /// Brings broker `id` back.
    public func setBrokerUp(_ id: Int) {
        _ = rd_kafka_mock_broker_set_up(cluster, Int32(id))
    }
}
