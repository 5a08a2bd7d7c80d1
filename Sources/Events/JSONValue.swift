/// A JSON value with ordered object members: for writing events and for reading documents
/// whose shape is not known in advance (tests, CLIs). The archiver's hot path does not use it.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { o[key] } else { nil }
    }
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var intValue: Int64? { if case .int(let v) = self { v } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }

    /// Compact JSON text.
    public var serialized: String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let v): out += String(v)
        case .double(let d): out += d.isFinite ? "\(d)" : "null"
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let a):
            out += "["
            for (n, v) in a.enumerated() {
                if n > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (n, m) in o.members.enumerated() {
                if n > 0 { out += "," }
                JSONValue.writeString(m.key, to: &out)
                out += ":"
                m.value.write(to: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }

    /// Parses JSON text; the error names what is wrong and where.
    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(JSONReader.Failure) in
                var r = JSONReader(raw)
                let v = try read(&r, depth: 0)
                try r.expectEnd()
                return v
            }
        }.get()
    }

    public static func parse(_ text: String) throws -> JSONValue { try parse(Array(text.utf8)) }

    private static func read(_ r: inout JSONReader, depth: Int) throws(JSONReader.Failure) -> JSONValue {
        guard depth < 64 else { throw JSONReader.Failure(message: "JSON nested deeper than 64 levels") }
        switch try r.peek() {
        case 0x22: return .string(try r.string())
        case 0x7B:
            var o = JSONObject()
            try r.object { (r: inout JSONReader, key) throws(JSONReader.Failure) in o[key.string] = try read(&r, depth: depth + 1) }
            return .object(o)
        case 0x5B:
            var a: [JSONValue] = []
            try r.array { (r: inout JSONReader) throws(JSONReader.Failure) in a.append(try read(&r, depth: depth + 1)) }
            return .array(a)
        case 0x74: try r.literal("true"); return .bool(true)
        case 0x66: try r.literal("false"); return .bool(false)
        case 0x6E: try r.literal("null"); return .null
        default:
            switch try r.number() {
            case .integer(let v): return .int(v)
            case .other(let text): return .double(Double(text) ?? .nan)
            }
        }
    }
}

extension JSONReader.Failure: CustomStringConvertible {
    var description: String { message }
}

/// JSON object members in insertion order.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var members: [(key: String, value: JSONValue)] = []
    public init() {}
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (k, v) in elements { self[k] = v }
    }
    public subscript(key: String) -> JSONValue? {
        get { members.last { $0.key == key }?.value }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.append((key: key, value: newValue))
            }
        }
    }
    public static func == (l: JSONObject, r: JSONObject) -> Bool {
        l.members.count == r.members.count && zip(l.members, r.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
}
