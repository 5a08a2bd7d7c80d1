import Foundation
import Synchronization

/// Tokens whose signature and claims were checked, with the window they are good for. The key
/// is the whole token: the same bytes carry the same signature, so the answer cannot differ
/// while the window lasts. Bounded: when full, it starts again empty (a re-check costs little).
final class VerifiedTokens: Sendable {
    static let capacity = 10_000
    private let entries = Mutex<[String: Entry]>([:])

    struct Entry {
        let identity: Identity
        let notBefore: Date?
        let expires: Date
    }

    /// The identity of a token checked before, if it is still within its window (the same minute
    /// of leeway as the first check).
    func identity(of token: String, now: Date = Date()) -> Identity? {
        entries.withLock { entries in
            guard let entry = entries[token] else { return nil }
            guard now.addingTimeInterval(-60) < entry.expires, entry.notBefore.map({ $0 < now.addingTimeInterval(60) }) ?? true else {
                entries[token] = nil
                return nil
            }
            return entry.identity
        }
    }

    func keep(_ token: String, _ identity: Identity, from notBefore: Date?, until expires: Date) {
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[token] = Entry(identity: identity, notBefore: notBefore, expires: expires)
        }
    }
}
