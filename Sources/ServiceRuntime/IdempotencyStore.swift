import Events
import Foundation
import SQLStore
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
    /// The W3C context the first request ran in (its `traceresponse`): what the events of its
    /// change carry, so a retry names the same trace.
    public var traceparent: String?

    public init(request: String, fingerprint: Data, status: Int, body: Data, traceparent: String? = nil) {
        self.request = request
        self.fingerprint = fingerprint
        self.status = status
        self.body = body
        self.traceparent = traceparent
    }
}

public enum IdempotencyStore {
    public static func find(_ key: String, _ db: any SQLDatabase) throws -> StoredAnswer? {
        try db.row("SELECT request, fingerprint, status, answer, traceparent FROM idempotency_keys WHERE key = ?", key).map {
            StoredAnswer(
                request: try $0["request"], fingerprint: try $0["fingerprint"], status: try $0["status"], body: try $0["answer"],
                traceparent: try $0["traceparent"])
        }
    }

    public static func save(_ key: String, _ answer: StoredAnswer, _ db: any SQLDatabase) throws {
        try db.execute(
            "INSERT INTO idempotency_keys (key, request, fingerprint, status, answer, created_at, traceparent) VALUES (?, ?, ?, ?, ?, ?, ?)",
            key, answer.request, answer.fingerprint, answer.status, answer.body, Timestamp.nowMs(), answer.traceparent)
    }
}

/// The Idempotency-Keys of the services that run in one process. They answer on one HTTP
/// port, so a key used on one service's route is refused on another's, although each
/// service keeps its keys in its own database. Two first uses of one key on two services at
/// the same instant can both go through; services run apart never see each other's keys.
public final class KeySpace: Sendable {
    private let members = Mutex<[(service: String, database: any SQLStore)]>([])

    public init() {}

    func join(_ service: String, _ database: any SQLStore) {
        members.withLock { $0.append((service, database)) }
    }

    /// What `key` answered on another service of this process, if it was used there.
    public func answer(for key: String, elsewhereThan service: String) async throws -> StoredAnswer? {
        for member in members.withLock({ $0 }) where member.service != service {
            if let stored = try await member.database.read({ db in try IdempotencyStore.find(key, db) }) { return stored }
        }
        return nil
    }
}
