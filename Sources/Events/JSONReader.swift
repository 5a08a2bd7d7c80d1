/// A JSON reader over raw bytes that validates as it goes and builds nothing it is not asked
/// for: the archiver pulls a dozen fields out of each event and skips the rest.
struct JSONReader {
    struct Failure: Error {
        var message: String
    }

    let b: UnsafeRawBufferPointer
    var i = 0

    init(_ bytes: UnsafeRawBufferPointer) { b = bytes }

    mutating func skipWhitespace() {
        while i < b.count {
            switch b[i] {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            default: return
            }
        }
    }

    mutating func peek() throws(Failure) -> UInt8 {
        skipWhitespace()
        guard i < b.count else { throw Failure(message: "unexpected end of JSON") }
        return b[i]
    }

    mutating func expect(_ c: UInt8) throws(Failure) {
        guard try peek() == c else { throw unexpected("'\(Character(Unicode.Scalar(c)))'") }
        i += 1
    }

    func unexpected(_ wanted: String) -> Failure {
        i < b.count
            ? Failure(message: "expected \(wanted) at byte \(i), found '\(Character(Unicode.Scalar(b[i])))'")
            : Failure(message: "expected \(wanted), found end of input")
    }

    mutating func expectEnd() throws(Failure) {
        skipWhitespace()
        guard i == b.count else { throw Failure(message: "trailing characters after JSON value at byte \(i)") }
    }

    /// Walks an object's members: `body` gets each key and must consume its value.
    mutating func object(_ body: (inout JSONReader, Key) throws(Failure) -> Void) throws(Failure) {
        try expect(0x7B)
        if try peek() == 0x7D { i += 1; return }
        while true {
            guard try peek() == 0x22 else { throw unexpected("a member name") }
            let key = try key()
            try expect(0x3A)
            try body(&self, key)
            switch try peek() {
            case 0x2C: i += 1
            case 0x7D: i += 1; return
            default: throw unexpected("',' or '}'")
            }
        }
    }

    /// A member name, compared without allocating when it has no escapes.
    struct Key {
        var raw: UnsafeRawBufferPointer
        var decoded: String?
        func `is`(_ name: StaticString) -> Bool {
            if let decoded { return decoded == name.description }
            guard raw.count == name.utf8CodeUnitCount else { return false }
            return memcmp(raw.baseAddress!, name.utf8Start, raw.count) == 0
        }
        /// The same for a name known only at run time (a history kind's field).
        func matches(_ name: String) -> Bool {
            if let decoded { return decoded == name }
            guard raw.count == name.utf8.count else { return false }
            return name.utf8.withContiguousStorageIfAvailable { memcmp(raw.baseAddress!, $0.baseAddress!, raw.count) == 0 } ?? false
        }
        var string: String { decoded ?? String(decoding: raw, as: UTF8.self) }
    }

    mutating func key() throws(Failure) -> Key {
        let (start, end, escaped) = try scanString()
        if escaped { return Key(raw: UnsafeRawBufferPointer(rebasing: b[start..<end]), decoded: try decodeEscaped(start, end)) }
        return Key(raw: UnsafeRawBufferPointer(rebasing: b[start..<end]), decoded: nil)
    }

    mutating func string() throws(Failure) -> String {
        let (start, end, escaped) = try scanString()
        if escaped { return try decodeEscaped(start, end) }
        guard let s = Self.utf8String(UnsafeRawBufferPointer(rebasing: b[start..<end])) else {
            throw Failure(message: "invalid UTF-8 in string at byte \(start)")
        }
        return s
    }

    /// A string equal to one of `known` comes back as that very string, sharing its storage:
    /// a value read from every message (an event type) then costs no allocation.
    mutating func string(interning known: [String]) throws(Failure) -> (value: String, index: Int?) {
        let (start, end, escaped) = try scanString()
        if escaped { return (try decodeEscaped(start, end), nil) }
        let raw = UnsafeRawBufferPointer(rebasing: b[start..<end])
        for (index, candidate) in known.enumerated() where candidate.utf8.count == raw.count {
            let same = candidate.utf8.withContiguousStorageIfAvailable { memcmp($0.baseAddress!, raw.baseAddress!, raw.count) == 0 }
            if same == true { return (candidate, index) }
        }
        guard let s = Self.utf8String(raw) else { throw Failure(message: "invalid UTF-8 in string at byte \(start)") }
        return (s, nil)
    }

