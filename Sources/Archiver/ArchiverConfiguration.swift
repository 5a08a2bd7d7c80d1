import Events
import Kafka

/// Everything `archiver run` needs; the CLI fills it from flags and the environment.
public struct ArchiverConfiguration: Sendable {
    public var kafka: KafkaConfiguration
    public var mongoURI: String
    public var database: String
    public var groupID: String
    /// The kinds of history to keep: the contract's, unless a test brings its own.
    public var kinds = HistoryKinds.builtIn
    public var topics: [String] = HistoryKinds.builtIn.topics
    /// Contract names; settable so tests can run side by side on one broker.
    public var deadLetterTopic = Topic.deadLetters
    public var compensationTopic = Topic.compensation
    /// Events per batch: one bulk write per collection per batch.
    public var batchSize = 1_000
    /// How long a poll waits for a first message before the loop looks around (shutdown, lag).
    public var pollTimeoutMs = 100
    public var retryInitialMs = 100
    public var retryMaxMs = 5_000
    /// After SIGTERM, how long a batch stuck on an unreachable server may still be retried.
    public var shutdownGraceMs = 10_000
    public var sessionTimeoutMs = 10_000
    public var maxPollIntervalMs = 300_000

    public init(kafka: KafkaConfiguration, mongoURI: String, database: String, groupID: String) {
        self.kafka = kafka
        self.mongoURI = mongoURI
        self.database = database
        self.groupID = groupID
    }
}
