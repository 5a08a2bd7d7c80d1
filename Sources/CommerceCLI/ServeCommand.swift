import AdminServer
import ArgumentParser
import CLISupport
import CommerceAPI
import CommerceServer
import Foundation
import Hummingbird
import Kafka
import Logging
import PostgresStore
import Prometheus
import SQLStore
import SQLiteStore
import ServiceLifecycle
import ServiceRuntime

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run domain services: HTTP API and Kafka consumers.")

    @Argument(help: "\(ServiceCatalog.names) or all.")
    var service = "all"

    @OptionGroup var kafkaOptions: KafkaOptions

    @OptionGroup var authOptions: AuthOptions

    @Option(help: "HTTP port (env COMMERCE_HTTP_PORT, default 8080).")
    var httpPort: Int?

    @Option(help: "HTTP bind address (env COMMERCE_HTTP_HOST, default 127.0.0.1; 0.0.0.0 in containers).")
    var httpHost: String?

    @Option(
        help:
            "Serve /healthz and /metrics on this port instead of the API's (env COMMERCE_OPS_PORT; default: on the API's port, needing no token)."
    )
    var opsPort: Int?

    @Option(help: "The bind address of --ops-port (env COMMERCE_OPS_HOST, default 127.0.0.1).")
    var opsHost: String?

    @Option(help: "Folder of the services' SQLite files (env COMMERCE_DATA_DIR, default ./data); one process per folder.")
    var dataDir: String?

    @Option(
        help: """
            PostgreSQL instead of SQLite: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=require|verify-ca|verify-full&sslrootcert=FILE] \
            (env COMMERCE_DATABASE_URL). \
            Each service keeps its tables in schema <service>_service; any number of processes of a service may share it.
            """)
    var databaseURL: String?

    @Option(help: "A file whose one line is the PostgreSQL URL (env COMMERCE_DATABASE_URL_FILE): keeps a password out of process arguments.")
    var databaseURLFile: String?

    @Option(
        help:
            "Injected failures, step=rate or step=sagaId, comma-separated (env COMMERCE_FAULTS). Steps: \(FaultPlan.steps.joined(separator: ", ")), *."
    )
    var fault: String?

    @Option(help: "Prefix for every topic and consumer group (env COMMERCE_TOPIC_PREFIX); for isolated test runs.")
    var topicPrefix: String?

    @Option(
        help:
            "Most requests waiting at once in long polls (waitFor/timeoutMs) in this process; more get a 503 (env COMMERCE_MAX_WAITERS, default \(ChangeWaiters.defaultLimit))."
    )
    var maxWaiters: Int?

    @Option(
        help:
            "Hours an applied event's id stays in the inbox, dropping redeliveries (env COMMERCE_INBOX_RETENTION_HOURS, default 168: Kafka's own retention)."
    )
    var inboxRetentionHours: Int?

    @Option(help: "Hours an Idempotency-Key's answer is kept for retries (env COMMERCE_IDEMPOTENCY_KEY_RETENTION_HOURS, default 24).")
    var idempotencyKeyRetentionHours: Int?

    /// Event types after whose commit the process exits at once (`ServiceFaults.crashing`); for tests.
    @Option(help: .hidden)
    var crashAfterCommit: [String] = []

    /// Event types after whose acknowledgement by the broker the process exits at once; for tests.
    @Option(help: .hidden)
    var crashAfterPublish: [String] = []

    /// How long an outbox relay's read of what is already on the topics may take; tests shorten it.
    @Option(help: .hidden)
    var outboxReadTimeoutMs: Int?

    func validate() throws {
        guard service == "all" || ServiceCatalog(rawValue: service) != nil else {
            throw ValidationError("service must be \(ServiceCatalog.names) or all, got '\(service)'")
        }
    }

    func run() async throws {
        CLILogging.bootstrap(default: .info)
        let logger = Logger(label: "commerce")
        let port = try Settings.port(httpPort, "--http-port", "COMMERCE_HTTP_PORT", 8080)
        let host = Settings.value(httpHost, "COMMERCE_HTTP_HOST", "127.0.0.1")
        let directory = Settings.value(dataDir, "COMMERCE_DATA_DIR", "./data")
        let prefix = Settings.value(topicPrefix, "COMMERCE_TOPIC_PREFIX", "")
        let faults: FaultPlan
        do { faults = try FaultPlan(parsing: Settings.value(fault, "COMMERCE_FAULTS", "")) } catch { throw ValidationError("\(error)") }
        let kafka = try kafkaOptions.configuration
        let waiterLimit = try Settings.integer(maxWaiters, "--max-waiters", "COMMERCE_MAX_WAITERS", ChangeWaiters.defaultLimit, range: 0...1_000_000)
        let retention = Retention(
            inbox: .seconds(
                3600
                    * (try Settings.integer(inboxRetentionHours, "--inbox-retention-hours", "COMMERCE_INBOX_RETENTION_HOURS", 168, range: 1...87_600))
            ),
            idempotencyKeys: .seconds(
                3600
                    * (try Settings.integer(
                        idempotencyKeyRetentionHours, "--idempotency-key-retention-hours", "COMMERCE_IDEMPOTENCY_KEY_RETENTION_HOURS", 24,
                        range: 1...87_600))))

        let served = service == "all" ? ServiceCatalog.allCases : [try ServiceCatalog(named: service)]
        let keys = KeySpace()  // one HTTP port, one space of Idempotency-Keys
        let waiters = ChangeWaiters(limit: waiterLimit)  // one bound on long polls per process
        let postgres: PostgresURL?
        do {
            postgres = try Settings.secret(databaseURL, "--database-url", file: databaseURLFile, "COMMERCE_DATABASE_URL").map(PostgresURL.init)
        } catch {
            throw ValidationError("\(error)")
        }
        let authentication = try await authOptions.authentication(address: "\(host):\(port)", logger: logger)
        let operations = try Settings.optional(opsPort.map(String.init), "COMMERCE_OPS_PORT").map { _ in
            (host: Settings.value(opsHost, "COMMERCE_OPS_HOST", "127.0.0.1"), port: try Settings.port(opsPort, "--ops-port", "COMMERCE_OPS_PORT", 0))
        }
        var stores: [any SQLStore] = []
        do {
            try await serve(
                &stores, served: served, postgres: postgres, directory: directory, faults: faults, prefix: prefix, keys: keys,
                waiters: waiters, kafka: kafka, retention: retention, authentication: authentication, host: host, port: port,
                operations: operations, logger: logger)
        } catch {
            for store in stores { await store.close() }
            throw error
        }
        // PostgreSQL connections are closed, not dropped, before the process ends.
        for store in stores { await store.close() }
    }

    private func serve(
        _ stores: inout [any SQLStore], served: [ServiceCatalog], postgres: PostgresURL?, directory: String, faults: FaultPlan, prefix: String,
        keys: KeySpace, waiters: ChangeWaiters, kafka: KafkaConfiguration, retention: Retention, authentication: Authentication,
        host: String, port: Int, operations: (host: String, port: Int)?, logger: Logger
    ) async throws {
        var nodes: [ServiceNode] = []
        let crashes = ServiceFaults.crashing(afterCommitOf: Set(crashAfterCommit), afterPublishOf: Set(crashAfterPublish))
        // One registry for the process: every service's series, and the HTTP API's, on /metrics.
        let registry = PrometheusCollectorRegistry()
        for entry in served {
            let name = entry.rawValue
            let metrics = ServiceMetrics(service: name, registry: registry)
            let store: any SQLStore
            let place: String
            if let postgres {
                store = PostgresStore(url: postgres, schema: "\(name)_service", logger: logger, conflictRetried: metrics.conflictRetried)
                place = "schema \(name)_service of \(postgres)"
            } else {
                store = try SQLiteStore(path: "\(directory)/\(name).sqlite")
                place = "'\(directory)'"
            }
            stores.append(store)
            // A shared database that is not up yet (starting with it, or restarting) is waited for a minute.
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                do {
                    nodes.append(
                        try await ServiceNode(
                            service: entry.makeService(), store: store, faults: faults, topicPrefix: prefix,
                            testFaults: crashes, keySpace: keys, waiters: waiters,
                            metrics: metrics, logger: logger))
                    break
                } catch let error as SQLError where error.isTransient && ContinuousClock.now < deadline {
                    logger.warning("database unreachable, retrying", metadata: ["service": "\(name)", "error": "\(error)"])
                    try await Task.sleep(for: .seconds(1))
                } catch { throw ValidationError("cannot open the \(name) database in \(place): \(error)") }
            }
        }
        let messaging = try ServiceHost(
            nodes: nodes, kafka: kafka, groupPrefix: "commerce-\(prefix)",
            outboxReadTimeout: outboxReadTimeoutMs.map { .milliseconds(max($0, 1)) } ?? OutboxTakeover.readTimeout, retention: retention,
            logger: logger)
        do { try await messaging.prepare(kafka: kafka) } catch { throw ValidationError("Kafka unreachable at \(kafka.brokers): \(error)") }

        let tracing: (any Service)?
        do { tracing = try TracingBootstrap.bootstrap(serviceName: service == "all" ? "commerce" : "commerce-\(service)", logger: logger) } catch {
            throw ValidationError("OpenTelemetry tracing: \(error)")
        }
        let failure: @Sendable () -> String? = { messaging.failure.map { "\($0)" } }
        let router = try CommerceRouter.make(
            nodes: nodes, registry: registry, authentication: authentication, operationsApart: operations != nil, failure: failure)
        let http = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "commerce"), logger: logger)
        let operationsServer = operations.map { address in
            ServiceGroupConfiguration.ServiceConfiguration(
                service: AdminServer.Addressed(
                    Application(
                        router: CommerceRouter.makeOperations(nodes: nodes, registry: registry, failure: failure),
                        configuration: .init(address: .hostname(address.host, port: address.port), serverName: "commerce-ops"), logger: logger),
                    name: "health and metrics", address: "\(address.host):\(address.port)"),
                failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        if !faults.isEmpty { logger.warning("fault injection on", metadata: ["faults": "\(faults)"]) }
        let group = ServiceGroup(
            configuration: .init(
                // The exporter first: shut down last, it flushes the spans of everything after it.
                // Tracing that fails stops only tracing.
                services: (tracing.map { [.init(service: $0, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore)] } ?? [])
                    + [
                        .init(
                            service: messaging, successTerminationBehavior: .gracefullyShutdownGroup,
                            failureTerminationBehavior: .gracefullyShutdownGroup
                        ),
                        .init(
                            service: AdminServer.Addressed(http, name: "HTTP API", address: "\(host):\(port)"),
                            failureTerminationBehavior: .gracefullyShutdownGroup),
                    ] + (operationsServer.map { [$0] } ?? []),
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do { try await group.run() } catch is ServiceHost.Failure {
            throw ExitCode(1)  // the error was logged when it happened
        }
    }
}
