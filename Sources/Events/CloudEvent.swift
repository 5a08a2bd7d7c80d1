/// Why an event could not be read. `kind` is the dead-letter `x-error-kind`.
public struct EventDecodingError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        /// Not JSON (or not UTF-8).
        case decode
        /// JSON, but not a CloudEvent, or missing or wrongly typed fields.
        case schema
    }
    public var kind: Kind
    public var message: String
    public var description: String { "\(kind.rawValue): \(message)" }

    static func schema(_ message: String) -> EventDecodingError { EventDecodingError(kind: .schema, message: message) }
}

/// A received CloudEvent (structured mode, JSON): the envelope, and those `data` fields the
/// archiver reads. Unknown attributes and data fields are skipped, as the contract says.
public struct CloudEvent: Sendable {
    public var id: String
    public var source: String
    public var type: String
    public var subject: String?
    /// `time` in milliseconds since the epoch; nil when absent.
    public var timeMs: Int64?
    public var sagaId: String?
    public var data: EventData
    /// Set when `type` is one the archiver acts on, so no string comparison decides it again.
    public var archiveKind: ArchiveKind?
    /// The `traceparent` attribute; nil when absent or malformed (contract §2: ignored).
    public var traceParent: TraceParent?

    /// Decodes a Kafka message value. Never traps on bad input: every failure is a thrown
    /// `EventDecodingError` saying what is wrong.
    public static func decode(_ bytes: [UInt8]) throws(EventDecodingError) -> CloudEvent {
        try bytes.withUnsafeBytes { raw in Result { () throws(EventDecodingError) in try decode(raw) } }.get()
    }

    public static func decode(_ raw: UnsafeRawBufferPointer) throws(EventDecodingError) -> CloudEvent {
        var envelope = Envelope()
        var notAnObject: String?
        do throws(JSONReader.Failure) {
            var r = JSONReader(raw)
            if try r.peek() == 0x7B {
                try r.object { (r: inout JSONReader, key) throws(JSONReader.Failure) in try envelope.read(key, &r) }
            } else {
                notAnObject = try r.kindOfNext()
                try r.skipValue()
            }
            try r.expectEnd()
        } catch {
            throw EventDecodingError(kind: .decode, message: "not JSON: \(error.message)")
        }
        if let notAnObject { throw .schema("a CloudEvent is a JSON object, got \(notAnObject)") }
        return try envelope.validated()
    }
}

/// The `data` fields the archiver and the services read; each nil when absent or null.
public struct EventData: Sendable {
    public var userId: Int64?
    public var amount: Int64?
    public var balanceBefore: Int64?
    public var balanceAfter: Int64?
    public var orderId: Int64?
    public var paymentId: Int64?
    public var status: String?
    public var reason: String?
    /// Fields present with the wrong JSON type, and what they held; reported only when needed.
    var wrongTypes: [String: String] = [:]
    var isObject = true

    mutating func read(_ key: JSONReader.Key, _ r: inout JSONReader) throws(JSONReader.Failure) {
        if key.is("userId") {
            userId = try integer("userId", &r)
        } else if key.is("amount") {
            amount = try integer("amount", &r)
        } else if key.is("balanceBefore") {
            balanceBefore = try integer("balanceBefore", &r)
        } else if key.is("balanceAfter") {
            balanceAfter = try integer("balanceAfter", &r)
        } else if key.is("orderId") {
            orderId = try integer("orderId", &r)
        } else if key.is("paymentId") {
            paymentId = try integer("paymentId", &r)
        } else if key.is("status") {
            status = try text("status", &r)
        } else if key.is("reason") {
            reason = try text("reason", &r)
        } else {
            try r.skipValue()
        }
    }

    private mutating func integer(_ name: String, _ r: inout JSONReader) throws(JSONReader.Failure) -> Int64? {
        switch try r.peek() {
        case 0x6E: try r.literal("null"); return nil
        case 0x2D, 48...57:
            switch try r.number() {
            case .integer(let v): return v
            case .other(let text): wrongTypes[name] = "must be an integer, got \(text)"; return nil
            }
        default:
            wrongTypes[name] = "must be an integer, got \(try r.kindOfNext())"
            try r.skipValue()
            return nil
        }
    }

    private mutating func text(_ name: String, _ r: inout JSONReader) throws(JSONReader.Failure) -> String? {
        switch try r.peek() {
        case 0x6E: try r.literal("null"); return nil
        case 0x22: return try r.string()
        default:
            wrongTypes[name] = "must be a string, got \(try r.kindOfNext())"
            try r.skipValue()
            return nil
        }
    }

