import Kafka
import Testing

@testable import Archiver
@testable import Events

/// Pure planning logic: the order rules without any server.
@Suite("Batch planning")
struct BatchPlannerTests {
    func inbound(_ e: ArchiveEvent, offset: Int64) -> Inbound {
        Inbound(message: KafkaMessage(topic: "t", partition: 0, offset: offset, key: nil, value: []), outcome: .archive(e))
    }
    func deduct(_ id: String, saga: String) -> ArchiveEvent {
        var data = DataValues()
        for (field, value) in [
            (BalanceHistory.userId, 1), (BalanceHistory.amount, 1), (BalanceHistory.balanceBefore, 2), (BalanceHistory.balanceAfter, 1),
        ] {
            data.set(field, integer: Int64(value))
        }
        return .history(
            HistoryEvent(eventId: id, type: EventType.balanceDeducted, typeIndex: 1, kind: 0, sagaId: saga, occurredAtMs: 0, data: data))
    }
    func failed(_ id: String, saga: String) -> ArchiveEvent {
        .sagaFailed(SagaFailure(eventId: id, type: EventType.paymentFailed, sagaId: saga, reason: "r"))
    }

    @Test func historyBeforeAFailureInTheBatchIsNotWrittenButListedAsDeleted() {
        let plan = BatchPlanner.plan(
            [
                inbound(deduct("a", saga: "s"), offset: 0), inbound(failed("f", saga: "s"), offset: 1),
                inbound(deduct("b", saga: "s"), offset: 2), inbound(deduct("c", saga: "t"), offset: 3),
            ],
            known: [:])
        #expect(plan.writes(of: .balance).map(\.eventId) == ["c"])
        #expect(plan.newCompensations.map { $0.prior[0] } == [["a"]])
        #expect(plan.suppressions.map(\.eventId) == ["b"])
    }

    @Test func aKnownCompensationSuppressesAndARepeatedFailureIsRedoneOnce() {
        let known = ["s": CompensationRecord(sagaId: "s", failedEvent: "f", reason: "r", deleted: [[], []])]
        let plan = BatchPlanner.plan(
            [
                inbound(deduct("a", saga: "s"), offset: 0), inbound(failed("f", saga: "s"), offset: 1),
                inbound(failed("f", saga: "s"), offset: 2), inbound(failed("g", saga: "s"), offset: 3),
            ],
            known: known)
        #expect(plan.writes(of: .balance).isEmpty && plan.newCompensations.isEmpty)
        #expect(plan.suppressions.map(\.eventId) == ["a"])
        #expect(plan.repeatedCompensations.map(\.sagaId) == ["s"])
        #expect(plan.duplicateFailures.map(\.eventId) == ["g"])
    }

    @Test func twoFailuresOfOneSagaInOneBatchCompensateOnce() {
        let plan = BatchPlanner.plan([inbound(failed("f", saga: "s"), offset: 0), inbound(failed("g", saga: "s"), offset: 1)], known: [:])
        #expect(plan.newCompensations.count == 1 && plan.duplicateFailures.map(\.eventId) == ["g"])
    }
}
