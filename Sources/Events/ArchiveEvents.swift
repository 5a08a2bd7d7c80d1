/// An event the archiver keeps as history, of any kind: the envelope's part, and the kind's
/// `data` fields in fixed slots. One struct for every kind, so no event is boxed.
public struct HistoryEvent: Sendable, Equatable {
    public var eventId: String
    /// The CloudEvent `type`, interned: compare it with the kind's types at no cost.
    public var type: String
    /// Its type's index in the schema (the metrics' tally).
    public var typeIndex: Int
    /// Its kind's index in the table it was decoded with.
    public var kind: Int
    public var sagaId: String
    public var occurredAtMs: Int64
    /// Its trace, when the event carried one: the document's `traceId`.
    public var traceParent: TraceParent?
    public var data: DataValues

    public init(
        eventId: String, type: String, typeIndex: Int, kind: Int, sagaId: String, occurredAtMs: Int64, traceParent: TraceParent? = nil,
        data: DataValues = DataValues()
    ) {
        self.eventId = eventId
        self.type = type
        self.typeIndex = typeIndex
        self.kind = kind
        self.sagaId = sagaId
        self.occurredAtMs = occurredAtMs
        self.traceParent = traceParent
        self.data = data
    }

    /// A required integer field (checked on decoding); an optional one is `data.integer(field)`.
    public func integer(_ field: DataField) -> Int64 { data.integer(field) ?? 0 }
    /// A required text field (checked on decoding); an optional one is `data.text(field)`.
    public func text(_ field: DataField) -> String { data.text(field) ?? "" }
}

/// A saga failure (contract §4): the saga must be compensated.
public struct SagaFailure: Sendable, Equatable {
    /// The reason goes into the compensation record and event: kept to this many UTF-8 bytes.
    public static let maxReasonBytes = 1_000

    static func bounded(_ reason: String) -> String { Text.utf8Prefix(reason, maxBytes: maxReasonBytes) }

    public var eventId: String
    public var type: String
    public var sagaId: String
    public var reason: String
    /// Its trace, when the event carried one: the compensation record's `traceId`, and the
    /// parent of the `archive.history.deleted` event.
    public var traceParent: TraceParent? = nil
}

/// What the archiver does with an event.
public enum ArchiveEvent: Sendable, Equatable {
    case history(HistoryEvent)
    case sagaFailed(SagaFailure)

    public var sagaId: String {
        switch self {
        case .history(let e): e.sagaId
        case .sagaFailed(let f): f.sagaId
        }
    }

    /// The CloudEvent `type` this came from.
    public var type: String {
        switch self {
        case .history(let e): e.type
        case .sagaFailed(let f): f.type
        }
    }

    public var eventId: String {
        switch self {
        case .history(let e): e.eventId
        case .sagaFailed(let f): f.eventId
        }
    }
}

extension CloudEvent {
    /// The archiver's reading of this event: nil when its type is none of the schema's it was
    /// decoded with, a schema error when it is but a required field is missing or mistyped.
    /// - Parameter fallbackTimeMs: the Kafka timestamp, used when the event has no `time`.
    public func archiveEvent(fallbackTimeMs: Int64?) throws(EventDecodingError) -> ArchiveEvent? {
        guard let role, let typeIndex else { return nil }
        try data.check(fields)
        switch role {
        case .history(let kind):
            return .history(
                HistoryEvent(
                    eventId: id, type: type, typeIndex: typeIndex, kind: kind, sagaId: try requiredSaga(),
                    occurredAtMs: try occurredAt(fallbackTimeMs), traceParent: traceParent, data: data.values))
        case .failure:
            return .sagaFailed(
                SagaFailure(
                    eventId: id, type: type, sagaId: try requiredSaga(),
                    reason: SagaFailure.bounded(data.values.text(EventSchema.reason) ?? ""), traceParent: traceParent))
        }
    }

    private func requiredSaga() throws(EventDecodingError) -> String {
        guard let sagaId, !sagaId.isEmpty else { throw .schema("sagaid is missing or empty") }
        return sagaId
    }

    private func occurredAt(_ fallback: Int64?) throws(EventDecodingError) -> Int64 {
        guard let ms = timeMs ?? fallback else { throw .schema("time is missing and the message has no timestamp") }
        return ms
    }
}
