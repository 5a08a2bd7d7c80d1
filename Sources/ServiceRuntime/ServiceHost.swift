import Events
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the messaging side of one or more domain services in one process: a consumer
/// and an outbox relay per service, one idempotent producer for all. On SIGTERM (or
/// cancellation) consumers finish their batch and commit, then relays publish what is
/// left and the producer flushes.
public final class ServiceHost: Service, Sendable {
    public let nodes: [ServiceNode]
    private let producer: KafkaProducer
    private let consumers: [InboxConsumer]
    private let relays: [OutboxRelay]
    private let stopped = Atomic(false)
    private let logger: Logger

    /// - Parameter groupPrefix: consumer groups are `<prefix><service>`; tests give each run its own.
    public init(nodes: [ServiceNode], kafka: KafkaConfiguration, groupPrefix: String = "commerce-", logger: Logger) throws {
        self.nodes = nodes
        self.logger = logger
        producer = try KafkaProducer(configuration: kafka, logger: logger)
        consumers = try nodes.map { try InboxConsumer(node: $0, connection: kafka, groupPrefix: groupPrefix, logger: logger) }
        relays = nodes.map { [producer] in OutboxRelay(node: $0, producer: producer, logger: logger) }
    }

    /// Fails with a clear error when the broker cannot be reached, instead of waiting silently;
    /// creates the topics the services use if they are missing (4 partitions).
    public func prepare(kafka: KafkaConfiguration) async throws {
        try await producer.checkConnection()
        let topics = Set(nodes.flatMap { node in [Topic.order, Topic.product, Topic.balance, Topic.payment].map { node.topicPrefix + $0 } })
        do {
            try await KafkaAdmin(configuration: kafka, logger: logger).createTopics(topics.sorted(), partitions: 4)
        } catch {
            logger.warning("could not create topics; they must exist already", metadata: ["error": "\(error)"])
        }
    }

    public func stop() { stopped.store(true, ordering: .relaxed) }
    private var isStopped: Bool { stopped.load(ordering: .relaxed) }

    public func run() async throws {
        logger.info("services started", metadata: ["services": "\(nodes.map(\.name))"])
        let relayTask = Task { [relays] in
            await withDiscardingTaskGroup { group in
                for relay in relays { group.addTask { await relay.run() } }
            }
        }
        // A periodic wake-up publishes what an earlier process committed but never sent.
        let ticker = Task { [nodes] in
            while !Task.isCancelled {
                for node in nodes { node.wakeRelayPeriodically() }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        var failure: (any Error)?
        do {
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await withThrowingDiscardingTaskGroup { group in
                        for consumer in consumers {
                            group.addTask { try await consumer.run { self.isStopped } }
                        }
                    }
                } onGracefulShutdown: { self.stop() }
            } onCancel: { self.stop() }
        } catch {
            failure = error
        }
        ticker.cancel()
        for node in nodes { node.finishRelay() }
        await relayTask.value
        await producer.close()
        logger.info("services stopped", metadata: ["services": "\(nodes.map(\.name))"])
        if let failure { throw failure }
    }
}
