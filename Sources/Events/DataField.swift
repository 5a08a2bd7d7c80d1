/// A `data` field a history kind reads from its events, and the slot its value is kept in.
/// A kind numbers its fields itself, per value type, from 0: `HistoryEvent` keeps them in fixed
/// storage, so reading one costs no allocation and no look-up by name.
public struct DataField: Sendable, Equatable {
    public enum ValueType: Sendable, Equatable { case integer, text }
    public var name: String
    public var type: ValueType
    /// Required: an event without it is a schema error (dead-lettered). Optional: it may be absent,
    /// but not present with the wrong type.
    public var isRequired: Bool
    public var slot: Int

    public static func integer(_ name: String, slot: Int, required: Bool = true) -> DataField {
        DataField(name: name, type: .integer, isRequired: required, slot: slot)
    }

    public static func text(_ name: String, slot: Int, required: Bool = true) -> DataField {
        DataField(name: name, type: .text, isRequired: required, slot: slot)
    }
}

/// An event's `data` values, in fixed slots: `integerSlots` integers and `textSlots` strings.
public struct DataValues: Sendable, Equatable {
    public static let integerSlots = 8
    public static let textSlots = 2

    private var integers: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var texts: (String?, String?) = (nil, nil)
    /// Bit `slot` for an integer, bit `integerSlots + slot` for a text.
    private var present: UInt16 = 0

    public init() {}

    public func integer(_ field: DataField) -> Int64? {
        guard present & (1 << field.slot) != 0 else { return nil }
        return withUnsafeBytes(of: integers) { $0.load(fromByteOffset: field.slot * 8, as: Int64.self) }
    }

    public func text(_ field: DataField) -> String? { field.slot == 0 ? texts.0 : texts.1 }

    mutating func set(_ field: DataField, integer value: Int64) {
        withUnsafeMutableBytes(of: &integers) { $0.storeBytes(of: value, toByteOffset: field.slot * 8, as: Int64.self) }
        present |= 1 << field.slot
    }

    mutating func set(_ field: DataField, text value: String) {
        if field.slot == 0 { texts.0 = value } else { texts.1 = value }
        present |= 1 << (Self.integerSlots + field.slot)
    }

    func has(_ field: DataField) -> Bool {
        present & (1 << (field.type == .integer ? field.slot : Self.integerSlots + field.slot)) != 0
    }

    public static func == (l: DataValues, r: DataValues) -> Bool {
        guard l.present == r.present, l.texts == r.texts else { return false }
        return withUnsafeBytes(of: l.integers) { a in withUnsafeBytes(of: r.integers) { b in a.elementsEqual(b) } }
    }
}
