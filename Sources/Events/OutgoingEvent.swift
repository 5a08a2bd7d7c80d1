/// A CloudEvent to publish (structured mode, JSON).
public struct OutgoingEvent: Sendable {
    public var id: String
    public var source: String
    public var type: String
    public var subject: String?
    public var timeMs: Int64
    public var sagaId: String?
    public var data: JSONObject
    public var traceParent: TraceParent?

    public init(
        id: String, source: String, type: String, subject: String? = nil, timeMs: Int64,
        sagaId: String?, data: JSONObject, traceParent: TraceParent? = nil
    ) {
        self.id = id
        self.source = source
        self.type = type
        self.subject = subject
        self.timeMs = timeMs
        self.sagaId = sagaId
        self.data = data
        self.traceParent = traceParent
    }

    public var json: String {
        var envelope: JSONObject = [
            "specversion": .string("1.0"), "id": .string(id), "source": .string(source), "type": .string(type),
        ]
        if let subject { envelope["subject"] = .string(subject) }
        envelope["time"] = .string(Timestamp.format(timeMs))
        envelope["datacontenttype"] = .string("application/json")
        if let sagaId { envelope["sagaid"] = .string(sagaId) }
        if let traceParent { envelope["traceparent"] = .string(traceParent.text) }
        envelope["data"] = .object(data)
        return JSONValue.object(envelope).serialized
    }

    public var bytes: [UInt8] { Array(json.utf8) }
}
