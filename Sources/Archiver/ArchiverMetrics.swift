import Events
import Metrics

/// The archiver's Prometheus series. Handles are made once: looking a counter up in the
/// registry per event cost more than decoding the event. Event types become labels only when
/// the contract knows them, so a producer sending odd types cannot blow up the series count.
final class ArchiverMetrics: Sendable {
    /// History types first, then saga failures (the archived and compensated series take slices).
    static let knownTypes = ArchiveKind.types

    static func typeLabel(_ type: String?) -> String {
        guard let type else { return "unknown" }
        return knownTypes.contains(type) ? type : "other"
    }

    private let consumedByType: [String: Counter]
    private let archivedByType: [String: Counter]
    private let compensatedByType: [String: Counter]
    private let deadLetteredByKind: [String: Counter]
    private let deadLettersKeptByKind: [String: Counter]
    private let suppressedCounter = Counter(label: "archiver_events_suppressed_total")
    private let ignoredCounter = Counter(label: "archiver_events_ignored_total")
    private let duplicateFailuresCounter = Counter(label: "archiver_duplicate_failures_total")
    private let batchSize = Recorder(label: "archiver_batch_size")
    private let writeTimer = Metrics.Timer(label: "archiver_write_duration_seconds")
    private let eventLatency = Metrics.Timer(label: "archiver_event_latency_seconds")

    init() {
        let labels = Self.knownTypes + ["other", "unknown"]
        func counters(_ name: String, _ dimension: String, _ values: [String]) -> [String: Counter] {
            Dictionary(uniqueKeysWithValues: values.map { ($0, Counter(label: name, dimensions: [(dimension, $0)])) })
        }
        // Each series only with the labels it can have, so /metrics shows no impossible zeros.
        consumedByType = counters("archiver_events_consumed_total", "type", labels)
        archivedByType = counters("archiver_events_archived_total", "type", Array(Self.knownTypes.prefix(3)))
        compensatedByType = counters("archiver_sagas_compensated_total", "type", Array(Self.knownTypes.suffix(2)))
        deadLetteredByKind = counters("archiver_events_dead_lettered_total", "kind", DeadLetter.kinds)
        deadLettersKeptByKind = counters("archiver_dead_letters_kept_in_mongo_total", "kind", DeadLetter.kinds)
    }

    /// Counts per label for one batch, so each series is touched once per batch. Indexed by
    /// `ArchiveKind`, then `other`, then `unknown`: no string is compared per event.
    struct Tally {
        var counts = [Int](repeating: 0, count: ArchiverMetrics.knownTypes.count + 2)
        mutating func add(_ event: ArchiveEvent) { counts[event.kind.rawValue] += 1 }
        mutating func addOther() { counts[counts.count - 2] += 1 }
        mutating func addUnknown() { counts[counts.count - 1] += 1 }
        static let labels = ArchiverMetrics.knownTypes + ["other", "unknown"]
    }

    func consumed(_ tally: Tally) { count(tally, into: consumedByType) }
    func archived(_ tally: Tally) { count(tally, into: archivedByType) }

    private func count(_ tally: Tally, into series: [String: Counter]) {
        for (index, n) in tally.counts.enumerated() where n > 0 { series[Tally.labels[index]]?.increment(by: n) }
    }
    func compensated(_ type: String) { compensatedByType[Self.typeLabel(type)]?.increment() }
    func deadLettered(kind: String) { deadLetteredByKind[kind]?.increment() }
    /// A dead letter the broker refused (too large): kept whole in MongoDB, a stub on the topic.
    func deadLetterKept(kind: String) { deadLettersKeptByKind[kind]?.increment() }
    func suppressed(_ n: Int) { suppressedCounter.increment(by: n) }
    func ignored(_ n: Int) { ignoredCounter.increment(by: n) }
    func duplicateFailures(_ n: Int) { duplicateFailuresCounter.increment(by: n) }
    func retried(_ what: String) { Counter(label: "archiver_retries_total", dimensions: [("operation", what)]).increment() }
    func batch(size: Int) { batchSize.record(size) }
    func write(seconds: Double) { writeTimer.recordNanoseconds(Int64(seconds * 1e9)) }
    /// From the Kafka message timestamp to the write acknowledged: what a sink's operators watch.
    func eventLatency(ms: Int64) { eventLatency.recordNanoseconds(max(0, ms) * 1_000_000) }
    func lag(topic: String, partition: Int32, _ value: Int64) {
        Gauge(label: "archiver_consumer_lag", dimensions: [("topic", topic), ("partition", String(partition))]).record(value)
    }
}
