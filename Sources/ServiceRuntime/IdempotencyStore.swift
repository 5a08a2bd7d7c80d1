import Foundation
import GRDB
import Synchronization

/// What a client was answered under an Idempotency-Key, kept in the service's own database
/// and written in the transaction of the change it answers, so a retry finds exactly what
/// the first attempt did (or nothing, if that attempt was rolled back).
public struct StoredAnswer: Sendable, Equatable {
    /// "POST /orders": what the key was first used for, for error messages.
    public var request: String
    /// Digest of method, path and body: the key is bound to it.
    public var fingerprint: Data
    public var status: Int
    public var body: Data

    public init(request: String, fingerprint: Data, status: Int, body: Data) {
        self.request = request
        self.fingerprint = fingerprint
        self.status = status
        self.body = body
    }
}

public enum IdempotencyStore {
    public static func find(_ key: String, _ db: Database) throws -> StoredAnswer? {
        try Row.fetchOne(db, sql: "SELECT request, fingerprint, status, answer FROM idempotency_keys WHERE key = ?", arguments: [key]).map {
            StoredAnswer(request: $0["request"], fingerprint: $0["fingerprint"], status: $0["status"], body: $0["answer"])
        }
    }

    public static func save(_ key: String, _ answer: StoredAnswer, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO idempotency_keys (key, request, fingerprint, status, answer) VALUES (?, ?, ?, ?, ?)",
            arguments: [key, answer.request, answer.fingerprint, answer.status, answer.body])
    }
}

/// The Idempotency-Keys of the services that run in one process. They answer on one HTTP
/// port, so a key used on one service's route is refused on another's, although each
/// service keeps its keys in its own database. Two first uses of one key on two services at
/// the same instant can both go through; services run apart never see each other's keys.
public final class KeySpace: Sendable {
    private let members = Mutex<[(service: String, database: DatabasePool)]>([])

    public init() {}

    func join(_ service: String, _ database: DatabasePool) {
        members.withLock { $0.append((service, database)) }
    }

    /// What `key` answered on another service of this process, if it was used there.
    public func answer(for key: String, elsewhereThan service: String) throws -> StoredAnswer? {
        for member in members.withLock({ $0 }) where member.service != service {
            if let stored = try member.database.read({ db in try IdempotencyStore.find(key, db) }) { return stored }
        }
        return nil
    }
}
