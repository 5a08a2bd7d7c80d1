import Archiver
import Foundation
import Kafka
import Logging
import Mongo
import PostgresStore
import SQLStore
import SQLiteStore
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

let brokers = ProcessInfo.processInfo.environment["KAFKA_BROKERS"] ?? "127.0.0.1:21092"
let mongoURI = ProcessInfo.processInfo.environment["MONGO_URI"] ?? "mongodb://127.0.0.1:21017"

/// `commerce serve all` as a real process (or several, on PostgreSQL), plus an archiver in this
/// process (or, exporting traces, an `archiver run` process), on the real broker and Mongo-wire server. Each scenario has its own topic prefix,
/// data folder or PostgreSQL database, consumer groups and history database, so scenarios run
/// side by side.
final class CommerceScenario: @unchecked Sendable {
    private let slot: Slots.Token
    let id: String
    var prefix: String { "c\(id)." }
    var database: String { "c_\(id)" }
    let backend: Backend
    let dataDir: String
    /// The HTTP port of the first process; the scenario's calls go there unless told otherwise.
    var port: Int { ports[0] }
    /// One per process: `replicas` processes of `serve all` share the PostgreSQL database.
    let ports: [Int]
    /// The first process.
    var services: ChildProcess {
        get { replicas[0] }
        set { replicas[0] = newValue }
    }
    var replicas: [ChildProcess]
    /// The archiver in this process; nil when it runs as a process (`archiverProcess`).
    let archiver: Archiver?
    let archiverTask: Task<Void, Error>?
    var archiverProcess: ChildProcess?
    /// Added to the environment of every process this scenario starts.
    let environment: [String: String]
    let store: HistoryStore

    /// Flags given to every `serve all` this scenario starts, besides its own.
    let extraArguments: [String]

    init(
        backend: Backend = .sqlite, replicas count: Int = 1, faults: String? = nil, crashAfterCommit: String? = nil, crashAfterPublish: String? = nil,
        extraArguments: [String] = [], tracesTo otlpEndpoint: String? = nil, databasePorts: [Int: Int] = [:]
    ) async throws {
        precondition(count == 1 || backend == .postgres, "replicas of one SQLite folder are not a thing")
        slot = await Slots.scenarios.take()
        let id = String(UUID().uuidString.prefix(8).lowercased())
        self.id = id
        self.backend = backend
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("commerce-\(id)").path
        if backend == .postgres { try await Backend.admin("CREATE DATABASE c_\(id)") }
        // The tests' token settings first: a scenario's own flags (`--auth none`) come later and win.
        self.extraArguments =
            (try await TestTokens.shared.serveArguments()) + extraArguments
            + (backend == .postgres ? ["--database-url", Backend.url(of: "c_\(id)")] : ["--data-dir", dataDir])
        ports = (0..<count).map { _ in freePort() }
        store = HistoryStore(database: try MongoClient(uri: mongoURI).database("c_\(id)"))
        replicas = []
        var config = ArchiverConfiguration(
            kafka: KafkaConfiguration(brokers: brokers), mongoURI: mongoURI, database: "c_\(id)", groupID: "c-\(id)-archiver")
        config.topics = ["c\(id).commerce.balance", "c\(id).commerce.payment", "c\(id).commerce.order"]
        config.deadLetterTopic = "c\(id).archive.dlq"
        config.compensationTopic = "c\(id).archive.compensation"
        config.sessionTimeoutMs = 6_000
        config.retryMaxMs = 500
        try await KafkaAdmin(configuration: KafkaConfiguration(brokers: brokers)).createTopics(
            ["commerce.order", "commerce.product", "commerce.balance", "commerce.payment", "archive.dlq", "archive.compensation"].map {
                "c\(id).\($0)"
            },
            partitions: 4)
        // Spans are exported by processes: the tracer is global, and this one runs every test.
        environment =
            otlpEndpoint.map {
                [
                    "OTEL_EXPORTER_OTLP_ENDPOINT": $0, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_BSP_SCHEDULE_DELAY": "100",
                    // Whatever the runner has set of these must not redirect or turn off the export.
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "", "OTEL_SDK_DISABLED": "",
                    "OTEL_TRACES_EXPORTER": "", "OTEL_TRACES_SAMPLER": "", "OTEL_PROPAGATORS": "",
                ]
            } ?? [:]
        if otlpEndpoint == nil {
            let archiver = try await Archiver(configuration: config, logger: Logger(label: "archiver"))
            self.archiver = archiver
            archiverTask = Task { try await archiver.run() }
        } else {
            (archiver, archiverTask) = (nil, nil)
        }
        // Last, so that nothing before can fail with processes left running.
        do {
            if otlpEndpoint != nil {
                archiverProcess = try ChildProcess(
                    executable: binary("archiver"),
                    arguments: [
                        "run", "--brokers", brokers, "--mongo-uri", mongoURI, "--database", "c_\(id)", "--group", "c-\(id)-archiver",
                        "--admin-host", "127.0.0.1", "--admin-port", "\(freePort())", "--topics", config.topics.joined(separator: ","),
                        "--dead-letter-topic", config.deadLetterTopic, "--compensation-topic", config.compensationTopic,
                        "--session-timeout-ms", "6000", "--retry-max-ms", "500",
                    ], logName: "archiver-\(id)", environment: environment)
            }
            for (index, port) in ports.enumerated() {
                var extra = self.extraArguments
                // This process reaches PostgreSQL on another port (a proxy's).
                if let databasePort = databasePorts[index], let flag = extra.firstIndex(of: "--database-url"),
                    var url = URLComponents(string: extra[flag + 1])
                {
                    url.port = databasePort
                    extra[flag + 1] = url.string ?? extra[flag + 1]
                }
                replicas.append(
                    try Self.launch(
                        id: id, port: port, faults: faults, crashAfterCommit: crashAfterCommit, crashAfterPublish: crashAfterPublish,
                        extra: extra, environment: environment))
            }
        } catch {
            await finish()
            throw error
        }
        for (port, process) in zip(ports, replicas) {
            #expect(try await eventually { await ChildProcess.get("http://127.0.0.1:\(port)/healthz")?.0 == 200 }, "\(process.output)")
        }
    }

