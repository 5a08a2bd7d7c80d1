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
    /// Set when `type` is one of the schema's, so no string comparison decides it again: its
    /// index in the schema's types, what it means, and the fields `data` was read for.
    public var typeIndex: Int?
    var role: EventSchema.Role?
    var fields: [DataField] = []
    /// The `traceparent` attribute; nil when absent or malformed (contract §2: ignored).
    public var traceParent: TraceParent?

    /// Decodes a Kafka message value. Never traps on bad input: every failure is a thrown
    /// `EventDecodingError` saying what is wrong.
    /// - Parameter schema: the types the archiver acts on; `data` is read only for those.
    public static func decode(_ bytes: [UInt8], schema: EventSchema = .none) throws(EventDecodingError) -> CloudEvent {
        try bytes.withUnsafeBytes { raw in Result { () throws(EventDecodingError) in try decode(raw, schema: schema) } }.get()
    }

    public static func decode(_ raw: UnsafeRawBufferPointer, schema: EventSchema = .none) throws(EventDecodingError) -> CloudEvent {
        var envelope = Envelope(schema: schema)
        var notAnObject: String?
        do throws(JSONReader.Failure) {
            var r = JSONReader(raw)
            if try r.peek() == 0x7B {
                try r.object { (r: inout JSONReader, key) throws(JSONReader.Failure) in try envelope.read(key, &r) }
                // `data` came before `type`: read now that its fields are known.
                if let start = envelope.dataStart, envelope.typeIndex != nil {
                    var again = JSONReader(raw)
                    again.i = start
                    try envelope.readData(&again)
                }
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

/// The `data` fields of a known type, each absent when missing or null.
public struct EventData: Sendable {
    public var values = DataValues()
    /// Fields present with the wrong JSON type, and what they held; reported only when needed.
    var wrongTypes: [String: String] = [:]
    var isObject = true

    mutating func read(_ key: JSONReader.Key, _ r: inout JSONReader, fields: [DataField]) throws(JSONReader.Failure) {
        for field in fields where key.matches(field.name) {
            switch field.type {
            case .integer: if let v = try integer(field.name, &r) { values.set(field, integer: v) }
            case .text: if let v = try text(field.name, &r) { values.set(field, text: v) }
            }
            return
        }
        try r.skipValue()
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

    /// A schema error naming the first of `fields` that is required but missing, or present with
    /// the wrong type.
    func check(_ fields: [DataField]) throws(EventDecodingError) {
        for field in fields where !values.has(field) {
            if field.isRequired { throw .schema(problem(field.name)) }
            if let problem = wrongTypes[field.name] { throw .schema("data.\(field.name) \(problem)") }
        }
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
    let schema: EventSchema
    var typeIndex: Int?
    var traceParent: TraceParent?
    var data = EventData()
    /// Where `data` starts, when it came before `type` and so could not be read yet.
    var dataStart: Int?
    var problems: [String] = []

    init(schema: EventSchema) { self.schema = schema }

    /// The services' `source`s, read as these very strings: "/commerce/payment" and
    /// "/commerce/product" are longer than the 15 bytes a String holds inline, so reading them
    /// afresh would cost an allocation per event.
    static let knownSources = ["/commerce/user", "/commerce/payment", "/commerce/order", "/commerce/product"]

    mutating func read(_ key: JSONReader.Key, _ r: inout JSONReader) throws(JSONReader.Failure) {
        if key.is("data") {
            let isObject = try r.peek() == 0x7B
            if type == nil && isObject { dataStart = r.i }
            try readData(&r)
        } else if key.is("id") {
            id = try attribute("id", &r)
        } else if key.is("type") {
            guard try r.peek() == 0x22 else { type = try attribute("type", &r); return }
            let (value, index) = try r.string(interning: schema.types)
            type = value
            typeIndex = index
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

    /// Reads `data` for the fields of the type, or skips it while the type is not known.
    mutating func readData(_ r: inout JSONReader) throws(JSONReader.Failure) {
        guard try r.peek() == 0x7B else {
            data.isObject = try r.peek() == 0x6E
            return try r.skipValue()
        }
        guard let typeIndex else { return try r.skipValue() }
        let fields = schema.fields[typeIndex]
        try r.object { (r: inout JSONReader, k) throws(JSONReader.Failure) in try data.read(k, &r, fields: fields) }
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
            id: id, source: source, type: type, subject: subject, timeMs: time, sagaId: sagaId, data: data, typeIndex: typeIndex,
            role: typeIndex.map { schema.roles[$0] }, fields: typeIndex.map { schema.fields[$0] } ?? [], traceParent: traceParent)
    }
}
