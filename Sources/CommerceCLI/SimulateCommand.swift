import ArgumentParser
import CLISupport
import Foundation
import Logging
import Simulator

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Drive the HTTP API like many shoppers, then check that money, stock, carts and history add up.")

    @Option(help: "Orders to place.")
    var orders: Int

    @Option(help: "Distinct shoppers (user ids 1...U).")
    var users = 20

    @Option(help: "Shoppers active at once.")
    var concurrency = 8

    @Option(help: "Seed: the same seed makes the same choices.")
    var seed: UInt64 = 1

    @Option(help: "Base URL of the services (default http://127.0.0.1:$COMMERCE_HTTP_PORT).")
    var url: String?

    @Option(help: "Base URL of the user service, when the services run apart.") var userUrl: String?
    @Option(help: "Base URL of the product service.") var productUrl: String?
    @Option(help: "Base URL of the order service.") var orderUrl: String?
    @Option(help: "Base URL of the payment service.") var paymentUrl: String?

    @Option(help: "MongoDB URI for the history check (env MONGO_URI, default mongodb://127.0.0.1:27017).")
    var mongoUri: String?

    @Option(help: "A file whose one line is the MongoDB URI (env MONGO_URI_FILE): keeps a password out of process arguments.")
    var mongoUriFile: String?

    @Option(help: "History database (env ARCHIVER_DATABASE, default history).")
    var database: String?

    @Flag(help: "Skip the MongoDB history invariant (no archiver running).")
    var skipHistory = false

    @Option(help: "Seconds to wait for sagas and compensations to settle.")
    var settleSeconds = 60.0

    @Option(help: "Orders started per second, as far as --concurrency shoppers allow (default: each shopper orders again as soon as it is done).")
    var rate: Double?

    @OptionGroup var signing: SigningOptions

    func validate() throws {
        guard (1...1_000_000).contains(orders) else { throw ValidationError("--orders must be 1-1000000, got \(orders)") }
        guard (1...100_000).contains(users) else { throw ValidationError("--users must be 1-100000, got \(users)") }
        guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be 1-256, got \(concurrency)") }
        if let rate { guard rate > 0, rate <= 100_000 else { throw ValidationError("--rate must be above 0 and at most 100000, got \(rate)") } }
    }

    func run() async throws {
        CLILogging.bootstrap(default: .warning)
        let port = try Settings.port(nil, "--url", "COMMERCE_HTTP_PORT", 8080)
        func parse(_ raw: String?, _ name: String) throws -> URL? {
            guard let raw else { return nil }
            guard let u = URL(string: raw), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                throw ValidationError("\(name) must be an http(s) URL, got '\(raw)'")
            }
            return u
        }
        var endpoints = APIClient.Endpoints(all: try parse(url, "--url") ?? URL(string: "http://127.0.0.1:\(port)")!)
        if let u = try parse(userUrl, "--user-url") { endpoints.user = u }
        if let u = try parse(productUrl, "--product-url") { endpoints.product = u }
        if let u = try parse(orderUrl, "--order-url") { endpoints.order = u }
        if let u = try parse(paymentUrl, "--payment-url") { endpoints.payment = u }
        var options = SimulationOptions(endpoints: endpoints)
        options.orders = orders
        options.users = users
        options.concurrency = concurrency
        options.seed = seed
        options.settleSeconds = settleSeconds
        options.rate = rate
        options.mongoURI =
            skipHistory ? nil : try Settings.secret(mongoUri, "--mongo-uri", file: mongoUriFile, "MONGO_URI") ?? "mongodb://127.0.0.1:27017"
        options.historyDatabase = Settings.value(database, "ARCHIVER_DATABASE", "history")
        if let minter = try await signing.minter() { options.tokens = MintedTokens(minter: minter).token }
        let report: SimulationReport
        do {
            report = try await Simulation(options: options).run { line in
                print("simulate: \(line)")
                fflush(nil)  // every stream, stdout included: a reader of a pipe (scripts/bench) times the phases by these lines
            }
        } catch {
            throw ValidationError("simulation stopped: \(error)")
        }
        print(report.rendered)
        if !report.passed { throw ExitCode(3) }
    }
}
