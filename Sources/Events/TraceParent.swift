/// A W3C Trace Context `traceparent` (version 00): the trace one saga's events share, and the
/// span that produced this one. The contract carries it as a CloudEvents extension attribute
/// and a Kafka header; a missing or malformed one is ignored, never an error (contract §2).
public struct TraceParent: Sendable, Hashable {
    public var traceId: TraceID
    /// The parent span: the hop that produced the event or the request.
    public var spanId: UInt64
    public var flags: UInt8

    public init(traceId: TraceID, spanId: UInt64, flags: UInt8) {
        self.traceId = traceId
        self.spanId = spanId
        self.flags = flags
    }

    /// A new span of `traceId`.
    public static func span(in traceId: TraceID, flags: UInt8) -> TraceParent {
        var g = SystemRandomNumberGenerator()
        return TraceParent(traceId: traceId, spanId: g.nonZero(), flags: flags)
    }

    /// A new trace, sampled: the HTTP request that starts a saga without a caller's context.
    public static func root() -> TraceParent {
        var g = SystemRandomNumberGenerator()
        return span(in: TraceID(high: g.nonZero(), low: g.next()), flags: 0x01)
    }

    /// The next hop of the same trace: a new span id, the trace id and the sampled flag kept.
    /// Version 00 defines no other flag, and a sender must leave undefined ones zero.
    public func child() -> TraceParent { Self.span(in: traceId, flags: flags & 0x01) }

    /// The context this task works in: set by the HTTP layer for a request, read where events
    /// are written, so that domain code never passes it along.
    @TaskLocal public static var current: TraceParent?

    /// Parses a `traceparent` as W3C Trace Context level 1 says a receiver must: lowercase hex
    /// only, no all-zero ids, version ff refused, and a later version read by its first four
    /// fields. nil for anything else.
    public init?(_ text: String) {
        var text = text
        guard let parsed = text.withUTF8({ TraceParent(UnsafeRawBufferPointer($0)) }) else { return nil }
        self = parsed
    }

    public init?(_ raw: UnsafeRawBufferPointer) {
        guard raw.count >= 55, raw[2] == 0x2D, raw[35] == 0x2D, raw[52] == 0x2D else { return nil }
        guard let version = Hex.value(raw, 0, 2), version != 0xFF else { return nil }
        // Version 00 is exactly 55 bytes; a later one may append fields after a dash.
        guard raw.count == 55 || (version != 0 && raw[55] == 0x2D) else { return nil }
        guard let high = Hex.value(raw, 3, 16), let low = Hex.value(raw, 19, 16), high | low != 0,
            let span = Hex.value(raw, 36, 16), span != 0, let flags = Hex.value(raw, 53, 2)
        else { return nil }
        self.init(traceId: TraceID(high: high, low: low), spanId: span, flags: UInt8(flags))
    }

    /// `00-<trace id>-<span id>-<flags>`: always written as version 00.
    public var text: String {
        "00-" + traceId.hex + "-" + Hex.text(spanId, digits: 16) + "-" + Hex.text(UInt64(flags), digits: 2)
    }
}

/// A 128-bit trace id, held as two integers so that reading one from an event allocates nothing.
public struct TraceID: Sendable, Hashable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From 32 lowercase hex digits, not all zero; nil otherwise.
    public init?(hex: String) {
        var hex = hex
        let parsed = hex.withUTF8 { utf8 -> TraceID? in
            let raw = UnsafeRawBufferPointer(utf8)
            guard raw.count == 32, let high = Hex.value(raw, 0, 16), let low = Hex.value(raw, 16, 16), high | low != 0 else { return nil }
            return TraceID(high: high, low: low)
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// 32 lowercase hex digits, as the documents' `traceId` field holds it.
    public var hex: String { Hex.text(high, digits: 16) + Hex.text(low, digits: 16) }

    /// Writes the 32 digits to a buffer on the stack and hands it to `body`: no allocation.
    public func withHex<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer in
            Hex.write(high, into: buffer, at: 0, digits: 16)
            Hex.write(low, into: buffer, at: 16, digits: 16)
            return try body(UnsafeRawBufferPointer(buffer))
        }
    }
}

enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The value of `count` lowercase hex digits at `offset`; nil if any is not one.
    static func value(_ raw: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> UInt64? {
        var value: UInt64 = 0
        for i in offset..<offset + count {
            let c = raw[i]
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x61...0x66: digit = c - 0x61 + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    static func write(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int, digits count: Int) {
        for i in 0..<count { buffer[offset + i] = digits[Int(truncatingIfNeeded: value >> (4 * UInt64(count - 1 - i))) & 0xF] }
    }

    static func text(_ value: UInt64, digits count: Int) -> String {
        String(unsafeUninitializedCapacity: count) { buffer in
            write(value, into: buffer, at: 0, digits: count)
            return count
        }
    }
}

extension RandomNumberGenerator {
    fileprivate mutating func nonZero() -> UInt64 {
        while true {
            let value = next()
            if value != 0 { return value }
        }
    }
}
