/// A partition assignment change, as seen during one `poll`.
public enum RebalanceEvent: Sendable, Equatable {
    case assigned([TopicPartition])
    case revoked([TopicPartition])
}

/// What one `poll` returned: messages in partition order, and any rebalance that happened
/// while polling. Rebalances are only served inside `poll`, so a caller that commits
/// everything it polled before polling again never has uncommitted work revoked.
public struct PollResult: Sendable {
    public var messages: [KafkaMessage]
    public var rebalances: [RebalanceEvent]
    /// For each partition revoked during the poll, how many of `messages` had been taken when it
    /// was last revoked: its messages before that index belong to the assignment that ended
    /// (whoever owns the partition now fetches them again from the last commit); its messages
    /// after it were fetched after it was assigned back.
    public var revokedAt: [TopicPartition: Int] = [:]

    public init(messages: [KafkaMessage], rebalances: [RebalanceEvent], revokedAt: [TopicPartition: Int] = [:]) {
        self.messages = messages
        self.rebalances = rebalances
        self.revokedAt = revokedAt
    }

    /// The messages of the assignment in force when the poll returned.
    public var current: [KafkaMessage] {
        guard !revokedAt.isEmpty else { return messages }
        return messages.indices.compactMap { i in
            let m = messages[i]
            return i < (revokedAt[m.topicPartition] ?? 0) ? nil : m
        }
    }
}
