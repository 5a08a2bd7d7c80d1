import Logging

/// Where one batch's time went, logged at debug level: the loop's own answer to "why is this
/// event late". Phases in loop order: the poll that returned the batch (with the rebalance
/// handling and broker check around it), decoding it, the compensation lookup (which also
/// re-checks the batch before it), settling the batch before it (dead letters, the lag gauge and
/// its batch log; its commit runs in the background), and the history writes.
struct BatchTimeline {
    /// Int-backed so that a mark indexes `spent` without searching or allocating.
    enum Phase: Int, CaseIterable {
        case poll, decode, lookup, settle, write
        var name: String { "\(self)" }
    }

    private var last: ContinuousClock.Instant
    private var spent: [Duration] = Array(repeating: .zero, count: Phase.allCases.count)

    init(start: ContinuousClock.Instant) { last = start }

    /// Ends `phase` now: the time since the previous mark is its.
    mutating func mark(_ phase: Phase) {
        let now = ContinuousClock.now
        spent[phase.rawValue] += now - last
        last = now
    }

    /// Milliseconds per phase, two decimals, and the batch's size.
    func metadata(events: Int) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["events": "\(events)"]
        for (phase, duration) in zip(Phase.allCases, spent) {
            metadata["\(phase.name)Ms"] = "\(Self.milliseconds(duration))"
        }
        return metadata
    }

    /// `1.05` for 1,054 µs: whole milliseconds, then hundredths, truncated.
    static func milliseconds(_ duration: Duration) -> String {
        let us = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        return "\(us / 1000).\(String(us % 1000 / 10).leftPadded(to: 2))"
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
