/// Text that ends up in headers, documents and logs, bounded in bytes (not characters: one
/// character can be arbitrarily many bytes).
public enum Text {
    /// At most `maxBytes` of UTF-8, cut before a character's first byte, so the result stays valid.
    public static func utf8Prefix(_ text: String, maxBytes: Int) -> String {
        guard text.utf8.count > maxBytes else { return text }
        let bytes = Array(text.utf8.prefix(maxBytes + 1))
        var end = maxBytes
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
