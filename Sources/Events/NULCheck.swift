/// U+0000 in a JSON string, written as the escape `\u0000`: valid JSON, but PostgreSQL refuses
/// it in text, so the services refuse it at their door (events and request bodies) rather than
/// fail a whole transaction on it. A raw 0x00 byte is invalid JSON already.
public enum NULCheck {
    /// Whether `bytes` hold an escaped U+0000 (a `\u0000` preceded by an odd run of backslashes).
    public static func hasEscapedNUL(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let n = bytes.count
        var i = 0
        while i + 5 < n {
            if bytes[i] == 0x5C {  // a run of backslashes: pairs are literal backslashes
                var j = i
                while j < n, bytes[j] == 0x5C { j += 1 }
                if (j - i) % 2 == 1, j + 4 < n, bytes[j] == 0x75, bytes[j + 1] == 0x30, bytes[j + 2] == 0x30, bytes[j + 3] == 0x30,
                    bytes[j + 4] == 0x30
                {
                    return true
                }
                i = j
            } else {
                i += 1
            }
        }
        return false
    }
}
