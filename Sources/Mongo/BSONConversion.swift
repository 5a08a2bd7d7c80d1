import CMongoc

// Document <-> bson_t. A bson_t pointer never leaves the closure that made it.

extension Document {
    func withBSON<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        let b = bson_new()!
        defer { bson_destroy(b) }
        Document.append(self, to: b)
        return try body(b)
    }

    /// The document's size encoded as BSON, as MongoDB's 16 MiB limit counts it.
    public var bsonSize: Int {
        withBSON { b in
            let data = bson_get_data(b)!
            return Int(UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24)
        }
    }

    static func append(_ document: Document, to b: OpaquePointer) {
        for (key, value) in document.fields { append(value, key: key, to: b) }
    }

    static func append(_ value: BSON, key: String, to b: OpaquePointer) {
        let len = Int32(key.utf8.count)
        switch value {
        case .double(let v): bson_append_double(b, key, len, v)
        case .string(let s):
            var s = s
            s.withUTF8 { u in u.withMemoryRebound(to: CChar.self) { _ = bson_append_utf8(b, key, len, $0.baseAddress, Int32($0.count)) } }
        case .document(let d):
            let child = bson_new()!
            append(d, to: child)
            bson_append_document(b, key, len, child)
            bson_destroy(child)
        case .array(let items):
            let child = bson_new()!
            for (i, item) in items.enumerated() { append(item, key: String(i), to: child) }
            bson_append_array(b, key, len, child)
            bson_destroy(child)
        case .bool(let v): bson_append_bool(b, key, len, v)
        case .datetime(let ms): bson_append_date_time(b, key, len, ms)
        case .null: bson_append_null(b, key, len)
        case .int32(let v): bson_append_int32(b, key, len, v)
        case .int64(let v): bson_append_int64(b, key, len, v)
        case .objectID(let hex):
            var oid = bson_oid_t()
            if bson_oid_is_valid(hex, hex.utf8.count) { bson_oid_init_from_string(&oid, hex) }
            bson_append_oid(b, key, len, &oid)
        case .binary(let bytes):
            bytes.withUnsafeBufferPointer { _ = bson_append_binary(b, key, len, BSON_SUBTYPE_BINARY, $0.baseAddress, UInt32($0.count)) }
        }
    }

    init(bson: OpaquePointer) {
        self.init()
        let iter = newIterator()
        defer { freeIterator(iter) }
        guard bson_iter_init(iter, bson) else { return }
        self = Document.read(iter)
    }

    private static func read(_ iter: OpaquePointer) -> Document {
        var doc = Document()
        while bson_iter_next(iter) {
            doc.append(String(cString: bson_iter_key(iter)), readValue(iter))
        }
        return doc
    }

    private static func readValue(_ iter: OpaquePointer) -> BSON {
        switch bson_iter_type(iter) {
        case BSON_TYPE_DOUBLE: return .double(bson_iter_double(iter))
        case BSON_TYPE_UTF8:
            var len: UInt32 = 0
            let p = bson_iter_utf8(iter, &len)!
            return .string(String(decoding: UnsafeRawBufferPointer(start: p, count: Int(len)), as: UTF8.self))
        case BSON_TYPE_DOCUMENT, BSON_TYPE_ARRAY:
            let isArray = bson_iter_type(iter) == BSON_TYPE_ARRAY
            let child = newIterator()
            defer { freeIterator(child) }
            bson_iter_recurse(iter, child)
            let d = read(child)
            return isArray ? .array(d.fields.map(\.value)) : .document(d)
        case BSON_TYPE_BOOL: return .bool(bson_iter_bool(iter))
        case BSON_TYPE_DATE_TIME: return .datetime(bson_iter_date_time(iter))
        case BSON_TYPE_INT32: return .int32(bson_iter_int32(iter))
        case BSON_TYPE_INT64: return .int64(bson_iter_int64(iter))
        case BSON_TYPE_OID:
            var hex = [CChar](repeating: 0, count: 25)
            bson_oid_to_string(bson_iter_oid(iter), &hex)
            return .objectID(String(decoding: hex.prefix(24).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        case BSON_TYPE_BINARY:
            var subtype = BSON_SUBTYPE_BINARY
            var len: UInt32 = 0
            var data: UnsafePointer<UInt8>?
            bson_iter_binary(iter, &subtype, &len, &data)
            return .binary(data.map { Array(UnsafeBufferPointer(start: $0, count: Int(len))) } ?? [])
        case BSON_TYPE_TIMESTAMP:
            var t: UInt32 = 0, i: UInt32 = 0
            bson_iter_timestamp(iter, &t, &i)
            return .int64(Int64(t) << 32 | Int64(i))
        default: return .null
        }
    }
}

// bson_iter_t is 128-byte aligned, which Swift imports as opaque: give it raw storage.
func newIterator() -> OpaquePointer {
    OpaquePointer(UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 128))
}

func freeIterator(_ iter: OpaquePointer) {
    UnsafeMutableRawPointer(iter).deallocate()
}
