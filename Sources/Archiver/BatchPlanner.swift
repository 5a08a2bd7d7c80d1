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

    static func decode(_ message: KafkaMessage, kinds: HistoryKinds = .builtIn) -> Inbound {
        do {
            let event = try CloudEvent.decode(message.value, schema: kinds.schema)
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
    var event: HistoryEvent
    var inboundIndex: Int
    /// The `source` field: where the event was first consumed.
    var source: Origin
    var eventId: String { event.eventId }
    var sagaId: String { event.sagaId }
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
    /// History events of the saga that came earlier in this batch, per kind (by index in the
    /// table): never written, listed as deleted.
    var prior: [[String]]
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
    var kinds: HistoryKinds
    /// Per kind, by index in the table.
    var writes: [[HistoryWrite]]
    var newCompensations: [NewCompensation] = []
    /// A failure event redelivered after its compensation was recorded: redo the deletes and
    /// the event (both idempotent) in case the first attempt died half-way.
    var repeatedCompensations: [RepeatedCompensation] = []
    /// A second, different failure event for an already compensated saga: no effect.
    var duplicateFailures: [SagaFailure] = []
    var suppressions: [Suppression] = []
    var ignored: [String] = []
    var deadLetters: [(inboundIndex: Int, kind: String, message: String)] = []

    init(kinds: HistoryKinds) {
        self.kinds = kinds
        writes = Array(repeating: [], count: kinds.all.count)
    }

    func writes(of kind: HistoryKind) -> [HistoryWrite] { kinds.index(of: kind).map { writes[$0] } ?? [] }
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
    static func plan(_ batch: [Inbound], known: [String: CompensationRecord], kinds: HistoryKinds = .builtIn) -> BatchPlan {
        var plan = BatchPlan(kinds: kinds)
        var compensatedHere = Set<String>()
        var repeated = Set<String>()
        // Sized once: grown by doubling, the writes of a 1,000-event batch would be copied about ten times.
        var counts = [Int](repeating: 0, count: kinds.all.count)
        for index in batch.indices {
            if case .archive(.history(let e)) = batch[index].outcome { counts[e.kind] += 1 }
        }
        for kind in counts.indices { plan.writes[kind].reserveCapacity(counts[kind]) }
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
                case .history(let e):
                    if compensated {
                        plan.suppressions.append(Suppression(sagaId: saga, eventId: e.eventId, kind: kinds.all[e.kind]))
                        continue
                    }
                    plan.writes[e.kind].append(HistoryWrite(event: e, inboundIndex: index, source: batch[index].origin))
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
                                failure: failure, prior: plan.writes.map { $0.filter { $0.sagaId == saga }.map(\.eventId) }, inboundIndex: index))
                    }
                }
            }
        }
        // Earlier history of a saga compensated in this same batch is never written.
        if !compensatedHere.isEmpty {
            for kind in plan.writes.indices { plan.writes[kind].removeAll { compensatedHere.contains($0.sagaId) } }
        }
        return plan
    }
}