    /// The value of a required integer field, or a schema error naming it.
    public func require(_ value: Int64?, _ name: String) throws(EventDecodingError) -> Int64 {
        if let value { return value }
        throw .schema(problem(name))
    }

    public func require(_ value: String?, _ name: String) throws(EventDecodingError) -> String {
        if let value { return value }
        throw .schema(problem(name))
    }

    private func problem(_ name: String) -> String {
        if !isObject { return "data must be a JSON object" }
        return "data.\(name) " + (wrongTypes[name] ?? "is missing")
    }
}

/// Envelope attributes as they are read, checked once the object is complete.
private struct Envelope {
    var specversion: String?
    var id: String?
    var source: String?
    var type: String?
    var subject: String?
    var time: Int64?
    var sagaId: String?
    var archiveKind: ArchiveKind?
    var traceParent: TraceParent?
    var data = EventData()
    var problems: [String] = []

    /// The services' `source`s, read as these very strings: "/commerce/payment" and
    /// "/commerce/product" are longer than the 15 bytes a String holds inline, so reading them
    /// afresh would cost an allocation per event.
    static let knownSources = ["/commerce/user", "/commerce/payment", "/commerce/order", "/commerce/product"]

    mutating func read(_ key: JSONReader.Key, _ r: inout JSONReader) throws(JSONReader.Failure) {
        if key.is("data") {
            if try r.peek() == 0x7B {
                try r.object { (r: inout JSONReader, k) throws(JSONReader.Failure) in try data.read(k, &r) }
            } else {
                data.isObject = try r.peek() == 0x6E
                try r.skipValue()
            }
        } else if key.is("id") {
            id = try attribute("id", &r)
        } else if key.is("type") {
            guard try r.peek() == 0x22 else { type = try attribute("type", &r); return }
            let (value, index) = try r.string(interning: ArchiveKind.types)
            type = value
            archiveKind = index.map { ArchiveKind.allCases[$0] }
        } else if key.is("source") {
            guard try r.peek() == 0x22 else { source = try attribute("source", &r); return }
            source = try r.string(interning: Self.knownSources).value
        } else if key.is("specversion") {
            specversion = try attribute("specversion", &r)
        } else if key.is("sagaid") {
            sagaId = try attribute("sagaid", &r)
        } else if key.is("subject") {
            subject = try attribute("subject", &r)
        } else if key.is("traceparent") {
            traceParent = try r.traceParent()
        } else if key.is("time") {
            guard try r.peek() == 0x22 else { problems.append("time must be a string"); try r.skipValue(); return }
            if let raw = try r.rawString(), let ms = Timestamp.parse(raw) { time = ms } else { problems.append("time is not an RFC 3339 timestamp") }
        } else {
            try r.skipValue()
        }
    }

    private mutating func attribute(_ name: String, _ r: inout JSONReader) throws(JSONReader.Failure) -> String? {
        guard try r.peek() == 0x22 else {
            problems.append("\(name) must be a string, got \(try r.kindOfNext())")
            try r.skipValue()
            return nil
        }
        return try r.string()
    }

    /// Ids travel into keys, documents, event ids and lists of ids: one of unbounded length would
    /// make every record built from it too large to write or publish.
    static let maxIdBytes = 256

    func validated() throws(EventDecodingError) -> CloudEvent {
        if let first = problems.first { throw .schema(first) }
        guard let specversion else { throw .schema("specversion is missing: not a CloudEvent") }
        guard specversion == "1.0" else { throw .schema("specversion \(specversion.prefix(16)) is not supported (1.0 is)") }
        guard let id, !id.isEmpty else { throw .schema("id is missing or empty") }
        guard id.utf8.count <= Self.maxIdBytes else { throw .schema("id is longer than \(Self.maxIdBytes) bytes") }
        if let sagaId, sagaId.utf8.count > Self.maxIdBytes { throw .schema("sagaid is longer than \(Self.maxIdBytes) bytes") }
        guard let source, !source.isEmpty else { throw .schema("source is missing or empty") }
        guard let type, !type.isEmpty else { throw .schema("type is missing or empty") }
        return CloudEvent(
            id: id, source: source, type: type, subject: subject, timeMs: time, sagaId: sagaId, data: data, archiveKind: archiveKind,
            traceParent: traceParent)
    }
}
