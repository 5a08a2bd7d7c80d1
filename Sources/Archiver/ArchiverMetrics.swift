import Metrics

/// The archiver's Prometheus series. Event types become labels only when the contract knows
/// them, so a producer sending odd types cannot blow up the series count.
struct ArchiverMetrics: Sendable {
    private static let knownTypes: Set<String> = [
        "commerce.balance.charged", "commerce.balance.deducted", "commerce.payment.completed",
        "commerce.order.status-change-failed", "commerce.payment.failed",
    ]

    static func typeLabel(_ type: String?) -> String {
        guard let type else { return "unknown" }
        return knownTypes.contains(type) ? type : "other"
    }

    func consumed(_ type: String?, _ n: Int = 1) { Counter(label: "archiver_events_consumed_total", dimensions: [("type", Self.typeLabel(type))]).increment(by: n) }
    func archived(_ type: String, _ n: Int) { Counter(label: "archiver_events_archived_total", dimensions: [("type", Self.typeLabel(type))]).increment(by: n) }
    func suppressed(_ n: Int) { Counter(label: "archiver_events_suppressed_total").increment(by: n) }
    func ignored(_ n: Int) { Counter(label: "archiver_events_ignored_total").increment(by: n) }
    func compensated(_ type: String) { Counter(label: "archiver_sagas_compensated_total", dimensions: [("type", Self.typeLabel(type))]).increment() }
    func duplicateFailures(_ n: Int) { Counter(label: "archiver_duplicate_failures_total").increment(by: n) }
    func deadLettered(kind: String) { Counter(label: "archiver_events_dead_lettered_total", dimensions: [("kind", kind)]).increment() }
    func retried(_ what: String) { Counter(label: "archiver_retries_total", dimensions: [("operation", what)]).increment() }
    func batch(size: Int) { Recorder(label: "archiver_batch_size").record(size) }
    func write(seconds: Double) { Metrics.Timer(label: "archiver_write_duration_seconds").recordNanoseconds(Int64(seconds * 1e9)) }
    func lag(topic: String, partition: Int32, _ value: Int64) {
        Gauge(label: "archiver_consumer_lag", dimensions: [("topic", topic), ("partition", String(partition))]).record(value)
    }
}
