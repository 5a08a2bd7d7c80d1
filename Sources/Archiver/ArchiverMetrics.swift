import Events
import Kafka
import Prometheus

/// The archiver's Prometheus series, each with its HELP text, made on the registry `/metrics`
/// serves. Handles are made once: looking a counter up per event cost more than decoding the
/// event. Event types become labels only when the contract knows them, so a producer sending
/// odd types cannot blow up the series count.
final class ArchiverMetrics: Sendable {
    /// The table's event types, in its schema's order: a tally counts by that index.
    let knownTypes: [String]
    /// Every operation the retrier names, so each retry series exists (at 0) before the first outage.
    static let retriedOperations = [
        "mongo read compensations", "mongo write history", "mongo recheck compensations", "mongo compensate",
        "mongo compensate again", "mongo suppress", "kafka dead-letter", "kafka commit",
    ]

    private let registry: PrometheusCollectorRegistry
    private let consumedByType: [String: Counter]
    private let archivedByType: [String: Counter]
    private let compensatedByType: [String: Counter]
    private let deadLetteredByKind: [String: Counter]
    private let deadLettersKeptByKind: [String: Counter]
    private let retriedByOperation: [String: Counter]
    private let suppressedCounter: Counter
    private let ignoredCounter: Counter
    private let duplicateFailuresCounter: Counter
    private let batchSize: ValueHistogram
    private let writeDuration: DurationHistogram
    private let eventLatency: DurationHistogram
    private let ready: Gauge
    private let pausedGauge: Gauge
    private let lagGauges = Locked([TopicPartition: Gauge]())

    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    init(registry: PrometheusCollectorRegistry, kinds: HistoryKinds = .builtIn) {
        self.registry = registry
        knownTypes = kinds.schema.types
        let labels = knownTypes + Tally.otherLabels
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "archiver", metricName: metric, unitName: unit, helpText: help)
        }
        func counters(_ descriptor: MetricNameDescriptor, _ label: String, _ values: [String]) -> [String: Counter] {
            Dictionary(uniqueKeysWithValues: values.map { ($0, registry.makeCounter(descriptor: descriptor, labels: [(label, $0)])) })
        }
        // Each series only with the labels it can have, so /metrics shows no impossible zeros.
        consumedByType = counters(
            name(
                "events_consumed", "total",
                "Messages read from the archived topics, by CloudEvent type (unknown: undecodable; other: outside the contract)."),
            "type", labels)
        archivedByType = counters(
            name("events_archived", "total", "History documents written to MongoDB, by event type."),
            "type", knownTypes.filter { !kinds.failureTypes.contains($0) })
        compensatedByType = counters(
            name("sagas_compensated", "total", "Sagas compensated (their history deleted), by failure event type."),
            "type", kinds.failureTypes)
        deadLetteredByKind = counters(
            name("events_dead_lettered", "total", "Events sent to the dead-letter topic, by kind (decode, schema, rejected)."),
            "kind", DeadLetter.kinds)
        deadLettersKeptByKind = counters(
            name("dead_letters_kept_in_mongo", "total", "Dead letters the broker refused, kept whole in MongoDB with a stub on the topic."),
            "kind", DeadLetter.kinds)
        retriedByOperation = counters(
            name("retries", "total", "Retries of an operation while MongoDB or Kafka is unreachable."),
            "operation", Self.retriedOperations)
        suppressedCounter = registry.makeCounter(
            descriptor: name("events_suppressed", "total", "History documents not kept because their saga was already compensated."))
        ignoredCounter = registry.makeCounter(
            descriptor: name("events_ignored", "total", "Events of types the archiver does not archive, committed past."))
        duplicateFailuresCounter = registry.makeCounter(
            descriptor: name("duplicate_failures", "total", "Failure events for sagas already compensated."))
        batchSize = registry.makeValueHistogram(
            descriptor: name("batch_size", "", "Events per batch."), buckets: [1, 10, 50, 100, 250, 500, 1_000, 2_000, 5_000])
        writeDuration = registry.makeDurationHistogram(
            descriptor: name("write_duration", "seconds", "Time of one batch's bulk writes to MongoDB."),
            buckets: Self.durationBuckets)
        eventLatency = registry.makeDurationHistogram(
            descriptor: name("event_latency", "seconds", "From the Kafka message timestamp to the history write acknowledged."),
            buckets: Self.durationBuckets)
        ready = registry.makeGauge(
            descriptor: name(
                "ready", "", "1 when /readyz answers 200 (MongoDB and Kafka reachable, partitions owned and none paused without an outage), else 0."))
        pausedGauge = registry.makeGauge(
            descriptor: name(
                "paused_partitions", "",
                "Assigned partitions not being fetched: paused while an outage is waited out; paused with no outage is a stall."))
    }

    /// Counts per label for one batch, so each series is touched once per batch. Indexed by the
    /// type's index in the table's schema, then `other`, then `unknown`: no string is compared per event.
    struct Tally {
        static let otherLabels = ["other", "unknown"]
        let types: [String]
        var counts: [Int]
        mutating func add(_ event: ArchiveEvent) {
            switch event {
            case .history(let e): counts[e.typeIndex] += 1
            // Rare: found by its name.
            case .sagaFailed(let f): counts[types.firstIndex(of: f.type) ?? counts.count - 2] += 1
            }
        }
        mutating func addOther() { counts[counts.count - 2] += 1 }
        mutating func addUnknown() { counts[counts.count - 1] += 1 }
    }

    func tally() -> Tally { Tally(types: knownTypes, counts: [Int](repeating: 0, count: knownTypes.count + Tally.otherLabels.count)) }

    func consumed(_ tally: Tally) { count(tally, into: consumedByType) }
    func archived(_ tally: Tally) { count(tally, into: archivedByType) }

    private func count(_ tally: Tally, into series: [String: Counter]) {
        for (index, n) in tally.counts.enumerated() where n > 0 {
            series[index < knownTypes.count ? knownTypes[index] : Tally.otherLabels[index - knownTypes.count]]?.increment(by: Int64(n))
        }
    }

    func compensated(_ type: String) { compensatedByType[type]?.increment() }
    func deadLettered(kind: String) { deadLetteredByKind[kind]?.increment() }
    /// A dead letter the broker refused (too large): kept whole in MongoDB, a stub on the topic.
    func deadLetterKept(kind: String) { deadLettersKeptByKind[kind]?.increment() }
    func suppressed(_ n: Int) { suppressedCounter.increment(by: Int64(n)) }
    func ignored(_ n: Int) { ignoredCounter.increment(by: Int64(n)) }
    func duplicateFailures(_ n: Int) { duplicateFailuresCounter.increment(by: Int64(n)) }
    func retried(_ operation: String) { retriedByOperation[operation]?.increment() }
    func batch(size: Int) { batchSize.record(Double(size)) }
    func write(seconds: Double) { writeDuration.recordNanoseconds(Int64(seconds * 1e9)) }
    /// From the Kafka message timestamp to the write acknowledged: what a sink's operators watch.
    /// A producer sets the timestamp: anything outside 0 ms ... one day is not a latency worth a sample.
    func eventLatency(ms: Int64) {
        guard (0...86_400_000).contains(ms) else { return }
        eventLatency.recordNanoseconds(ms * 1_000_000)
    }
    func ready(_ isReady: Bool) { ready.set(Int64(isReady ? 1 : 0)) }
    func paused(_ count: Int) { pausedGauge.set(Int64(count)) }

    func lag(_ partition: TopicPartition, _ value: Int64) {
        let gauge = lagGauges.withLock { gauges in
            if let gauge = gauges[partition] { return gauge }
            let gauge = registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    namespace: "archiver", metricName: "consumer_lag", unitName: "",
                    helpText: "Messages in the partition not yet archived: high watermark minus next offset."),
                labels: [("topic", partition.topic), ("partition", String(partition.partition))])
            gauges[partition] = gauge
            return gauge
        }
        gauge.set(value)
    }

    /// A partition no longer owned has no lag here: its series goes, so a stale value misleads no one.
    func forgetLag(except owned: Set<TopicPartition>) {
        let gone = lagGauges.withLock { gauges in
            let gone = gauges.filter { !owned.contains($0.key) }
            for key in gone.keys { gauges[key] = nil }
            return Array(gone.values)
        }
        for gauge in gone { registry.unregisterGauge(gauge) }
    }
}
