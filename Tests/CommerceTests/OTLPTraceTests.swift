import Events
import Foundation
import TestSupport
import Testing

/// Spans exported by OTLP/HTTP from real `commerce serve` and `archiver run` processes to a
/// small receiver (scripts/otlp-receiver.py): one trace per saga, a span for every hop.
@Suite("OpenTelemetry traces")
struct OTLPTraceTests {
    static let orderTrace = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"
    static let paymentTrace = "00-5bf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-01"

    @Test func anOrderAndItsFailedPaymentAreOneTraceEachWithASpanForEveryHop() async throws {
        let receiver = try await OTLPReceiver()
        defer { receiver.stop() }
        let s = try await CommerceScenario(backend: .sqlite, tracesTo: receiver.endpoint)
        let (order, payment) = try await s.placedOrderAndFailedPayment(orderTrace: Self.orderTrace, paymentTrace: Self.paymentTrace)

        let orderTrace = try #require(TraceParent(Self.orderTrace)), paymentTrace = try #require(TraceParent(Self.paymentTrace))
        let orderHops = [EventType.orderRequested, EventType.stockDecreased, EventType.cartRemoved]
        let paymentHops = [EventType.paymentRequested, EventType.balanceDeductFailed, EventType.paymentFailed]
        func complete(_ spans: [ExportedSpan]) -> Bool {
            let order = spans.filter { $0.traceId == orderTrace.traceId.hex }, pay = spans.filter { $0.traceId == paymentTrace.traceId.hex }
            return Set(orderHops).isSubset(of: order.compactMap(\.eventType)) && Set(paymentHops).isSubset(of: pay.compactMap(\.eventType))
                && pay.contains { $0.service == "archiver" && $0.name == "create \(s.prefix)archive.compensation" }
                && [order, pay].allSatisfy { trace in
                    trace.allSatisfy { span in span.opensTrace || trace.contains { $0.spanId == span.parentSpanId } }
                }
        }
        let spans = try await receiver.spans(until: complete)
        #expect(complete(spans), "\(spans.map(\.summary))")

        for (trace, request) in [(orderTrace, Self.orderTrace), (paymentTrace, Self.paymentTrace)] {
            let hops = spans.filter { $0.traceId == trace.traceId.hex }
            // The request opens the trace: one server span, the caller's child; every other span's parent is in the trace.
            let servers = hops.filter { $0.kind == ExportedSpan.server }
            #expect(servers.count == 1 && servers.first?.parentSpanId == String(request.dropFirst(36).prefix(16)), "\(request)")
            #expect(servers.first?.name == (trace == orderTrace ? "POST /orders" : "POST /payments"))
            #expect(hops.allSatisfy { span in span.opensTrace || hops.contains { $0.spanId == span.parentSpanId } })
            // Each consumed event's span is a child of the span that created that message, on the same topic.
            for consumer in hops where consumer.kind == ExportedSpan.consumer {
                let producer = hops.first { $0.spanId == consumer.parentSpanId }
                #expect(producer?.kind == ExportedSpan.producer, "\(consumer.summary)")
                #expect(producer.map { "process " + $0.name.dropFirst("create ".count) } == consumer.name, "\(consumer.summary)")
            }
        }
        let orderSpans = spans.filter { $0.traceId == orderTrace.traceId.hex }
        #expect(!orderSpans.contains { $0.failed }, "an order that was placed has no failed step")

        // The failing step, the compensation it started, and the archiver's part in it.
        let paymentSpans = spans.filter { $0.traceId == paymentTrace.traceId.hex }
        let failing = paymentSpans.filter(\.failed)
        #expect(failing.count == 1 && failing.first?.eventType == EventType.paymentRequested, "\(failing.map(\.summary))")
        #expect(failing.first?.statusMessage == "saga step failed: \(EventType.balanceDeductFailed)")
        #expect(failing.first?.attributes["commerce.service"] as? String == "user")
        #expect(
            paymentSpans.contains {
                $0.eventType == EventType.balanceDeductFailed && ($0.attributes["commerce.saga.compensating"] as? NSNumber)?.boolValue == true
            })
        let archived = try #require(
            paymentSpans.first { $0.service == "archiver" && $0.eventType == EventType.paymentFailed }, "\(paymentSpans.map(\.summary))")
        #expect(archived.name == "process \(s.prefix)commerce.payment")
        let emitted = try #require(paymentSpans.first { $0.name == "create \(s.prefix)archive.compensation" })
        #expect(emitted.parentSpanId == archived.spanId)
        // The history-deleted event on the topic carries exactly that span's context.
        let deleted = try await TraceContextTests.events(of: ["pay-\(payment)"], in: s, until: [EventType.historyDeleted])
        let header = deleted.first { $0.type == EventType.historyDeleted }?.header
        #expect(header?.traceId == paymentTrace.traceId && header.map { String($0.text.dropFirst(36).prefix(16)) } == emitted.spanId)
        await s.finish()
    }
}

