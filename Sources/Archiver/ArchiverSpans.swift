import Events
import Telemetry
import Tracing

/// The archiver's hops of a saga's trace, made only with an exporter on: a consumer span
/// ("process TOPIC", OpenTelemetry messaging conventions) per history event written, and one
/// per saga failure, around its compensation.
extension BatchExecutor {
    /// One span per event of `writes`, from the start of the batch's write to its end; an event
    /// MongoDB refused (dead-lettered) has an error span.
    func recordWriteSpans(
        _ writes: [HistoryWrite], of batch: [Inbound], rejected: Set<Int>, from start: DefaultTracerClock.Instant
    ) {
        let end = DefaultTracerClock.now
        for w in writes {
            guard let trace = w.event.traceParent else { continue }  // an event of no trace starts none here
            let message = batch[w.inboundIndex].message
            Telemetry.record(
                "process \(message.topic)", kind: .consumer, parent: trace, from: start, to: end,
                attributes: Telemetry.processAttributes(
                    topic: message.topic, partition: message.partition, offset: message.offset, eventId: w.eventId, eventType: w.event.type,
                    service: "archiver"),
                failure: rejected.contains(w.inboundIndex) ? "not archived: dead-lettered" : nil)
        }
    }

    /// Runs a compensation (or its redo, for a redelivered failure) in the failure event's
    /// consumer span; the history-deleted event it emits is created in that span.
    func inCompensationSpan<T>(of failure: SagaFailure, at index: Int, in batch: [Inbound], _ body: () async throws -> T) async throws -> T {
        guard Telemetry.isExporting, let parent = failure.traceParent else { return try await body() }
        let message = batch[index].message
        let topic = message.topic
        var attributes = Telemetry.processAttributes(
            topic: topic, partition: message.partition, offset: message.offset, eventId: failure.eventId, eventType: failure.type,
            service: "archiver")
        attributes["commerce.compensation.reason"] = failure.reason
        return try await Telemetry.withSpan("process \(topic)", kind: .consumer, parent: parent, attributes: attributes) { context in
            try await TraceParent.$current.withValue(context) { try await body() }
        }
    }
}
