import Events
import Foundation
import Kafka
import Logging
import Mongo
import TestSupport
import Testing

@testable import Archiver

@Suite("archiver run: compensation (contract §5 rules)")
struct CompensationTests {
    @Test func aFailureAfterTheHistoryDeletesItRecordsItAndEmitsOneEvent() async throws {
        let s = try await Scenario()
        let deduct = Make.id(), payment = Make.id(), other = Make.id(), failure = Make.id()
        try await s.send([
            Make.deducted(s, saga: "pay-7", id: deduct), Make.paymentCompleted(s, saga: "pay-7", id: payment),
            Make.deducted(s, saga: "pay-8", id: other),
        ])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.archived == 3 })
        try await s.send([Make.statusChangeFailed(s, saga: "pay-7", id: failure)])
        #expect(try await eventually { archiver.totals.compensated == 1 })
        // A second failure of the same saga (the payment failing too) has no second effect.
        try await s.send([Make.paymentFailed(s, saga: "pay-7")])
        #expect(try await eventually { archiver.totals.duplicateFailures == 1 })
        archiver.stop()
        try await task.value

        #expect(try await s.store.collection(of: .balance).find().compactMap { $0["_id"]?.stringValue } == [other])
        #expect(try await s.count(s.store.collection(of: .payment)) == 0)
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-7"]))
        #expect(record.keys == ["_id", "reason", "failedEvent", "failedType", "deleted", "suppressed", "compensatedAt"])
        #expect(record["reason"] == "order cancelled" && record["failedEvent"] == .string(failure))
        #expect(record["failedType"] == .string(EventType.orderStatusChangeFailed))
        #expect(record["deleted"]?.documentValue?["balance_history"] == .array([.string(deduct)]))
        #expect(record["deleted"]?.documentValue?["payment_history"] == .array([.string(payment)]))
        #expect(record["suppressed"] == .array([]))

        let emitted = try await s.readAll(s.compensationTopic)
        #expect(emitted.count == 1)
        let event = try JSONValue.parse(emitted[0].value)
        #expect(event["type"] == .string(EventType.historyDeleted) && event["sagaid"] == "pay-7")
        #expect(emitted[0].keyString == "pay-7")
        #expect(event["data"]?["sagaId"] == "pay-7" && event["data"]?["reason"] == "order cancelled")
        #expect(event["data"]?["deleted"]?["balance_history"] == .array([.string(deduct)]))
        await s.drop()
    }

    @Test func historyArrivingAfterTheFailureIsSuppressed() async throws {
        let s = try await Scenario()
        try await s.send([Make.paymentFailed(s, saga: "pay-9")])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.compensated == 1 })
        let late = Make.id(), latePayment = Make.id()
        try await s.send([Make.deducted(s, saga: "pay-9", id: late), Make.paymentCompleted(s, saga: "pay-9", id: latePayment)])
        #expect(try await eventually { archiver.totals.suppressed == 2 })
        archiver.stop()
        try await task.value
        #expect(try await s.count(s.store.collection(of: .balance)) == 0)
        #expect(try await s.count(s.store.collection(of: .payment)) == 0)
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-9"]))
        #expect(Set(record["suppressed"]?.arrayValue?.compactMap(\.stringValue) ?? []) == [late, latePayment])
        #expect(record["deleted"]?.documentValue?["balance_history"] == .array([]))
        await s.drop()
    }

    @Test func historyAndFailureOfOneSagaInOneBatchLeaveNoHistory() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let before = Make.id(), payment = Make.id(), after = Make.id(), unrelated = Make.id()
        // Exactly one batch, in this order, straight into the executor `archiver run` uses.
        let batch = Scenario.batch([
            Make.deducted(s, saga: "pay-5", id: before), Make.paymentCompleted(s, saga: "pay-5", id: payment),
            Make.paymentFailed(s, saga: "pay-5"), Make.deducted(s, saga: "pay-5", id: after),
            Make.deducted(s, saga: "pay-6", id: unrelated),
        ])
        let outcome = try await s.executor().execute(batch)
        // The saga's history was never written: only the unrelated event counts as archived.
        #expect(outcome.archived == 1 && outcome.compensated == 1 && outcome.suppressed == 1, "\(outcome)")
        #expect(try await s.store.collection(of: .balance).find().compactMap { $0["_id"]?.stringValue } == [unrelated])
        #expect(try await s.count(s.store.collection(of: .payment)) == 0)
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-5"]))
        #expect(record["deleted"]?.documentValue?["balance_history"] == .array([.string(before)]))
        #expect(record["deleted"]?.documentValue?["payment_history"] == .array([.string(payment)]))
        #expect(record["suppressed"] == .array([.string(after)]))
        #expect(try await s.readAll(s.compensationTopic).count == 1)
        await s.drop()
    }

    @Test func aRedeliveredFailureFinishesACompensationThatDiedHalfWay() async throws {
        let s = try await Scenario()
        let failure = Make.id(), deduct = Make.id()
        // As if a previous run recorded the compensation and died before deleting and emitting.
        try await s.store.migrate()
        try await s.store.compensations.insertOne([
            "_id": "pay-4", "reason": "declined", "failedEvent": .string(failure),
            "failedType": .string(EventType.paymentFailed),
            "deleted": .document(["balance_history": .array([.string(deduct)]), "payment_history": .array([])]),
            "suppressed": .array([]), "compensatedAt": .datetime(1),
        ])
        try await s.store.collection(of: .balance).insertOne(["_id": .string(deduct), "sagaId": "pay-4"])
        try await s.send([Make.paymentFailed(s, saga: "pay-4", id: failure)])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { try await s.count(s.store.collection(of: .balance)) == 0 })
        archiver.stop()
        try await task.value
        let emitted = try await s.readAll(s.compensationTopic)
        #expect(emitted.count == 1)
        #expect(try JSONValue.parse(emitted[0].value)["data"]?["deleted"]?["balance_history"] == .array([.string(deduct)]))
        await s.drop()
    }

    @Test func aCompensationRacingAWrittenBatchIsFoundByTheNextBatchsLookup() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let raced = Make.id(), unrelated = Make.id()
        let executor = s.executor()
        let first = Scenario.batch([Make.deducted(s, saga: "pay-51", id: raced)])
        let written = try await executor.write(try await executor.plan(first).plan, to: first)
        #expect(try await s.count(s.store.collection(of: .balance)) == 1)
        // Another instance compensates the saga after this batch's lookup; its listing missed the write.
        try await s.store.compensations.insertOne([
            "_id": "pay-51", "reason": "other", "failedEvent": "f-theirs",
            "failedType": .string(EventType.orderStatusChangeFailed),
            "deleted": .document(["balance_history": .array([]), "payment_history": .array([])]),
            "suppressed": .array([]), "compensatedAt": .datetime(1),
        ])
        // The next batch's lookup is the first batch's re-check: one query for both.
        let second = Scenario.batch([Make.deducted(s, saga: "pay-52", id: unrelated)])
        let (plan, racedWrites) = try await executor.plan(second, recheck: written)
        #expect(racedWrites == [Suppression(sagaId: "pay-51", eventId: raced, kind: .balance)])
        #expect(plan.writes(of: .balance).map(\.eventId) == [unrelated])
        let outcome = try await executor.settle(written, raced: racedWrites)
        #expect(outcome.archived == 0 && outcome.suppressed == 1, "\(outcome)")
        #expect(try await s.count(s.store.collection(of: .balance)) == 0, "history written after its saga's compensation survived")
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-51"]))
        #expect(record["suppressed"] == .array([.string(raced)]))
        await s.drop()
    }

    /// Through `archiver run`: the re-check of a batch rides on the next batch's lookup when one is
    /// waiting, and runs on its own when none is; either way before the batch's offsets are committed.
    @Test(arguments: [false, true])
    func aCompensationRacingTheWritesOfArchiverRunIsTakenBackBeforeTheCommit(nextBatchWaiting: Bool) async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let raced = Make.id()
        // The next batch waiting, by construction: both events (one key, one partition) are on the
        // topic before the archiver starts, so the fetch that brings the first brings the second.
        try await s.send([Make.deducted(s, saga: "pay-61", id: raced)] + (nextBatchWaiting ? [Make.deducted(s, saga: "pay-62")] : []))
        var logger = Logger(label: "archiver-test")
        logger.logLevel = .warning
        let archiver = try await Archiver(configuration: s.configuration(batchSize: 1), logger: logger)
        archiver.faults.withLock {
            $0.beforeWritingHistory = { plan in
                guard plan.writes(of: .balance).contains(where: { $0.eventId == raced }) else { return }
                // Another instance compensates the saga after this batch's lookup: its listing misses the write to come.
                try await s.store.compensations.insertOne([
                    "_id": "pay-61", "reason": "other", "failedEvent": "f-theirs",
                    "failedType": .string(EventType.paymentFailed),
                    "deleted": .document(["balance_history": .array([]), "payment_history": .array([])]),
                    "suppressed": .array([]), "compensatedAt": .datetime(1),
                ])
            }
        }
        let task = Task { try await archiver.run() }
        #expect(try await eventually { archiver.totals.suppressed == 1 && archiver.totals.archived == (nextBatchWaiting ? 1 : 0) })
        archiver.stop()
        try await task.value
        #expect(
            try await s.store.collection(of: .balance).findOne(["_id": .string(raced)]) == nil,
            "history written after its saga's compensation survived")
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-61"]))
        #expect(record["suppressed"] == .array([.string(raced)]))
        #expect(try await s.committed(s.balanceTopic).values.reduce(0, +) == (nextBatchWaiting ? 2 : 1))
        await s.drop()
    }
}
