import Synchronization

/// At most `count` holders at once; the others wait in line. Tests that each start several
/// processes take a slot, so that a whole suite starting together does not swamp the local
/// broker on 2 cores (connections time out, and the test measures the machine, not the code).
public final class Slots: Sendable {
    /// Shared by every test that starts an archiver or services against the local servers.
    public static let scenarios = Slots(10)

    private struct State {
        var free: Int
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    public init(_ count: Int) {
        state = Mutex(State(free: count))
    }

    /// A slot, given back by `release()` or when the token goes away.
    public final class Token: Sendable {
        private let slots: Slots
        private let held = Mutex(true)
        init(_ slots: Slots) { self.slots = slots }
        public func release() {
            if held.withLock({ held in
                defer { held = false }; return held
            }) {
                slots.give()
            }
        }
        deinit { release() }
    }

    public func take() async -> Token {
        await wait()
        return Token(self)
    }

    private func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { s in
                guard s.free > 0 else {
                    s.waiting.append(continuation)
                    return false
                }
                s.free -= 1
                return true
            }
            if now { continuation.resume() }
        }
    }

    fileprivate func give() {
        let next: CheckedContinuation<Void, Never>? = state.withLock { s in
            guard !s.waiting.isEmpty else {
                s.free += 1
                return nil
            }
            return s.waiting.removeFirst()
        }
        next?.resume()
    }
}
