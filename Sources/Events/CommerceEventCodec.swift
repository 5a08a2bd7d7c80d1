/// The services' event wire format, by hand: Foundation's JSONEncoder and JSONDecoder were
/// about a tenth of the services' CPU per saga (every consumer decodes every event of its
/// topics). Same JSON as before: the envelope's members in declaration order, absent optionals
/// left out, `/` unescaped; decoding takes members in any order, skips unknown ones, and refuses
/// what the Codable decoding refused (a required member missing or of the wrong type, an integer
/// that is not one).
extension CommerceEvent {
    /// The event as compact JSON.
    public func encoded() throws -> [UInt8] {
        var w = JSONBytes()
        w.bytes.reserveCapacity(400)
        w.open()
        w.member("specversion", specversion)
        w.member("id", id)
        w.member("source", source)
        w.member("type", type)
        if let subject { w.member("subject", subject) }
        w.member("time", time)
        if let datacontenttype { w.member("datacontenttype", datacontenttype) }
        if let sagaid { w.member("sagaid", sagaid) }
        if let traceparent { w.member("traceparent", traceparent) }
        w.key("data")
        data.write(to: &w)
        w.close()
        return w.bytes
    }

    /// Decodes a Kafka message value; throws `EventDecodingError` saying what is wrong.
    public static func decode(_ bytes: [UInt8]) throws -> CommerceEvent {
        try bytes.withUnsafeBytes { raw in Result { () throws(EventDecodingError) in try decode(raw) } }.get()
    }

    public static func decode(_ raw: UnsafeRawBufferPointer) throws(EventDecodingError) -> CommerceEvent {
        var fields = Fields()
        guard !NULCheck.hasEscapedNUL(raw) else { throw EventDecodingError(kind: .decode, message: "a string holds U+0000") }
        do throws(JSONReader.Failure) {
            var r = JSONReader(raw)
            guard try r.peek() == 0x7B else { throw JSONReader.Failure(message: "an event is a JSON object, got \(try r.kindOfNext())") }
            try r.object { (r: inout JSONReader, key) throws(JSONReader.Failure) in try fields.read(key, &r) }
            try r.expectEnd()
        } catch {
            throw EventDecodingError(kind: .decode, message: error.message)
        }
        return try fields.event()
    }

    /// The members as they are read, checked once the object is complete.
    private struct Fields {
        var specversion, id, source, type, subject, time, datacontenttype, sagaid: String?
        var traceparent: TraceParent?
        var data: CommerceEventData?

        mutating func read(_ key: JSONReader.Key, _ r: inout JSONReader) throws(JSONReader.Failure) {
            if key.is("data") {
                data = try CommerceEventData.read(&r)
            } else if key.is("id") {
                id = try r.optionalString("id")
            } else if key.is("type") {
                type = try r.optionalString("type")
            } else if key.is("source") {
                source = try r.optionalString("source")
            } else if key.is("specversion") {
                specversion = try r.optionalString("specversion")
            } else if key.is("sagaid") {
                sagaid = try r.optionalString("sagaid")
            } else if key.is("subject") {
                subject = try r.optionalString("subject")
            } else if key.is("time") {
                time = try r.optionalString("time")
            } else if key.is("traceparent") {
                traceparent = try r.traceParent()
            } else if key.is("datacontenttype") {
                datacontenttype = try r.optionalString("datacontenttype")
            } else {
                try r.skipValue()
            }
        }

        func event() throws(EventDecodingError) -> CommerceEvent {
            func required(_ value: String?, _ name: String) throws(EventDecodingError) -> String {
                guard let value else { throw .schema("missing member '\(name)'") }
                return value
            }
            guard let data else { throw .schema("missing member 'data'") }
            var event = CommerceEvent(
                id: try required(id, "id"), source: try required(source, "source"), type: try required(type, "type"),
                subject: subject, timeMs: 0, sagaId: "", data: data)
            event.specversion = try required(specversion, "specversion")
            event.time = try required(time, "time")
            event.datacontenttype = datacontenttype
            event.sagaid = sagaid
            event.traceparent = traceparent?.text
            return event
        }
    }
}

extension CommerceEventData {
    func write(to w: inout JSONBytes) {
        w.open()
        if let userId { w.member("userId", userId) }
        if let orderId { w.member("orderId", orderId) }
        if let paymentId { w.member("paymentId", paymentId) }
        if let amount { w.member("amount", amount) }
        if let balanceBefore { w.member("balanceBefore", balanceBefore) }
        if let balanceAfter { w.member("balanceAfter", balanceAfter) }
        if let items {
            w.key("items")
            OrderItem.write(items, to: &w)
        }
        if let status { w.member("status", status) }
        if let reason { w.member("reason", reason) }
        w.close()
    }

