/// Where a test interrupts a service between two of its steps, to show that a crash there
/// loses nothing (`commerce serve --crash-after-commit/--crash-after-publish` sets them).
/// Production runs with none set: each point is one nil check.
public struct ServiceFaults: Sendable {
    /// After a commit wrote events of these types to the outbox, before the relay is woken to
    /// publish them: the window the outbox exists for.
    public var afterCommit: (@Sendable (_ types: [String]) -> Void)?
    /// After the broker acknowledged events of these types, before the relay deletes them from
    /// the outbox: the window `OutboxTakeover` closes.
    public var afterPublish: (@Sendable (_ types: [String]) -> Void)?

    public init(
        afterCommit: (@Sendable (_ types: [String]) -> Void)? = nil, afterPublish: (@Sendable (_ types: [String]) -> Void)? = nil
    ) {
        self.afterCommit = afterCommit
        self.afterPublish = afterPublish
    }
}