    static func launch(
        id: String, port: Int, faults: String?, crashAfterCommit: String?, crashAfterPublish: String? = nil, extra: [String],
        environment: [String: String] = [:]
    ) throws -> ChildProcess {
        var arguments = ["serve", "all", "--http-port", "\(port)", "--topic-prefix", "c\(id).", "--brokers", brokers] + extra
        if let faults { arguments += ["--fault", faults] }
        if let crashAfterCommit { arguments += ["--crash-after-commit", crashAfterCommit] }
        if let crashAfterPublish { arguments += ["--crash-after-publish", crashAfterPublish] }
        return try ChildProcess(executable: binary("commerce"), arguments: arguments, logName: "commerce-\(id)", environment: environment)
    }

    /// The services process exited on purpose (status 70) after `what` ("committing TYPE" or
    /// "publishing TYPE"), as a `--crash-after-...` flag asked.
    func expectCrashedOnPurpose(after what: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        #expect(
            try await eventually { !services.process.isRunning }, "the process crashed on purpose: \(services.output)", sourceLocation: sourceLocation
        )
        #expect(services.process.terminationStatus == 70, sourceLocation: sourceLocation)
        #expect(services.output.contains("crashing on purpose after \(what)"), "\(services.output)", sourceLocation: sourceLocation)
    }

    func restartServices() async throws {
        try await stopServices()
        try await startServices()
    }

    /// SIGTERM, and waits for the exit.
    func stopServices() async throws {
        services.terminate()
        await services.waitForExit()
    }

    /// A new first process on the same data, port and topics, without faults.
    func startServices(waitUntilHealthy: Bool = true) async throws {
        try await startReplica(0, waitUntilHealthy: waitUntilHealthy)
    }

    /// A new process `index` on the same data, port and topics, without faults.
    func startReplica(_ index: Int, waitUntilHealthy: Bool = true) async throws {
        replicas[index] = try Self.launch(
            id: id, port: ports[index], faults: nil, crashAfterCommit: nil, extra: extraArguments, environment: environment)
        guard waitUntilHealthy else { return }
        let (port, process) = (ports[index], replicas[index])
        #expect(try await eventually { await ChildProcess.get("http://127.0.0.1:\(port)/healthz")?.0 == 200 }, "\(process.output)")
    }

    /// A test that threw before `finish` still stops its processes (the slot goes with `slot`).
    deinit {
        for process in replicas + [archiverProcess].compactMap({ $0 }) where process.process.isRunning { process.process.terminate() }
    }

    func finish() async {
        let processes = replicas + [archiverProcess].compactMap { $0 }
        for process in processes { process.terminate() }
        for process in processes { await process.waitForExit() }
        archiver?.stop()
        _ = try? await archiverTask?.value
        try? await store.database.drop()
        try? FileManager.default.removeItem(atPath: dataDir)
        if backend == .postgres { try? await Backend.admin("DROP DATABASE IF EXISTS c_\(id) WITH (FORCE)") }
        slot.release()
    }

    /// The reasons kept in a service's `rejected_events`, oldest first, from whichever store it uses.
    func rejectedReasons(_ service: String) async throws -> [String] {
        try await read(service) { db in
            try db.rows("SELECT error FROM rejected_events ORDER BY rejected_at, \"offset\"").map { try $0["error"] as String }
        }
    }

    /// A read of a service's own database, whichever store it uses.
    func read<T: Sendable>(_ service: String, _ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        let store: any SQLStore =
            backend == .postgres
            ? PostgresStore(
                url: try PostgresURL(Backend.url(of: database)), schema: "\(service)_service", connections: 1, logger: Logger(label: "test"))
            : try SQLiteStore(path: "\(dataDir)/\(service).sqlite")
        defer { Task { await store.close() } }
        return try await store.read(body)
    }

    // MARK: HTTP

    /// A request to the first process, or to process `replica`, acting as `who` (by default an
    /// operator, who may do everything; nil sends no token).
    @discardableResult
    func call(
        _ method: String, _ path: String, _ body: [String: Any]? = nil, headers: [String: String] = [:], replica: Int = 0,
        as who: TestTokens.Who? = .operator
    ) async throws -> (status: Int, json: [String: Any]) {
        let answer = try await exchange(method, path, body, headers: headers, replica: replica, as: who)
        return (answer.status, answer.json)
    }

    /// `call`, with the response's headers.
    func exchange(
        _ method: String, _ path: String, _ body: [String: Any]? = nil, headers: [String: String] = [:], replica: Int = 0,
        as who: TestTokens.Who? = .operator
    ) async throws -> (status: Int, json: [String: Any], response: HTTPURLResponse?) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(ports[replica])\(path)")!)
        request.httpMethod = method
        if let who { request.setValue("Bearer \(try await TestTokens.shared.token(who))", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        let http = response as? HTTPURLResponse
        return (http?.statusCode ?? 0, json, http)
    }

    func raw(_ method: String, _ path: String, body: String) async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.setValue("Bearer \(try await TestTokens.shared.token(.operator))", forHTTPHeaderField: "Authorization")
        request.httpBody = Data(body.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    func int(_ path: String, _ key: String) async throws -> Int64? { (try await call("GET", path).json[key] as? NSNumber)?.int64Value }
    func string(_ path: String, _ key: String) async throws -> String? { try await call("GET", path).json[key] as? String }

    // MARK: Shop

    /// A product with `stock`, a user charged `balance`, and `quantity` of the product in the cart.
    func shop(price: Int64 = 1_000, stock: Int64 = 10, balance: Int64 = 100_000, quantity: Int64 = 2, user: Int64 = 1) async throws -> Int64 {
        let product = try await call("POST", "/products", ["name": "widget", "price": price, "stock": stock])
        let productId = (product.json["id"] as! NSNumber).int64Value
        try await call("POST", "/users/\(user)/charge", ["amount": balance])
        try await call("POST", "/users/\(user)/cart", ["productId": productId, "quantity": quantity])
        return productId
    }

    func order(user: Int64 = 1, product: Int64, quantity: Int64 = 2) async throws -> Int64 {
        let r = try await call("POST", "/orders", ["userId": user, "items": [["productId": product, "quantity": quantity]]])
        #expect(r.status == 202)
        return (r.json["orderId"] as! NSNumber).int64Value
    }

    /// Waits for the order to leave PENDING; returns its status.
    func settledOrder(_ id: Int64) async throws -> String? {
        _ = try await eventually { try await self.string("/orders/\(id)", "status") != "PENDING" }
        return try await string("/orders/\(id)", "status")
    }

    /// An order that is placed, then its payment failing at the user service's step (too little
    /// balance), so the archiver compensates: each request sent with its own `traceparent`.
    func placedOrderAndFailedPayment(orderTrace: String, paymentTrace: String) async throws -> (order: Int64, payment: Int64) {
        let product = try await shop(price: 2_000, balance: 1_000)
        let ordered = try await call(
            "POST", "/orders", ["userId": 1, "items": [["productId": product, "quantity": 2]]], headers: ["traceparent": orderTrace])
        let order = try #require((ordered.json["orderId"] as? NSNumber)?.int64Value)
        #expect(try await settledOrder(order) == "PLACED")
        let paid = try await call("POST", "/payments", ["orderId": order, "userId": 1, "amount": 4_000], headers: ["traceparent": paymentTrace])
        let payment = try #require((paid.json["paymentId"] as? NSNumber)?.int64Value)
        #expect(try await settledPayment(payment) == "FAILED")
        return (order, payment)
    }

    func pay(order: Int64, user: Int64 = 1, amount: Int64) async throws -> Int64 {
        let r = try await call("POST", "/payments", ["orderId": order, "userId": user, "amount": amount])
        #expect(r.status == 202)
        return (r.json["paymentId"] as! NSNumber).int64Value
    }

    func settledPayment(_ id: Int64) async throws -> String? {
        _ = try await eventually { try await self.string("/payments/\(id)", "status") != "REQUESTED" }
        return try await string("/payments/\(id)", "status")
    }

    func historyCount(_ collection: MongoCollection, saga: String) async throws -> Int {
        try await collection.count(["sagaId": .string(saga)])
    }
}
