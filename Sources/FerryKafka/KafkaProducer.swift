import CRdkafka
import FerryCore
import Logging

/// The librdkafka version Ferry runs with (e.g. `2.0.2`), which may be newer than the one it
/// was built with when `LD_LIBRARY_PATH` points at another `librdkafka.so.1`.
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

/// What delivery reports told so far. librdkafka calls back from inside `rd_kafka_poll`, which
/// only ``KafkaProducer`` calls, on its owner's executor; the log callback (any librdkafka
/// thread) only touches the `Logger`, which is thread-safe.
final class DeliveryTracker: @unchecked Sendable {
    /// Messages produced and not yet reported.
    var outstanding = 0
    /// Messages reported delivered.
    var delivered = 0
    /// The first delivery that failed for good, if any: nothing after it may be confirmed.
    var failure: String?
    /// The last error librdkafka reported about the cluster (brokers down, authentication…).
    var lastClusterError: String?
    /// A fatal error (the idempotent producer cannot go on).
    var fatal = false
    let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }
}

/// An idempotent librdkafka producer: `acks=all`, retries without end while brokers are away,
/// delivery reports counted by ``DeliveryTracker``.
final class KafkaProducer: @unchecked Sendable {
    private let handle: OpaquePointer
    private var topics: [String: OpaquePointer] = [:]
    let tracker: DeliveryTracker
    private let trackerReference: Unmanaged<DeliveryTracker>

    /// - Throws: ``FerryError`` (configuration) naming a property librdkafka refuses.
    init(options: KafkaOptions, clientID: String, logger: Logger, shown: String) throws {
        tracker = DeliveryTracker(logger: logger)
        trackerReference = Unmanaged.passRetained(tracker)
        guard let configuration = rd_kafka_conf_new() else {
            trackerReference.release()
            throw FerryError(.destination, "librdkafka could not allocate a configuration")
        }
        var settings: [KafkaOptions.Property] = [
            .init("bootstrap.servers", options.bootstrapServers),
            .init("client.id", clientID),
            .init("enable.idempotence", "true"),
            .init("acks", "all"),
            // A broker outage stalls delivery (and so the pipeline) instead of failing messages.
            .init("message.timeout.ms", "0"),
            .init("compression.codec", options.compression),
            .init("queue.buffering.max.kbytes", "\(options.bufferMegabytes * 1024)"),
            .init("queue.buffering.max.messages", "1000000"),
            .init("linger.ms", "5"),
            // The Java client's partitioner: the same key lands on the same partition as with
            // Debezium (Kafka Connect) producing to that topic.
            .init("partitioner", "murmur2_random"),
        ]
        settings += options.properties
        var errorText = [CChar](repeating: 0, count: 512)
        for setting in settings {
            let result = rd_kafka_conf_set(configuration, setting.name, setting.value, &errorText, errorText.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(configuration)
                trackerReference.release()
                let reason = cText(errorText)
                let value = setting.name.contains("password") ? "…" : setting.value
                throw FerryError(.configuration, "destination \(shown): librdkafka refuses \(setting.name)=\(value): \(reason)",
                                 fix: "see librdkafka's CONFIGURATION.md for \(setting.name)")
            }
        }
        rd_kafka_conf_set_opaque(configuration, trackerReference.toOpaque())
        rd_kafka_conf_set_dr_msg_cb(configuration, deliveryReport)
        rd_kafka_conf_set_error_cb(configuration, clusterError)
        rd_kafka_conf_set_log_cb(configuration, librdkafkaLog)
        // rd_kafka_new takes the configuration (also when it fails).
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, configuration, &errorText, errorText.count) else {
            trackerReference.release()
            throw FerryError(.configuration, "destination \(shown): librdkafka cannot create a producer: \(cText(errorText))")
        }
        self.handle = handle
    }

    deinit {
        for topic in topics.values { rd_kafka_topic_destroy(topic) }
        rd_kafka_destroy(handle)
        trackerReference.release()
    }

    /// Asks a broker for the cluster's metadata: proof that the brokers answer. Returns the
    /// number of brokers, or throws with librdkafka's reason.
    func brokerCount(timeoutMilliseconds: Int32) throws(KafkaFailure) -> Int {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(handle, 0, nil, &metadata, timeoutMilliseconds)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaFailure(code: error.rawValue, message: String(cString: rd_kafka_err2str(error)))
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        return Int(metadata.pointee.broker_cnt)
    }

    /// Queues one message. Returns false when librdkafka's queue is full (poll, then retry).
    /// `value` nil is a tombstone.
    func produce(topic: OpaquePointer, key: [UInt8]?, value: [UInt8]?) throws(KafkaFailure) -> Bool {
        let result: Int32 = withOptionalBytes(key) { keyPointer, keyCount in
            withOptionalBytes(value) { valuePointer, valueCount in
                rd_kafka_produce(topic, -1, RD_KAFKA_MSG_F_COPY, UnsafeMutableRawPointer(mutating: valuePointer), valueCount,
                                 keyPointer, keyCount, nil)
            }
        }
        if result == 0 {
            tracker.outstanding += 1
            return true
        }
        let error = rd_kafka_last_error()
        if error == RD_KAFKA_RESP_ERR__QUEUE_FULL { return false }
        throw KafkaFailure(code: error.rawValue, message: String(cString: rd_kafka_err2str(error)))
    }

    /// Serves delivery reports and error callbacks; waits up to `timeoutMilliseconds` for one.
    func poll(timeoutMilliseconds: Int32 = 0) {
        _ = rd_kafka_poll(handle, timeoutMilliseconds)
    }

    /// Sends the messages waiting for `linger.ms` now (librdkafka ignores it while flushing) and
    /// serves delivery reports, waiting up to `timeoutMilliseconds` for the last one.
    func flush(timeoutMilliseconds: Int32) {
        _ = rd_kafka_flush(handle, timeoutMilliseconds)
    }

    /// The fatal error of the idempotent producer, if one was raised.
    func fatalError() -> String? {
        var text = [CChar](repeating: 0, count: 512)
        let error = rd_kafka_fatal_error(handle, &text, text.count)
        guard error != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return "\(String(cString: rd_kafka_err2name(error))): \(cText(text))"
    }

    /// librdkafka's handle of topic `name` (kept for the producer's life).
    func topic(_ name: String) throws(KafkaFailure) -> OpaquePointer {
        if let topic = topics[name] { return topic }
        guard let topic = rd_kafka_topic_new(handle, name, nil) else {
            let error = rd_kafka_last_error()
            throw KafkaFailure(code: error.rawValue, message: "topic \(name): \(String(cString: rd_kafka_err2str(error)))")
        }
        topics[name] = topic
        return topic
    }
}

