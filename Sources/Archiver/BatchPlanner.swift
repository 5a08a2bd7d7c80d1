import Events
import Kafka
import Mongo

/// One consumed message and what decoding made of it.
struct Inbound: Sendable {
    enum Outcome: Sendable {
        case archive(ArchiveEvent)
        case ignore(type: String)
        case deadLetter(kind: String, message: String)
    }
    var message: KafkaMessage
    var outcome: Outcome

    static func decode(_ message: KafkaMessage) -> Inbound {
        do {
            let event = try CloudEvent.decode(message.value)
            guard let archive = try event.archiveEvent(fallbackTimeMs: message.timestampMs) else {
                return Inbound(message: message, outcome: .ignore(type: event.type))
            }
            return Inbound(message: message, outcome: .archive(archive))
        } catch {
            return Inbound(message: message, outcome: .deadLetter(kind: error.kind.rawValue, message: error.message))
        }
    }

    var origin: Origin { Origin(topic: message.topic, partition: message.partition, offset: message.offset) }
}

/// A history write and the message it came from (by index in the batch), so a per-item
/// rejection can be traced back and dead-lettered.
struct HistoryWrite: Sendable {
    enum Event: Sendable {
        case balance(BalanceChange)
        case payment(PaymentCompletion)
    }
    var eventId: String
    var sagaId: String
    var inboundIndex: Int
    var event: Event
    /// The `source` field: where the event was first consumed.
    var source: Origin
}

/// Which history collection an event belongs in.
public enum HistoryKind: Sendable, Equatable, CaseIterable {
    case balance, payment
}

/// A history event of a compensated saga: never kept, listed in the record's `suppressed`.
struct Suppression: Sendable, Equatable {
    var sagaId: String
    var eventId: String
    var kind: HistoryKind
}

/// A saga failure seen for the first time.
struct NewCompensation: Sendable, Equatable {
    var failure: SagaFailure
    /// History events of the saga that came earlier in this batch: never written, listed as deleted.
    var priorBalance: [String]
    var priorPayment: [String]
    /// The failure event's message, by index in the batch.
    var inboundIndex: Int
}

/// A failure event seen again after its compensation was recorded.
struct RepeatedCompensation: Sendable {
    var record: CompensationRecord
    var failure: SagaFailure
    /// The failure event's message, by index in the batch.
    var inboundIndex: Int
    var sagaId: String { record.sagaId }
}

/// What one batch must do, worked out before any write so that applying it in bulk gives
/// the same result as applying each partition's events one by one, in order.
struct BatchPlan: Sendable {
    var balanceWrites: [HistoryWrite] = []
    var paymentWrites: [HistoryWrite] = []
    var newCompensations: [NewCompensation] = []
    /// A failure event redelivered after its compensation was recorded: redo the deletes and
    /// the event (both idempotent) in case the first attempt died half-way.
    var repeatedCompensations: [RepeatedCompensation] = []
    /// A second, different failure event for an already compensated saga: no effect.
    var duplicateFailures: [SagaFailure] = []
    var suppressions: [Suppression] = []
    var ignored: [String] = []
    var deadLetters: [(inboundIndex: Int, kind: String, message: String)] = []

    var sagasWritten: Set<String> { Set(balanceWrites.map(\.sagaId)).union(paymentWrites.map(\.sagaId)) }
}

enum BatchPlanner {
    /// Sagas this batch needs compensation records for.
    /// - Parameter written: history already written whose sagas are re-checked by the same lookup.
    static func sagas(in batch: [Inbound], andOf written: [HistoryWrite] = []) -> Set<String> {
        // Sized once (a grown set rehashes every saga id), read by index (a copy of an `Inbound` retains its buffers).
        var sagas = Set<String>(minimumCapacity: batch.count + written.count)
        for index in batch.indices { if case .archive(let e) = batch[index].outcome { sagas.insert(e.sagaId) } }
        for w in written { sagas.insert(w.sagaId) }
        return sagas
    }

    /// - Parameter known: compensation records already in MongoDB for the batch's sagas.
    static func plan(_ batch: [Inbound], known: [String: CompensationRecord]) -> BatchPlan {
        var plan = BatchPlan()
        var compensatedHere = Set<String>()
        var repeated = Set<String>()
        // Sized once: grown by doubling, the writes of a 1,000-event batch would be copied about ten times.
        var balanceCount = 0, paymentCount = 0
        for index in batch.indices {
            switch batch[index].outcome {
            case .archive(.balance): balanceCount += 1
            case .archive(.payment): paymentCount += 1
            default: break
            }
        }
        plan.balanceWrites.reserveCapacity(balanceCount)
        plan.paymentWrites.reserveCapacity(paymentCount)
        // The common batch knows no compensation: then nothing per event is looked up.
        func isCompensated(_ saga: String) -> Bool {
            (!known.isEmpty && known[saga] != nil) || (!compensatedHere.isEmpty && compensatedHere.contains(saga))
        }

        // By index: a copy of each `Inbound` would retain and release its message's buffers.
        for index in batch.indices {
            switch batch[index].outcome {
            case .ignore(let type):
                plan.ignored.append(type)
            case .deadLetter(let kind, let message):
                plan.deadLetters.append((index, kind, message))
            case .archive(let event):
                let saga = event.sagaId
                let compensated = isCompensated(saga)
                switch event {
                case .balance(let b):
                    if compensated { plan.suppressions.append(Suppression(sagaId: saga, eventId: b.eventId, kind: .balance)); continue }
                    plan.balanceWrites.append(
                        HistoryWrite(eventId: b.eventId, sagaId: saga, inboundIndex: index, event: .balance(b), source: batch[index].origin))
                case .payment(let p):
                    if compensated { plan.suppressions.append(Suppression(sagaId: saga, eventId: p.eventId, kind: .payment)); continue }
                    plan.paymentWrites.append(
                        HistoryWrite(eventId: p.eventId, sagaId: saga, inboundIndex: index, event: .payment(p), source: batch[index].origin))
                case .sagaFailed(let failure):
                    if let record = known[saga] {
                        if record.failedEvent == failure.eventId {
                            if repeated.insert(saga).inserted {
                                plan.repeatedCompensations.append(RepeatedCompensation(record: record, failure: failure, inboundIndex: index))
                            }
                        } else {
                            plan.duplicateFailures.append(failure)
                        }
                    } else if compensatedHere.contains(saga) {
                        plan.duplicateFailures.append(failure)
                    } else {
                        compensatedHere.insert(saga)
                        // Failures are rare: finding the saga's earlier history by a scan costs less
                        // than indexing every event's saga on the way.
                        plan.newCompensations.append(
                            NewCompensation(
                                failure: failure,
                                priorBalance: plan.balanceWrites.filter { $0.sagaId == saga }.map(\.eventId),
                                priorPayment: plan.paymentWrites.filter { $0.sagaId == saga }.map(\.eventId), inboundIndex: index))
                    }
                }
            }
        }
        // Earlier history of a saga compensated in this same batch is never written.
        if !compensatedHere.isEmpty {
            plan.balanceWrites.removeAll { compensatedHere.contains($0.sagaId) }
            plan.paymentWrites.removeAll { compensatedHere.contains($0.sagaId) }
        }
        return plan
    }
}
