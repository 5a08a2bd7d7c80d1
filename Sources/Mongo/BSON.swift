import Foundation

/// A BSON value. Dates are milliseconds since the epoch, as BSON stores them.
public enum BSON: Sendable, Equatable, Hashable {
    case double(Double)
    case string(String)
    case document(Document)
    case array([BSON])
    case bool(Bool)
    case datetime(Int64)
    case null
    case int32(Int32)
    case int64(Int64)
    case objectID(String)
    case binary([UInt8])

    /// Integers read tolerantly: some servers hand small Int64s back as Int32, or as integral doubles.
    public var int64Value: Int64? {
        switch self {
        case .int64(let v): v
        case .int32(let v): Int64(v)
        case .double(let v) where v.rounded() == v && abs(v) < 9.0e15: Int64(v)
        default: nil
        }
    }
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var documentValue: Document? { if case .document(let d) = self { d } else { nil } }
    public var arrayValue: [BSON]? { if case .array(let a) = self { a } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var dateValue: Date? {
        if case .datetime(let ms) = self { Date(timeIntervalSince1970: Double(ms) / 1000) } else { nil }
    }

    public static func date(_ date: Date) -> BSON { .datetime(Int64((date.timeIntervalSince1970 * 1000).rounded())) }
}

/// An ordered BSON document. Order matters to MongoDB for index keys, sorts and commands.
public struct Document: Sendable, Equatable, Hashable, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public private(set) var fields: [(key: String, value: BSON)]

    public init() { fields = [] }
    public init(_ fields: [(String, BSON)]) { self.fields = fields.map { (key: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, BSON)...) { self.init(elements) }

    public subscript(key: String) -> BSON? {
        get { fields.first { $0.key == key }?.value }
        set {
            if let i = fields.firstIndex(where: { $0.key == key }) {
                if let newValue { fields[i].value = newValue } else { fields.remove(at: i) }
            } else if let newValue {
                fields.append((key: key, value: newValue))
            }
        }
    }

    public mutating func append(_ key: String, _ value: BSON) { fields.append((key: key, value: value)) }
    public var keys: [String] { fields.map(\.key) }
    public var isEmpty: Bool { fields.isEmpty }

    public static func == (lhs: Document, rhs: Document) -> Bool {
        lhs.fields.count == rhs.fields.count && zip(lhs.fields, rhs.fields).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
    public func hash(into hasher: inout Hasher) {
        for f in fields { hasher.combine(f.key); hasher.combine(f.value) }
    }

    public var description: String { "{" + fields.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}" }
}

extension BSON: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    /// Literals as in a shell query: `["userId": 1]`, `["status": "COMPLETED"]`.
    public init(integerLiteral value: Int32) { self = .int32(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