/// An error code and text from librdkafka.
struct KafkaFailure: Error, CustomStringConvertible {
    var code: Int32
    var message: String
    var description: String { message }
}

/// A NUL-terminated C string in a buffer librdkafka wrote.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawPointer?, Int) -> R) -> R {
    guard let bytes else { return body(nil, 0) }
    return bytes.withUnsafeBytes { body($0.baseAddress, $0.count) }
}

// MARK: librdkafka callbacks (C function pointers: no captures; the tracker is the opaque)

private func deliveryReport(_ handle: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque, let message else { return }
    Unmanaged<DeliveryTracker>.fromOpaque(opaque)._withUnsafeGuaranteedRef { tracker in
        tracker.outstanding -= 1
        let error = message.pointee.err
        if error == RD_KAFKA_RESP_ERR_NO_ERROR {
            tracker.delivered += 1
            return
        }
        if tracker.failure == nil {
            let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
            tracker.failure = "a message to topic \(topic) was not delivered: \(String(cString: rd_kafka_err2name(error))): \(String(cString: rd_kafka_err2str(error)))"
        }
    }
}

private func clusterError(_ handle: OpaquePointer?, _ code: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let tracker = Unmanaged<DeliveryTracker>.fromOpaque(opaque).takeUnretainedValue()
    let text = reason.map { String(cString: $0) } ?? "error \(code)"
    tracker.lastClusterError = text
    if code == RD_KAFKA_RESP_ERR__FATAL.rawValue { tracker.fatal = true }
}

private func librdkafkaLog(_ handle: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ text: UnsafePointer<CChar>?) {
    guard let handle, let opaque = rd_kafka_opaque(handle) else { return }
    let tracker = Unmanaged<DeliveryTracker>.fromOpaque(opaque).takeUnretainedValue()
    let message = text.map { String(cString: $0) } ?? ""
    let facilityName = facility.map { String(cString: $0) } ?? ""
    // syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug. Broker connection noise
    // (a broker down) comes as level 3 with facility FAIL; it is repeated every retry.
    let logLevel: Logger.Level = level <= 3 ? (facilityName == "FAIL" ? .info : .error) : level == 4 ? .warning : level <= 6 ? .info : .debug
    tracker.logger.log(level: logLevel, "librdkafka: \(message)", metadata: ["facility": "\(facilityName)"])
}
