import Foundation

/// A value bound to a `?` or read from a column.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case text(String)
    case blob(Data)
}

/// What can be bound to a placeholder.
public protocol SQLBindable: Sendable {
    var sqlValue: SQLValue { get }
}

extension Int64: SQLBindable { public var sqlValue: SQLValue { .integer(self) } }
extension Int: SQLBindable { public var sqlValue: SQLValue { .integer(Int64(self)) } }
extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Data: SQLBindable { public var sqlValue: SQLValue { .blob(self) } }
extension SQLValue: SQLBindable { public var sqlValue: SQLValue { self } }
extension Optional: SQLBindable where Wrapped: SQLBindable {
    public var sqlValue: SQLValue { map(\.sqlValue) ?? .null }
}

/// One transaction's view of a store.
public protocol SQLDatabase: AnyObject {
    /// Runs a statement whose answer is not needed. A store may send it without waiting for it
    /// (PostgreSQL pipelines it): its error, if any, is then thrown by the next statement that
    /// waits (`rows`) or by the commit. To learn what it changed, use `rows` with `RETURNING`.
    func execute(_ sql: String, _ arguments: [SQLValue]) throws
    /// Runs a query; every row, columns by name.
    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow]
    /// Holds a lock on each of `keys` ("product/3") until the transaction ends, taking them in
    /// one order fixed for every transaction of the store, so that transactions which lock rows
    /// only under the keys they took first can wait for each other but never deadlock. A store
    /// with a single writer does nothing. Sent ahead like `execute`: the keys are held once a
    /// later statement has answered.
    func lock(_ keys: [String]) throws
    /// A number at or below that of every write transaction still running when this statement
    /// ran (see `SQLStore.newTransactionNumber`); nil for a store with a single writer, where a
    /// row a reader does not see will never be committed under an earlier key.
    func oldestRunningTransaction() throws -> UInt64?
    /// Tells the other processes sharing the store, when this transaction commits, which
    /// subjects it changed (see `SQLStore.watchAnnouncements`). A store of one process does nothing.
    func announce(_ subjects: [String]) throws
}

extension SQLDatabase {
    public func execute(_ sql: String, _ arguments: any SQLBindable...) throws {
        try execute(sql, arguments.map(\.sqlValue))
    }

    public func rows(_ sql: String, _ arguments: any SQLBindable...) throws -> [SQLRow] {
        try rows(sql, arguments.map(\.sqlValue))
    }

    public func row(_ sql: String, _ arguments: any SQLBindable...) throws -> SQLRow? {
        try rows(sql, arguments.map(\.sqlValue)).first
    }

    /// The first column of the first row; nil without a row or for NULL.
    public func value<T: SQLColumnValue>(_ type: T.Type, _ sql: String, _ arguments: any SQLBindable...) throws -> T? {
        guard let row = try rows(sql, arguments.map(\.sqlValue)).first, let first = row.values.first else { return nil }
        return try T(column: row.columns.first ?? "?", first)
    }

    /// Runs an INSERT into a table keyed by an `id` the store assigns; returns that id.
    public func insert(_ sql: String, _ arguments: any SQLBindable...) throws -> Int64 {
        guard let row = try rows(sql + " RETURNING id", arguments.map(\.sqlValue)).first, let id = row.values.first, case .integer(let value) = id
        else { throw SQLError("\(sql) RETURNING id gave no id") }
        return value
    }

    public func exists(_ sql: String, _ arguments: any SQLBindable...) throws -> Bool {
        try !rows(sql, arguments.map(\.sqlValue)).isEmpty
    }

    /// Runs `body` so that a throw undoes what it did and nothing else of the transaction.
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        try execute("SAVEPOINT body", [])
        do {
            let value = try body()
            try execute("RELEASE SAVEPOINT body", [])
            return value
        } catch {
            try execute("ROLLBACK TO SAVEPOINT body", [])
            try execute("RELEASE SAVEPOINT body", [])
            throw error
        }
    }
}

/// A row of a query's answer.
public struct SQLRow: Sendable {
    public let columns: [String]
    public let values: [SQLValue]

    public init(columns: [String], values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    /// The column `name` as `T`; throws if it is absent or of another kind.
    public subscript<T: SQLColumnValue>(_ name: String) -> T {
        get throws {
            guard let index = columns.firstIndex(of: name) else { throw SQLError("no column '\(name)' in (\(columns.joined(separator: ", ")))") }
            return try T(column: name, values[index])
        }
    }
}

/// What a column can be read as.
public protocol SQLColumnValue {
    init(column: String, _ value: SQLValue) throws
}

extension Int64: SQLColumnValue {
    public init(column: String, _ value: SQLValue) throws {
        guard case .integer(let v) = value else { throw SQLError("column '\(column)' is \(value), not an integer") }
        self = v
    }
}

extension String: SQLColumnValue {
    public init(column: String, _ value: SQLValue) throws {
        guard case .text(let v) = value else { throw SQLError("column '\(column)' is \(value), not text") }
        self = v
    }
}

extension Data: SQLColumnValue {
    public init(column: String, _ value: SQLValue) throws {
        switch value {
        case .blob(let v): self = v
        case .text(let v): self = Data(v.utf8)
        default: throw SQLError("column '\(column)' is \(value), not bytes")
        }
    }
}

extension Optional: SQLColumnValue where Wrapped: SQLColumnValue {
    public init(column: String, _ value: SQLValue) throws {
        self = value == .null ? nil : try Wrapped(column: column, value)
    }
}

extension Int: SQLColumnValue {
    public init(column: String, _ value: SQLValue) throws {
        guard let v = Int(exactly: try Int64(column: column, value)) else { throw SQLError("column '\(column)' does not fit an Int") }
        self = v
    }
}
