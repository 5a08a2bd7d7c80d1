import Archiver
import Events
import Mongo

/// How `archiver history` prints documents: an aligned table, or one JSON document per line.
enum Output {
    static func json(_ doc: Document) -> String { JSONValue.object(jsonObject(doc)).serialized }

    static func jsonObject(_ doc: Document) -> JSONObject {
        var o = JSONObject()
        for (key, value) in doc.fields { o[key] = json(value) }
        return o
    }

    static func json(_ value: BSON) -> JSONValue {
        switch value {
        case .int32, .int64: .int(value.int64Value ?? 0)
        case .double(let d): value.int64Value.map { .int($0) } ?? .double(d)
        case .string(let s): .string(s)
        case .bool(let b): .bool(b)
        case .datetime(let ms): .string(Timestamp.format(ms))
        case .document(let d): .object(jsonObject(d))
        case .array(let a): .array(a.map(json))
        case .objectID(let hex): .string(hex)
        case .binary(let bytes): .array(bytes.map { .int(Int64($0)) })
        case .null: .null
        }
    }

    /// A word a shell reads back unchanged: quoted only when it holds anything but plain characters.
    static func shellWord(_ text: String) -> String {
        let plain = text.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "-_.:/+@%".utf8.contains(c)
        }
        return plain && !text.isEmpty ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// 15000 -> "15,000".
    static func amount(_ value: BSON?) -> String {
        guard let v = value?.int64Value else { return "-" }
        let digits = String(v.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (v < 0 ? "-" : "") + out
    }

    static func time(_ value: BSON?) -> String {
        if case .datetime(let ms) = value { return Timestamp.format(ms) }
        return "-"
    }

    static func text(_ value: BSON?) -> String {
        switch value {
        case .string(let s): s
        case .none, .null: "-"
        case .some(let v): v.int64Value.map(String.init) ?? "\(v)"
        }
    }

    /// Documents as a table of `columns`; amounts are right-aligned.
    static func table(_ columns: [HistoryColumn], _ docs: [Document]) -> String {
        table(
            columns.map(\.header), docs.map { doc in columns.map { cell(doc[$0.field], $0.format) } },
            rightAligned: Set(columns.indices.filter { columns[$0].format == .amount }))
    }

    static func cell(_ value: BSON?, _ format: HistoryColumn.Format) -> String {
        switch format {
        case .time: time(value)
        case .text: text(value)
        case .amount: amount(value)
        }
    }

    static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var s = self
        while s.hasSuffix(" ") { s.removeLast() }
        return s
    }
}
