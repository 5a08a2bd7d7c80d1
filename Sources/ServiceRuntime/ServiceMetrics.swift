import Events
import Prometheus

/// One service's Prometheus series in its process's registry (`commerce serve` serves them on
/// `/metrics`). Labels are bounded: the service's name, the contract's event types ("other" for
/// any other type, "malformed" for what is not an event), saga outcomes and reason classes;
/// never an id or free text.
public final class ServiceMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let service: String
    private let applyDuration: DurationHistogram
    private let conflictRetries: Counter
    private let leader: Gauge
    private let backlogRows: Gauge
    private let oldestRowAge: Gauge

    /// A registry of its own when none is given: series nobody scrapes (tests, embedding).
    public init(service: String, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.service = service
        let labels = [("service", service)]
        applyDuration = registry.makeDurationHistogram(
            descriptor: Self.name("inbox_apply_duration", "seconds", "Time of one inbox batch's transaction (claim, lock, apply), retries included."),
            labels: labels, buckets: Self.durationBuckets)
        conflictRetries = registry.makeCounter(
            descriptor: Self.name(
                "conflict_retries", "total", "Write transactions run again after a deadlock or serialization failure (PostgreSQL)."),
            labels: labels)
        leader = registry.makeGauge(
            descriptor: Self.name("relay_leader", "", "1 while this process leads the service's outbox relay, else 0."), labels: labels)
        backlogRows = registry.makeGauge(
            descriptor: Self.name("outbox_backlog", "rows", "Rows in the service's outbox (not published, or published less than a second ago)."),
            labels: labels)
        oldestRowAge = registry.makeGauge(
            descriptor: Self.name("outbox_oldest_row_age", "seconds", "Age of the oldest row in the service's outbox; 0 when it is empty."),
            labels: labels)
        leader.set(0.0)
        // Each way this service can end a saga is a series from the start, at 0: a rate over the
        // first failure sees it (a series born with its first increment shows no increase).
        for (saga, state) in Self.outcomes.values where saga == service {
            for reason in state == "placed" || state == "completed" ? ["none"] : Self.reasonLabels {
                _ = registry.makeCounter(descriptor: Self.sagasEndedName, labels: [("saga", saga), ("state", state), ("reason", reason)])
            }
        }
    }

    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "commerce", metricName: metric, unitName: unit.isEmpty ? nil : unit, helpText: help)
    }

    /// The contract's event type, or a stand-in that keeps the label set bounded.
    static func typeLabel(_ type: String) -> String { EventType.all.contains(type) ? type : "other" }

    // Built once: the labelled counters below are looked up in the registry per batch.
    // Immutable; `nonisolated(unsafe)` only because swift-prometheus does not mark the type Sendable.
    nonisolated(unsafe) private static let consumedName = name(
        "events_consumed", "total", "Events read from the service's topics that it acts on, by type (redeliveries included).")
    nonisolated(unsafe) private static let producedName = name(
        "events_produced", "total", "Events the service's outbox relay published, acknowledged by the broker, by type.")
    nonisolated(unsafe) private static let sagasEndedName = name(
        "sagas_ended", "total", "Sagas that reached their final state, by saga (order, payment), state and reason class.")

    /// Counts a batch's events by type label (already bounded: `typeLabel` or "malformed"):
    /// one registry lookup per label, not per event.
    func consumed(_ labels: some Sequence<String>) { count(labels, Self.consumedName) }

    /// Counts the acknowledged events of a batch by type.
    func produced(_ types: some Sequence<String>) { count(types.lazy.map(Self.typeLabel), Self.producedName) }

    private func count(_ labels: some Sequence<String>, _ descriptor: MetricNameDescriptor) {
        var tally: [String: Int64] = [:]
        for label in labels { tally[label, default: 0] += 1 }
        for (label, n) in tally {
            registry.makeCounter(descriptor: descriptor, labels: [("service", service), ("type", label)]).increment(by: n)
        }
    }

    func applied(in duration: Duration) { applyDuration.record(duration) }

    /// Counts a conflict retry of this service's store; give it to the store.
    public func conflictRetried() { conflictRetries.increment() }

    func leads(_ leading: Bool) { leader.set(leading ? 1.0 : 0.0) }

    func outbox(rows: Int, oldestAge: Duration?) {
        backlogRows.set(Double(rows))
        let age = oldestAge.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } ?? 0
        oldestRowAge.set(max(0, age))
    }

    /// Sagas that reached their final state in events this service committed.
    func committed(_ events: [CommerceEvent]) {
        for event in events {
            guard let (saga, state) = Self.outcomes[event.type] else { continue }
            let reason = state == "placed" || state == "completed" ? "none" : Self.reasonClass(event.data.reason)
            registry.makeCounter(descriptor: Self.sagasEndedName, labels: [("saga", saga), ("state", state), ("reason", reason)]).increment()
        }
    }

    /// The events that end a saga: its kind and final state.
    static let outcomes: [String: (saga: String, state: String)] = [
        EventType.orderPlaced: ("order", "placed"), EventType.orderCancelled: ("order", "cancelled"),
        EventType.paymentCompleted: ("payment", "completed"), EventType.paymentFailed: ("payment", "failed"),
    ]

    /// A failure's reason, as one of a few classes (the text itself names ids and amounts).
    static func reasonClass(_ reason: String?) -> String {
        guard let reason else { return "unknown" }
        return reasonClasses.first { reason.hasPrefix($0.prefix) }?.label ?? "other"
    }

    private static let reasonClasses: [(prefix: String, label: String)] = [
        ("injected fault", "injected"), ("insufficient stock", "stock"), ("insufficient balance", "balance"),
        ("cart of user", "cart"), ("quantity of product", "invalid"), ("order ", "order-status"),
        ("payment of ", "order-status"),
    ]

    /// Every label `reasonClass` can give.
    static var reasonLabels: [String] {
        var labels: [String] = []
        for label in reasonClasses.map(\.label) + ["unknown", "other"] where !labels.contains(label) { labels.append(label) }
        return labels
    }
}
