import Synchronization

/// Long polls without polling: a request handler waits for a change of one resource (an order,
/// a payment) without holding a thread, a connection to the database or a transaction, and the
/// service's write path wakes it right after the commit that changed the resource.
///
/// Keys are `"<service> <subject>"`: a node notifies the subjects of the events it committed
/// (`order/12`), and every status change of an order or a payment emits an event with the
/// resource's subject. A wake-up means "look again", never "it is done": the waiter re-reads.
///
/// Bounded: one instance is shared by the services of a process, and past `limit` waiters it
/// refuses new ones (`LimitReached`, answered 503), so clients cannot exhaust its memory.
public final class ChangeWaiters: Sendable {
    /// The default bound per process: about 200 bytes each, a few MiB at most.
    public static let defaultLimit = 10_000

    public let limit: Int
    private let state = Mutex(State())
    /// Registered waiters, readable without the lock: a commit with nobody waiting pays one load.
    private let registered = Atomic<Int>(0)

    public init(limit: Int = ChangeWaiters.defaultLimit) {
        self.limit = max(0, limit)
    }

    /// Thrown by `register` when `limit` waiters are registered already.
    public struct LimitReached: Error, CustomStringConvertible, Sendable {
        public let limit: Int
        public var description: String { "\(limit) requests are already waiting for changes in this process" }
    }

    /// How a wait ended.
    public enum Outcome: Sendable, Equatable {
        /// The resource was changed by a commit (or may have been): read it again.
        case changed
        /// The deadline passed first.
        case timedOut
        /// The waiting task was cancelled (the client went away).
        case cancelled
    }

    /// A registered waiter. Register before reading the state it waits to change, so that a
    /// commit between that read and `wait` is not missed; `cancel` it if the read makes waiting
    /// unnecessary. A ticket is waited for at most once.
    public struct Ticket: Sendable {
        let key: String
        let token: UInt64
    }

    private enum Entry {
        case armed
        case fired
        case waiting(CheckedContinuation<Outcome, Never>)
    }

    private struct State {
        var entries: [String: [UInt64: Entry]] = [:]
        var count = 0
        var nextToken: UInt64 = 0
    }

    /// The number of waiters registered now.
    public var count: Int { registered.load(ordering: .relaxed) }

    public func register(_ key: String) throws(LimitReached) -> Ticket {
        let token: UInt64? = state.withLock { s in
            guard s.count < limit else { return nil }
            s.nextToken &+= 1
            s.entries[key, default: [:]][s.nextToken] = .armed
            s.count += 1
            registered.store(s.count, ordering: .relaxed)
            return s.nextToken
        }
        guard let token else { throw LimitReached(limit: limit) }
        return Ticket(key: key, token: token)
    }

    /// Forgets a ticket that will not be waited for.
    public func cancel(_ ticket: Ticket) {
        resume(ticket, .cancelled)
    }

    /// Waits until `notify` names the ticket's key (at once if it did since `register`), until
    /// `deadline`, or until the task is cancelled. The ticket is forgotten afterwards.
    public func wait(_ ticket: Ticket, until deadline: ContinuousClock.Instant) async -> Outcome {
        let timer = Task { [self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            resume(ticket, Task.isCancelled ? .cancelled : .timedOut)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let outcome: Outcome? = state.withLock { s in
                    switch s.entries[ticket.key]?[ticket.token] {
                    case .armed?:
                        s.entries[ticket.key]![ticket.token] = .waiting(continuation)
                        return nil
                    case .fired?:
                        remove(ticket, &s)
                        return .changed
                    case .waiting?, nil:
                        // Already cancelled or timed out (the timer can fire before we get here):
                        // the task's own cancellation is reported as such, whenever it came.
                        return Task.isCancelled ? .cancelled : .timedOut
                    }
                }
                if let outcome { continuation.resume(returning: outcome) }
            }
        } onCancel: {
            resume(ticket, .cancelled)
        }
    }

    /// Wakes every waiter on these keys; called after the commit that changed them.
    public func notify<Keys: Sequence<String>>(_ keys: Keys) {
        guard registered.load(ordering: .relaxed) > 0 else { return }
        var woken: [CheckedContinuation<Outcome, Never>] = []
        state.withLock { s in
            for key in keys {
                guard let waiting = s.entries[key] else { continue }
                for (token, entry) in waiting {
                    switch entry {
                    case .armed: s.entries[key]![token] = .fired
                    case .fired: break
                    case .waiting(let continuation):
                        woken.append(continuation)
                        remove(Ticket(key: key, token: token), &s)
                    }
                }
            }
        }
        for continuation in woken { continuation.resume(returning: .changed) }
    }

    /// Wakes every waiter: after a gap in what this process heard of other processes' commits.
    public func notifyAll() {
        notify(state.withLock { Array($0.entries.keys) })
    }

    private func resume(_ ticket: Ticket, _ outcome: Outcome) {
        let continuation: CheckedContinuation<Outcome, Never>? = state.withLock { s in
            guard let entry = s.entries[ticket.key]?[ticket.token] else { return nil }
            remove(ticket, &s)
            if case .waiting(let continuation) = entry { return continuation }
            return nil
        }
        continuation?.resume(returning: outcome)
    }

    private func remove(_ ticket: Ticket, _ s: inout State) {
        guard s.entries[ticket.key]?.removeValue(forKey: ticket.token) != nil else { return }
        if s.entries[ticket.key]!.isEmpty { s.entries[ticket.key] = nil }
        s.count -= 1
        registered.store(s.count, ordering: .relaxed)
    }
}
