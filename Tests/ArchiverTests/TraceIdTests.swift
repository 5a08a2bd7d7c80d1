import Events
import Foundation
import Kafka
import Mongo
import TestSupport
import Testing

@testable import Archiver

/// Contract §5's optional `traceId`: on every history and compensation document whose event
/// carried a well-formed `traceparent`, on nothing else; the compensation event continues the trace.
@Suite("archiver trace ids")
struct TraceIdTests {
    static let kept = TraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")!
    static let failed = TraceParent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")!

    @Test func documentsOfTracedEventsCarryTheTraceIdAndTheCompensationContinuesTheTrace() async throws {
        let s = try await Scenario()
        var malformed = Make.deducted(s, saga: "pay-m")
        // A traceparent in capitals is malformed (W3C: lowercase hex): ignored, the event archived.
        malformed.value = Array(
            String(decoding: malformed.value, as: UTF8.self)
                .replacingOccurrences(of: #""sagaid""#, with: #""traceparent":"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01","sagaid""#)
                .utf8)
        try await s.send([
            Make.deducted(s, saga: "pay-k", trace: Self.kept.child()), Make.paymentCompleted(s, saga: "pay-k", trace: Self.kept.child()),
            Make.deducted(s, saga: "pay-f", trace: Self.failed.child()), malformed, Make.deducted(s, saga: "pay-n"),
        ])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.archived == 5 })
        try await s.send([Make.statusChangeFailed(s, saga: "pay-f", trace: Self.failed.child())])
        #expect(try await eventually { archiver.totals.compensated == 1 })
        archiver.stop()
        try await task.value

        let traces = Dictionary(
            uniqueKeysWithValues: try await (s.store.collection(of: .balance).find() + s.store.collection(of: .payment).find()).map {
                ("\($0["sagaId"]?.stringValue ?? "") \($0["_id"]?.stringValue ?? "")", $0["traceId"])
            })
        #expect(traces.count == 4)
        for (doc, trace) in traces {
            #expect(trace == (doc.hasPrefix("pay-k") ? .string(Self.kept.traceId.hex) : nil), "\(doc)")
        }
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-f"]))
        #expect(record["traceId"] == .string(Self.failed.traceId.hex))
        let emitted = try await s.readAll(s.compensationTopic)
        let header = try #require(emitted.first?.header("traceparent").flatMap { TraceParent($0.stringValue) })
        #expect(try header.traceId == Self.failed.traceId && CloudEvent.decode(emitted[0].value).traceParent == header)

        let db = ["--database", s.database, "--mongo-uri", mongoURI]
        let (_, text) = await archiverCLI(["history", "saga", "pay-f"] + db)
        #expect(text.contains("trace: \(Self.failed.traceId.hex)\n"), "\(text)")
        let (_, untraced) = await archiverCLI(["history", "saga", "pay-n"] + db)
        #expect(untraced.contains("trace: none"), "\(untraced)")
        await s.drop()
    }

    @Test func aReplayedDeadLetterKeepsItsTraceId() async throws {
        let s = try await Scenario()
        let replay = ReplayTests()
        try await s.send([replay.letter(s, Make.deducted(s, saga: "pay-r", trace: Self.kept), kind: "schema")])
        let summary = try await replay.replayer(s, group: "replay-\(s.id)").run(filter: .init(), dryRun: false, idleMs: 4_000)
        #expect(summary.archived == 1)
        #expect(try await s.store.collection(of: .balance).findOne(["sagaId": "pay-r"])?["traceId"] == .string(Self.kept.traceId.hex))
        await s.drop()
    }
}