/// scripts/otlp-receiver.py on a port of its own; spans read back from its file.
final class OTLPReceiver: Sendable {
    let process: ChildProcess
    let file: String
    let endpoint: String

    /// Returns once it listens: an export refused before that would not be sent again.
    init() async throws {
        let port = freePort()
        file = FileManager.default.temporaryDirectory.appendingPathComponent("spans-\(UUID().uuidString.prefix(8)).jsonl").path
        endpoint = "http://127.0.0.1:\(port)"
        process = try ChildProcess(
            executable: packageRoot.appendingPathComponent("scripts/otlp-receiver.py").path, arguments: ["--port", "\(port)", "--out", file],
            logName: "otlp-receiver")
        let listening = try await eventually { [process] in process.output.contains("listening") || !process.process.isRunning }
        guard listening, process.process.isRunning else {
            process.terminate()
            throw ReceiverFailed(output: process.output)
        }
    }

    struct ReceiverFailed: Error { var output: String }

    /// The spans received, read again until `done` holds for them (60 s at most).
    func spans(until done: ([ExportedSpan]) -> Bool) async throws -> [ExportedSpan] {
        var spans: [ExportedSpan] = []
        _ = try await eventually(60) {
            spans = read()
            return done(spans)
        }
        return spans
    }

    private func read() -> [ExportedSpan] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).map(ExportedSpan.init)
        }
    }

    func stop() {
        process.terminate()
        try? FileManager.default.removeItem(atPath: file)
    }
}

/// One span as the receiver wrote it.
struct ExportedSpan {
    static let server = 2, producer = 4, consumer = 5  // OTLP's SpanKind
    var traceId, spanId, parentSpanId, name, service: String
    var kind: Int
    var attributes: [String: Any]
    var failed: Bool
    var statusMessage: String

    init(_ json: [String: Any]) {
        traceId = json["traceId"] as? String ?? ""
        spanId = json["spanId"] as? String ?? ""
        parentSpanId = json["parentSpanId"] as? String ?? ""
        name = json["name"] as? String ?? ""
        service = json["service"] as? String ?? ""
        kind = (json["kind"] as? NSNumber)?.intValue ?? 0
        attributes = json["attributes"] as? [String: Any] ?? [:]
        let status = json["status"] as? [String: Any] ?? [:]
        failed = (status["code"] as? NSNumber)?.intValue == 2  // STATUS_CODE_ERROR
        statusMessage = status["message"] as? String ?? ""
    }

    /// The request's server span: its parent is the caller's, outside what was exported.
    var opensTrace: Bool { kind == Self.server }
    var eventType: String? { attributes["commerce.event.type"] as? String }
    var summary: String { "\(service) \(name) \(eventType ?? "") parent=\(parentSpanId) span=\(spanId)" }
}