    /// The string these bytes spell, nil when they are not UTF-8. `String(validating:as:)` costs
    /// about 60 ns a call (a generic the standard library does not specialize, with a metadata
    /// look-up), more than the rest of reading the string; ASCII, which nearly every value of an
    /// event is, is valid UTF-8 as it stands, and `String(decoding:as:)` copies it without that.
    static func utf8String(_ raw: UnsafeRawBufferPointer) -> String? {
        var bits: UInt8 = 0
        for byte in raw { bits |= byte }
        if bits < 0x80 { return String(decoding: raw, as: UTF8.self) }
        return String(validating: raw, as: UTF8.self)
    }

    /// A string's bytes with its escapes undone: read in place (no allocation) when it has none.
    mutating func withUnescapedBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) throws(Failure) -> R {
        let (start, end, escaped) = try scanString()
        guard escaped else { return body(UnsafeRawBufferPointer(rebasing: b[start..<end])) }
        var decoded = try decodeEscaped(start, end)
        return decoded.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    /// A `traceparent` member's value: nil when it is not a string or not a well-formed one
    /// (contract §2: ignored, never an error). Both event decoders read it so.
    mutating func traceParent() throws(Failure) -> TraceParent? {
        guard try peek() == 0x22 else {
            try skipValue()
            return nil
        }
        return try withUnescapedBytes(TraceParent.init)
    }

    /// The bytes of a string without escapes (nil when it has any), for callers that parse them further.
    mutating func rawString() throws(Failure) -> UnsafeRawBufferPointer? {
        let (start, end, escaped) = try scanString()
        return escaped ? nil : UnsafeRawBufferPointer(rebasing: b[start..<end])
    }

    /// Finds the closing quote; returns the content range and whether it holds escapes.
    private mutating func scanString() throws(Failure) -> (Int, Int, Bool) {
        try expect(0x22)
        let start = i
        var escaped = false
        while i < b.count {
            skipPlainBytes()
            guard i < b.count else { break }
            let c = b[i]
            if c == 0x22 { i += 1; return (start, i - 1, escaped) }
            if c == 0x5C {
                escaped = true
                guard i + 1 < b.count else { break }
                switch b[i + 1] {
                case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74: i += 2
                case 0x75:
                    guard i + 6 <= b.count, (i + 2..<i + 6).allSatisfy({ isHexDigit(b[$0]) }) else {
                        throw Failure(message: "bad \\u escape at byte \(i)")
                    }
                    i += 6
                default: throw Failure(message: "bad escape at byte \(i)")
                }
                continue
            }
            if c < 0x20 { throw Failure(message: "control character in string at byte \(i)") }
            i += 1
        }
        throw Failure(message: "unterminated string starting at byte \(start - 1)")
    }

    /// Moves on eight bytes at a time to the first byte a string's scan must look at: a quote, a
    /// backslash or a control character. Stops there, or before the last few (under eight) bytes.
    private mutating func skipPlainBytes() {
        let ones: UInt64 = 0x0101_0101_0101_0101
        while i + 8 <= b.count {
            let word = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let quote = word ^ (0x22 &* ones), backslash = word ^ (0x5C &* ones)
            // The "has a zero byte" (for the xors) and "has a byte below 0x20" tests: a byte's high
            // bit ends up set where one is, and the lowest byte so marked always is one (a borrow
            // only carries upwards, from a byte that is).
            let found =
                ((quote &- ones) & ~quote | (backslash &- ones) & ~backslash | (word &- 0x20 &* ones) & ~word)
                & 0x8080_8080_8080_8080
            if found != 0 { i += found.trailingZeroBitCount / 8; return }
            i += 8
        }
    }

    private func isHexDigit(_ c: UInt8) -> Bool { (48...57).contains(c) || (65...70).contains(c) || (97...102).contains(c) }

    private func decodeEscaped(_ start: Int, _ end: Int) throws(Failure) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var j = start
        func hex4(_ at: Int) throws(Failure) -> UInt32 {
            guard at + 4 <= end else { throw Failure(message: "bad \\u escape at byte \(at)") }
            var v: UInt32 = 0
            for k in at..<at + 4 {
                let c = b[k]
                let d: UInt8
                switch c {
                case 48...57: d = c - 48
                case 65...70: d = c - 55
                case 97...102: d = c - 87
                default: throw Failure(message: "bad \\u escape at byte \(at)")
                }
                v = v << 4 | UInt32(d)
            }
            return v
        }
        while j < end {
            let c = b[j]
            guard c == 0x5C else { out.append(c); j += 1; continue }
            guard j + 1 < end else { throw Failure(message: "bad escape at byte \(j)") }
            let e = b[j + 1]
            j += 2
            switch e {
            case 0x22, 0x5C, 0x2F: out.append(e)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = try hex4(j)
                j += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    guard j + 6 <= end, b[j] == 0x5C, b[j + 1] == 0x75 else { throw Failure(message: "lone surrogate in string") }
                    let low = try hex4(j + 2)
                    guard (0xDC00..<0xE000).contains(low) else { throw Failure(message: "lone surrogate in string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    j += 6
                }
                guard let u = Unicode.Scalar(scalar) else { throw Failure(message: "lone surrogate in string") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw Failure(message: "bad escape '\\\(Character(Unicode.Scalar(e)))' at byte \(j - 2)")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw Failure(message: "invalid UTF-8 in string") }
        return s
    }

    enum Number {
        case integer(Int64)
        /// Has a fraction or exponent, or does not fit in Int64: valid JSON, not an integer.
        case other(String)
    }

    mutating func number() throws(Failure) -> Number {
        _ = try peek()
        let start = i
        var integral = true
        if i < b.count, b[i] == 0x2D { i += 1 }
        guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw unexpected("a digit") }
        if b[i] == 48 { i += 1 } else { while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 } }
        if i < b.count, b[i] == 0x2E {
            integral = false
            i += 1
            guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw unexpected("a digit after '.'") }
            while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
        }
        if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
            integral = false
            i += 1
            if i < b.count, b[i] == 0x2B || b[i] == 0x2D { i += 1 }
            guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw unexpected("an exponent digit") }
            while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
        }
        let text = UnsafeRawBufferPointer(rebasing: b[start..<i])
        if integral {
            var v: Int64 = 0
            var overflow = false
            let negative = text[0] == 0x2D
            for c in text.dropFirst(negative ? 1 : 0) {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = negative ? m.subtractingReportingOverflow(Int64(c - 48)) : m.addingReportingOverflow(Int64(c - 48))
                if o1 || o2 { overflow = true; break }
                v = a
            }
            if !overflow { return .integer(v) }
        }
        return .other(String(decoding: text, as: UTF8.self))
    }

    /// Consumes any value, validating it.
    mutating func skipValue(depth: Int = 0) throws(Failure) {
        guard depth < 64 else { throw Failure(message: "JSON nested deeper than 64 levels") }
        switch try peek() {
        case 0x22: _ = try scanString()
        case 0x7B: try object { (r: inout JSONReader, _) throws(Failure) in try r.skipValue(depth: depth + 1) }
        case 0x5B: try array { (r: inout JSONReader) throws(Failure) in try r.skipValue(depth: depth + 1) }
        case 0x74: try literal("true")
        case 0x66: try literal("false")
        case 0x6E: try literal("null")
        default: _ = try number()
        }
    }

    mutating func array(_ element: (inout JSONReader) throws(Failure) -> Void) throws(Failure) {
        try expect(0x5B)
        if try peek() == 0x5D { i += 1; return }
        while true {
            try element(&self)
            switch try peek() {
            case 0x2C: i += 1
            case 0x5D: i += 1; return
            default: throw unexpected("',' or ']'")
            }
        }
    }

    mutating func literal(_ word: StaticString) throws(Failure) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count, memcmp(b.baseAddress! + i, word.utf8Start, n) == 0 else { throw unexpected("a JSON value") }
        i += n
    }

    /// A short name for what the next value is, for error messages.
    mutating func kindOfNext() throws(Failure) -> String {
        switch try peek() {
        case 0x22: "a string"
        case 0x7B: "an object"
        case 0x5B: "an array"
        case 0x74, 0x66: "a boolean"
        case 0x6E: "null"
        default: "a number"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
