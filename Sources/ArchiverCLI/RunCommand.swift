import AdminServer
import Archiver
import ArgumentParser
import CLISupport
import Foundation
import Logging
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "The sidecar: consume, archive, compensate, dead-letter; admin HTTP on the admin port.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Consumer group (env ARCHIVER_GROUP, default history-archiver).")
    var group: String?

    @Option(help: "Admin HTTP port for /healthz, /readyz, /metrics (env ARCHIVER_ADMIN_PORT, default 9464).")
    var adminPort: Int?

    @Option(help: "Admin HTTP bind address.")
    var adminHost = "0.0.0.0"

    @Option(help: "Events per batch (one bulk write per collection per batch).")
    var batchSize = 1_000

    @Option(help: "Kafka session timeout in ms (lower it for fast failover in tests).")
    var sessionTimeoutMs = 10_000

    @Option(help: "Kafka max.poll.interval.ms.")
    var maxPollIntervalMs = 300_000

    @Option(help: "Longest wait between retries while a server is unreachable, in ms.")
    var retryMaxMs = 5_000

    @Option(help: "Topics to archive from, comma-separated (default: the contract's).")
    var topics = HistoryKinds.builtIn.topics.joined(separator: ",")

    @Option(help: "Dead-letter topic.")
    var deadLetterTopic = "archive.dlq"

    @Option(help: "Topic for archive.history.deleted events.")
    var compensationTopic = "archive.compensation"

    func validate() throws {
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1-100000, got \(batchSize)") }
        guard (1...3_600_000).contains(retryMaxMs) else { throw ValidationError("--retry-max-ms must be 1-3600000, got \(retryMaxMs)") }
        guard (1...3_600_000).contains(sessionTimeoutMs) else {
            throw ValidationError("--session-timeout-ms must be 1-3600000, got \(sessionTimeoutMs)")
        }
        guard (1...86_400_000).contains(maxPollIntervalMs) else {
            throw ValidationError("--max-poll-interval-ms must be 1-86400000, got \(maxPollIntervalMs)")
        }
    }

    func run() async throws {
        CLILogging.bootstrap(default: .info)
        let logger = Logger(label: "archiver")
        let port = try ConnectionOptions.port(adminPort, "ARCHIVER_ADMIN_PORT", 9464)
        var config = ArchiverConfiguration(
            kafka: try connection.kafka, mongoURI: try connection.resolvedMongoURI,
            database: try connection.resolvedDatabase,
            groupID: ConnectionOptions.value(group, "ARCHIVER_GROUP", "history-archiver"))
        config.batchSize = batchSize
        config.sessionTimeoutMs = sessionTimeoutMs
        config.maxPollIntervalMs = maxPollIntervalMs
        config.retryMaxMs = retryMaxMs
        config.topics = topics.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces)) }
        config.deadLetterTopic = deadLetterTopic
        config.compensationTopic = compensationTopic
        let tracing: (any Service)?
        do { tracing = try TracingBootstrap.bootstrap(serviceName: "archiver", logger: logger) } catch {
            throw ValidationError("OpenTelemetry tracing: \(error)")
        }
        let registry = AdminServer.bootstrapMetrics()
        let archiver = try await Archiver(configuration: config, logger: logger, registry: registry)
        let admin = AdminServer.application(
            host: adminHost, port: port, registry: registry,
            readiness: {
                let s = archiver.status.snapshot
                return AdminServer.Readiness(ready: s.ready, detail: s.detail)
            }, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                // The exporter first: shut down last, it flushes the spans of everything after it.
                // Tracing that fails stops only tracing.
                services: (tracing.map { [.init(service: $0, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore)] } ?? [])
                    + [
                        .init(
                            service: archiver, successTerminationBehavior: .gracefullyShutdownGroup,
                            failureTerminationBehavior: .gracefullyShutdownGroup),
                        // A port already taken must stop the process with that error, not leave it running unobservable.
                        .init(service: admin, failureTerminationBehavior: .gracefullyShutdownGroup),
                    ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Create the history collections and their indexes.")

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        CLILogging.bootstrap(default: .warning)
        let store = try await HistoryConnection.open(connection)
        try await store.migrate()
        print("migrated database '\(store.database.name)': \(store.kinds.collections.joined(separator: ", ")) and their indexes")
    }
}