    /// `data`: an object (null is as wrong as a missing member).
    static func read(_ r: inout JSONReader) throws(JSONReader.Failure) -> CommerceEventData {
        guard try r.peek() == 0x7B else { throw JSONReader.Failure(message: "data must be an object, got \(try r.kindOfNext())") }
        var d = CommerceEventData()
        try r.object { (r: inout JSONReader, key) throws(JSONReader.Failure) in
            if key.is("userId") {
                d.userId = try r.optionalInteger("userId")
            } else if key.is("orderId") {
                d.orderId = try r.optionalInteger("orderId")
            } else if key.is("paymentId") {
                d.paymentId = try r.optionalInteger("paymentId")
            } else if key.is("amount") {
                d.amount = try r.optionalInteger("amount")
            } else if key.is("balanceBefore") {
                d.balanceBefore = try r.optionalInteger("balanceBefore")
            } else if key.is("balanceAfter") {
                d.balanceAfter = try r.optionalInteger("balanceAfter")
            } else if key.is("items") {
                if try r.peek() == 0x6E { try r.literal("null") } else { d.items = try OrderItem.readList(&r) }
            } else if key.is("status") {
                d.status = try r.optionalString("status")
            } else if key.is("reason") {
                d.reason = try r.optionalString("reason")
            } else {
                try r.skipValue()
            }
        }
        return d
    }
}

extension OrderItem {
    /// `[{"productId":1,"quantity":2},...]`, as the services keep order lines in SQLite too.
    public static func encodeList(_ items: [OrderItem]) -> String {
        var w = JSONBytes()
        write(items, to: &w)
        return String(decoding: w.bytes, as: UTF8.self)
    }

    public static func decodeList(_ text: String) throws -> [OrderItem] {
        var text = text
        return try text.withUTF8 { utf8 in
            try Result { () throws(JSONReader.Failure) in
                var r = JSONReader(UnsafeRawBufferPointer(utf8))
                let items = try readList(&r)
                try r.expectEnd()
                return items
            }.mapError { EventDecodingError(kind: .decode, message: $0.message) }.get()
        }
    }

    static func write(_ items: [OrderItem], to w: inout JSONBytes) {
        w.bytes.append(0x5B)
        for (n, item) in items.enumerated() {
            if n > 0 { w.bytes.append(0x2C) }
            w.open()
            w.member("productId", item.productId)
            w.member("quantity", item.quantity)
            w.close()
        }
        w.bytes.append(0x5D)
    }

    static func readList(_ r: inout JSONReader) throws(JSONReader.Failure) -> [OrderItem] {
        guard try r.peek() == 0x5B else { throw JSONReader.Failure(message: "items must be an array, got \(try r.kindOfNext())") }
        var items: [OrderItem] = []
        try r.array { (r: inout JSONReader) throws(JSONReader.Failure) in
            guard try r.peek() == 0x7B else { throw JSONReader.Failure(message: "an item must be an object, got \(try r.kindOfNext())") }
            var productId: Int64?, quantity: Int64?
            try r.object { (r: inout JSONReader, key) throws(JSONReader.Failure) in
                if key.is("productId") {
                    productId = try r.optionalInteger("productId")
                } else if key.is("quantity") {
                    quantity = try r.optionalInteger("quantity")
                } else {
                    try r.skipValue()
                }
            }
            guard let productId, let quantity else { throw JSONReader.Failure(message: "an item needs integers productId and quantity") }
            items.append(OrderItem(productId: productId, quantity: quantity))
        }
        return items
    }
}

extension JSONReader {
    /// A string member; nil for null; any other type is an error naming the member.
    mutating func optionalString(_ name: String) throws(Failure) -> String? {
        switch try peek() {
        case 0x6E: try literal("null"); return nil
        case 0x22: return try string()
        default: throw Failure(message: "\(name) must be a string, got \(try kindOfNext())")
        }
    }

    /// An Int64 member; nil for null; a fraction, an exponent, an overflow or another type is an error.
    mutating func optionalInteger(_ name: String) throws(Failure) -> Int64? {
        switch try peek() {
        case 0x6E: try literal("null"); return nil
        case 0x2D, 48...57:
            switch try number() {
            case .integer(let v): return v
            case .other(let text): throw Failure(message: "\(name) must be an integer, got \(text)")
            }
        default: throw Failure(message: "\(name) must be an integer, got \(try kindOfNext())")
        }
    }
}

/// Compact JSON written straight into bytes.
struct JSONBytes {
    var bytes: [UInt8] = []
    private var first = true

    mutating func open() {
        bytes.append(0x7B)
        first = true
    }

    mutating func close() {
        bytes.append(0x7D)
        first = false
    }

    mutating func key(_ name: StaticString) {
        if !first { bytes.append(0x2C) }
        first = false
        bytes.append(0x22)
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(0x22)
        bytes.append(0x3A)
    }

    mutating func member(_ name: StaticString, _ value: String) {
        key(name)
        string(value)
    }

    mutating func member(_ name: StaticString, _ value: Int64) {
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A JSON string: `"` and `\` escaped, control characters as \n, \r, \t or \u00XX, the rest as it is.
    mutating func string(_ s: String) {
        bytes.append(0x22)
        for c in s.utf8 {
            switch c {
            case 0x22: bytes.append(0x5C); bytes.append(0x22)
            case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
            case 0x0A: bytes.append(0x5C); bytes.append(0x6E)
            case 0x0D: bytes.append(0x5C); bytes.append(0x72)
            case 0x09: bytes.append(0x5C); bytes.append(0x74)
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
            default: bytes.append(c)
            }
        }
        bytes.append(0x22)
    }
}
