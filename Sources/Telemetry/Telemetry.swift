import Events
import Synchronization
import Tracing

/// Spans over a saga's hops, through swift-distributed-tracing's global tracer. Spans are made
/// only once an exporter is on (`startExporting`, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set):
/// without one, each call is a load of one flag and the W3C context still travels with every
/// event, as a new span id per message.
public enum Telemetry {
    private static let exporting = Atomic<Bool>(false)

    /// Whether spans are made: an exporter was bootstrapped in this process.
    public static var isExporting: Bool { exporting.load(ordering: .relaxed) }

    /// Called once the process's tracer is bootstrapped.
    public static func startExporting() { exporting.store(true, ordering: .relaxed) }

    /// The context one message created under `parent` carries: the message's own "create" span
    /// (OpenTelemetry messaging conventions) when exporting, a new span id in `parent`'s trace
    /// otherwise. Nil without a parent: an event of no trace stays so. Made in a transaction,
    /// the span joins `pending`, to end when the transaction does.
    public static func messageContext(topic: @autoclosure () -> String, parent: TraceParent?, pending: PendingSpans? = nil) -> TraceParent? {
        guard let parent else { return nil }
        guard isExporting else { return parent.child() }
        let topic = topic()
        let span = InstrumentationSystem.tracer.startSpan("create \(topic)", context: context(of: parent), ofKind: .producer)
        span.attributes[Attribute.system] = "kafka"
        span.attributes[Attribute.operation] = "create"
        span.attributes[Attribute.destination] = topic
        let context = traceParent(of: span) ?? parent.child()
        if let pending { pending.add(span) } else { span.end() }
        return context
    }

    /// Runs `body` in a span named `name`, a child of `parent` (a new trace without one), when
    /// exporting; `body` gets the span's context. Not exporting, `body` gets `parent` as is.
    /// An error thrown by `body` is recorded on the span.
    public static func withSpan<T>(
        _ name: String, kind: SpanKind, parent: TraceParent?, attributes: SpanAttributes = [:],
        _ body: (TraceParent?) async throws -> T
    ) async rethrows -> T {
        guard isExporting else { return try await body(parent) }
        let span = start(name, kind: kind, parent: parent, attributes: attributes)
        defer { span.end() }
        do { return try await body(traceParent(of: span) ?? parent) } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// Starts a span the caller ends (an HTTP request's, named once its route is known).
    public static func start(_ name: String, kind: SpanKind, parent: TraceParent?, attributes: SpanAttributes = [:]) -> any Span {
        let span = InstrumentationSystem.tracer.startSpan(name, context: parent.map(context(of:)) ?? .topLevel, ofKind: kind)
        if !attributes.isEmpty { span.attributes.merge(attributes) }
        return span
    }

    /// A span of work already done (the archiver learns a batch's outcome only after its write).
    public static func record(
        _ name: String, kind: SpanKind, parent: TraceParent?, from start: DefaultTracerClock.Instant, to end: DefaultTracerClock.Instant,
        attributes: SpanAttributes, failure: String? = nil
    ) {
        let span = InstrumentationSystem.tracer.startSpan(
            name, context: parent.map(context(of:)) ?? .topLevel, ofKind: kind, at: start)
        span.attributes.merge(attributes)
        if let failure { span.setStatus(SpanStatus(code: .error, message: failure)) }
        span.end(at: end)
    }

    /// The W3C context of a span, as the tracer's propagator writes it.
    public static func traceParent(of span: any Span) -> TraceParent? {
        var carrier: String?
        InstrumentationSystem.instrument.inject(span.context, into: &carrier, using: Writer())
        return carrier.flatMap(TraceParent.init)
    }

    private static func context(of parent: TraceParent) -> ServiceContext {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(parent.text, into: &context, using: Reader())
        return context
    }

    /// Carriers of one field, `traceparent`: all this project propagates.
    private struct Reader: Extractor {
        func extract(key: String, from carrier: String) -> String? { key == "traceparent" ? carrier : nil }
    }
    private struct Writer: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout String?) { if key == "traceparent" { carrier = value } }
    }

    /// A consumer span's attributes ("process TOPIC": OpenTelemetry messaging conventions, and
    /// which service handled which event type), for the inboxes and the archiver alike.
    public static func processAttributes(
        topic: String, partition: Int32, offset: Int64, eventId: String, eventType: String, service: String
    ) -> SpanAttributes {
        [
            Attribute.system: "kafka", Attribute.operation: "process", Attribute.destination: .string(topic),
            Attribute.partition: .string(String(partition)), Attribute.offset: .int64(offset), Attribute.messageId: messageId(eventId),
            Attribute.eventType: .string(eventType), Attribute.service: .string(service),
        ]
    }

    /// A message id as a span attribute: at most 256 bytes, whatever a producer sent.
    static func messageId(_ id: String) -> SpanAttribute {
        .string(id.utf8.count <= 256 ? id : String(decoding: id.utf8.prefix(256), as: UTF8.self))
    }

    /// OpenTelemetry messaging attribute names (semantic conventions 1.x).
    public enum Attribute {
        public static let system = "messaging.system"
        public static let operation = "messaging.operation.type"
        public static let destination = "messaging.destination.name"
        public static let partition = "messaging.destination.partition.id"
        public static let offset = "messaging.kafka.offset"
        public static let messageId = "messaging.message.id"
        public static let eventType = "commerce.event.type"
        public static let service = "commerce.service"
        public static let compensating = "commerce.saga.compensating"
        public static let rolledBack = "commerce.rolled_back"
    }
}

/// The spans of one transaction: ended when it commits, or marked rolled back when an attempt is
/// abandoned (a store may run a transaction's body again after a conflict). So no span says that
/// something happened that was rolled back, and none is left open (the tracer keeps every open
/// span until it ends).
public final class PendingSpans: Sendable {
    private let spans = Mutex<[any Span]>([])

    public init() {}

    public func add(_ span: any Span) { spans.withLock { $0.append(span) } }

    /// Called where a transaction's body starts: what an earlier attempt left is rolled back.
    public func beginAttempt() { rollBack() }

    /// The transaction committed.
    public func commit() {
        for span in take() { span.end() }
    }

    /// The transaction did not commit.
    public func rollBack() {
        for span in take() {
            span.attributes[Telemetry.Attribute.rolledBack] = true
            span.setStatus(SpanStatus(code: .error, message: "rolled back"))
            span.end()
        }
    }

    private func take() -> [any Span] {
        spans.withLock { s in
            defer { s = [] }
            return s
        }
    }
}
