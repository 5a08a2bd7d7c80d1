import CMongoc

/// Writes one BSON document field by field into a buffer that is reused for the next document,
/// for hot paths where building a `Document` tree first costs more than the write itself.
/// Only valid inside the closure that receives it; keys are static strings, no copies made.
public struct BSONWriter {
    let document: OpaquePointer
    /// Storage for one open sub-document (bson_t is 128-byte aligned, imported as opaque).
    private let child: OpaquePointer

    init() {
        document = bson_new()!
        child = OpaquePointer(UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128))
    }

    /// A writer for the closure's duration, for encoding without a server (benchmarks, tests).
    public static func withScratch<R>(_ body: (inout BSONWriter) throws -> R) rethrows -> R {
        var writer = BSONWriter()
        defer { writer.release() }
        return try body(&writer)
    }

    /// Empties the buffer for the next document, keeping its memory.
    public func reset() { bson_reinit(document) }

    /// Bytes of the document written so far.
    public var byteCount: Int {
        // A BSON document starts with its total length, little-endian.
        let data = bson_get_data(document)!
        return Int(UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24)
    }

    func release() {
        bson_destroy(document)
        UnsafeMutableRawPointer(child).deallocate()
    }

    public mutating func append(_ key: StaticString, _ value: String) {
        var value = value
        value.withUTF8 { append(key, utf8: UnsafeRawBufferPointer($0)) }
    }

    /// A string from bytes the caller vouches are UTF-8 (hex digits, say), without a `String`.
    public mutating func append(_ key: StaticString, utf8 bytes: UnsafeRawBufferPointer) {
        let target = document
        bytes.withMemoryRebound(to: CChar.self) { _ = bson_append_utf8(target, key.cKey, key.cLength, $0.baseAddress, Int32($0.count)) }
    }

    public mutating func append(_ key: StaticString, int64 value: Int64) { bson_append_int64(document, key.cKey, key.cLength, value) }
    public mutating func append(_ key: StaticString, int32 value: Int32) { bson_append_int32(document, key.cKey, key.cLength, value) }
    public mutating func append(_ key: StaticString, dateMs value: Int64) { bson_append_date_time(document, key.cKey, key.cLength, value) }

    /// A sub-document; one level deep (what history documents need).
    public mutating func appendDocument(_ key: StaticString, _ body: (inout BSONWriter) -> Void) {
        bson_append_document_begin(document, key.cKey, key.cLength, child)
        var inner = BSONWriter(document: child, child: child)
        body(&inner)
        bson_append_document_end(document, child)
    }

    private init(document: OpaquePointer, child: OpaquePointer) {
        self.document = document
        self.child = child
    }
}

private extension StaticString {
    var cKey: UnsafePointer<CChar> { UnsafeRawPointer(utf8Start).assumingMemoryBound(to: CChar.self) }
    var cLength: Int32 { Int32(utf8CodeUnitCount) }
}
