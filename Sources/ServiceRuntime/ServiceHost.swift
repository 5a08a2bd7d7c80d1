import Events
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the messaging side of one or more domain services in one process: a consumer
/// and an outbox relay per service, one idempotent producer for all. On SIGTERM (or
/// cancellation) consumers finish their batch and commit, then relays publish what is
/// left and the producer flushes.
///
/// When a consumer or relay fails with an error that is not about one event (its database
/// is broken, the broker connection is fatally lost), that service's saga steps have stopped
/// for good: the failure is logged once, `failure` is set (so /healthz turns 503), everything
/// stops as on SIGTERM and `run` throws, so the process exits non-zero and its supervisor
/// restarts it, instead of a process that answers HTTP while a service is dead inside it.
public final class ServiceHost: Service, Sendable {
    public let nodes: [ServiceNode]
    private let producer: KafkaProducer
    private let consumers: [InboxConsumer]
    private let relays: [OutboxRelay]
    private let retention: Retention
    private let stopped = Atomic(false)
    private let failed = Mutex<Failure?>(nil)
    private let failureGrace: Duration?
    private let logger: Logger

    /// Which service stopped the process; the error itself was logged when it happened.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let service: String
        /// "consumer" or "outbox relay".
        public let part: String
        public var description: String { "the \(service) \(part) failed" }
    }

    /// - Parameters:
    ///   - groupPrefix: consumer groups are `<prefix><service>`; tests give each run its own.
    ///   - failureGrace: after a failure, the process exits (status 1) if stopping takes longer
    ///     than this, e.g. a final publish waiting for an unreachable broker; nil waits.
    ///   - outboxReadTimeout: how long a relay's read of what is already on the topics may take
    ///     (`OutboxTakeover`); tests shorten it to reach the relay's fallback.
    public init(
        nodes: [ServiceNode], kafka: KafkaConfiguration, groupPrefix: String = "commerce-",
        failureGrace: Duration? = .seconds(10), outboxReadTimeout: Duration = OutboxTakeover.readTimeout, retention: Retention = Retention(),
        logger: Logger
    ) throws {
        self.nodes = nodes
        self.retention = retention
        self.failureGrace = failureGrace
        self.logger = logger
        producer = try KafkaProducer(configuration: kafka, logger: logger)
        consumers = try nodes.map { try InboxConsumer(node: $0, connection: kafka, groupPrefix: groupPrefix, logger: logger) }
        relays = nodes.map { [producer] in
            OutboxRelay(node: $0, producer: producer, connection: kafka, readTimeout: outboxReadTimeout, logger: logger)
        }
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

    /// How often the outbox gauges are read.
    static let outboxSampling: Duration = .seconds(5)

    public func stop() { stopped.store(true, ordering: .relaxed) }
    private var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Set by the first consumer or relay that failed; nil while all work.
    public var failure: Failure? { failed.withLock { $0 } }

    public func run() async throws {
        logger.info("services started", metadata: ["services": "\(nodes.map(\.name))"])
        let relayTask = Task { [relays] in
            await withDiscardingTaskGroup { group in
                for relay in relays {
                    group.addTask {
                        do { try await relay.run { self.isStopped } } catch { self.fail(relay.node, "outbox relay", error) }
                    }
                }
            }
        }
        // A periodic wake-up publishes what an earlier process committed but never sent.
        let ticker = Task { [nodes] in
            while !Task.isCancelled {
                for node in nodes { node.wakeRelayPeriodically() }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let pruning = Task { [nodes, retention, logger] in await retention.run(nodes, logger: logger) }
        // The outbox gauges: a count of each service's outbox now and then (not per scrape, so
        // scrapes cost the database nothing).
        let sampling = Task { [nodes, logger] in
            while !Task.isCancelled {
                for node in nodes {
                    do { try await node.sampleOutbox() } catch {
                        logger.debug("outbox gauges not read", metadata: ["service": "\(node.name)", "error": "\(error)"])
                    }
                }
                try? await Task.sleep(for: Self.outboxSampling)
            }
        }
        // Each consumer's failure is caught here, not left to a throwing group: the group's
        // cancellation would not stop the other consumers, which end only when `stopped` is set.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    for consumer in consumers {
                        group.addTask {
                            do { try await consumer.run { self.isStopped } } catch { self.fail(consumer.node, "consumer", error) }
                        }
                    }
                }
            } onGracefulShutdown: {
                self.stop()
            }
        } onCancel: {
            self.stop()
        }
        ticker.cancel()
        pruning.cancel()
        sampling.cancel()
        for node in nodes { node.finishRelay() }
        await relayTask.value
        await producer.close()
        logger.info("services stopped", metadata: ["services": "\(nodes.map(\.name))"])
        if let failure { throw failure }
    }

    /// Logs the first failure, stops everything; later ones (often the same broken database
    /// seen by another part while stopping) are only debug lines.
    private func fail(_ node: ServiceNode, _ part: String, _ error: any Error) {
        let first = failed.withLock { failure in
            guard failure == nil else { return false }
            failure = Failure(service: node.name, part: part)
            return true
        }
        guard first else {
            logger.debug("failure while stopping", metadata: ["service": "\(node.name)", "part": "\(part)", "error": "\(error)"])
            return
        }
        logger.error(
            "\(node.name) \(part) failed; stopping the process so that it is restarted",
            metadata: ["service": "\(node.name)", "part": "\(part)", "error": "\(error)"])
        stop()
        guard let failureGrace else { return }
        // A thread, not a task: it must fire even if every cooperative thread is stuck.
        Thread.detachNewThread { [logger] in
            Thread.sleep(forTimeInterval: Double(failureGrace.components.seconds))
            logger.error("still stopping \(failureGrace) after the failure; exiting now")
            _exit(1)
        }
    }
}
