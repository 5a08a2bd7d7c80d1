import Archiver
import ArgumentParser
import CLISupport
import Events
import Foundation
import Mongo

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Query archived history.",
        subcommands: [BalanceHistory.self, PaymentHistory.self, SagaHistory.self])
}

/// --limit, --before and --json, shared by the list queries.
struct ListOptions: ParsableArguments {
    @Option(help: "At most this many documents, newest first.")
    var limit = 50

    @Option(help: "Only documents older than this cursor (TIME/ID as a full page prints it) or ISO 8601 time.")
    var before: String?

    @Flag(help: "One JSON document per line instead of a table (the next page's cursor goes to stderr).")
    var json = false

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1-10000, got \(limit)") }
        _ = try cursor
    }

    var cursor: HistoryCursor? {
        get throws {
            guard let before else { return nil }
            guard let cursor = HistoryCursor(before) else {
                throw ValidationError("--before must be a cursor TIME/ID or an ISO 8601 time like 2026-11-24T10:00:00Z, got '\(before)'")
            }
            return cursor
        }
    }

    /// Prints the page, and how to get the next one when the page is full.
    func print(_ docs: [Document], table: () -> String) {
        if json {
            docs.forEach { Swift.print(Output.json($0)) }
        } else if docs.isEmpty {
            Swift.print("no history found")
        } else {
            Swift.print(table())
        }
        guard docs.count == limit, let last = docs.last.flatMap(HistoryCursor.init(after:)) else { return }
        let hint = "(\(docs.count) shown; older: --before \(Output.shellWord(last.description)))"
        if json { FileHandle.standardError.write(Data((hint + "\n").utf8)) } else { Swift.print(hint) }
    }
}

func parseTime(_ text: String?, _ flag: String) throws -> Int64? {
    guard let text else { return nil }
    guard let ms = Timestamp.parse(text) else { throw ValidationError("\(flag) must be an ISO 8601 time like 2026-11-24T10:00:00Z, got '\(text)'") }
    return ms
}

struct BalanceHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "balance", abstract: "A user's balance changes, newest first.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "User id.") var user: Int64
    @Option(help: "From this ISO 8601 time (inclusive).") var since: String?
    @Option(help: "Up to this ISO 8601 time (exclusive).") var until: String?
    @OptionGroup var list: ListOptions

    func run() async throws {
        CLILogging.bootstrap(default: .warning)
        let store = try await HistoryConnection.open(connection)
        let docs = try await store.history(
            of: .balance, where: "userId", equals: user, sinceMs: try parseTime(since, "--since"), untilMs: try parseTime(until, "--until"),
            before: try list.cursor, limit: list.limit)
        list.print(docs) { Output.table(HistoryKind.balance.columns, docs) }
    }
}

struct PaymentHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "payment", abstract: "Payments of an order or of a user, newest first.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Order id.") var order: Int64?
    @Option(help: "User id.") var user: Int64?
    @OptionGroup var list: ListOptions

    func validate() throws {
        guard (order == nil) != (user == nil) else { throw ValidationError("give exactly one of --order ID or --user ID") }
    }

    func run() async throws {
        CLILogging.bootstrap(default: .warning)
        let store = try await HistoryConnection.open(connection)
        // validate() lets exactly one through.
        let (field, value) = order.map { ("orderId", $0) } ?? ("userId", user ?? 0)
        let docs = try await store.history(of: .payment, where: field, equals: value, before: try list.cursor, limit: list.limit)
        list.print(docs) { Output.table(HistoryKind.payment.columns, docs) }
    }
}

struct SagaHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "saga", abstract: "A saga's history and its compensation record.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Saga id, e.g. pay-3 or order-1001.") var sagaId: String
    @Flag(help: "One JSON document instead of text.") var json = false

    func run() async throws {
        CLILogging.bootstrap(default: .warning)
        let store = try await HistoryConnection.open(connection)
        let (history, compensation) = try await store.saga(sagaId)
        if json {
            var doc: JSONObject = ["sagaId": .string(sagaId)]
            for (kind, documents) in history { doc[kind.collection] = .array(documents.map { .object(Output.jsonObject($0)) }) }
            doc["compensation"] = compensation.map { .object(Output.jsonObject($0)) } ?? .null
            return print(JSONValue.object(doc).serialized)
        }
        let documents = history.flatMap(\.documents)
        guard !documents.isEmpty || compensation != nil else {
            return print("saga \(sagaId): no history and no compensation archived")
        }
        print("saga \(sagaId)")
        // One saga is one trace when every hop carried its context; more than one id means a
        // producer started its own, and both are worth looking up.
        var traces: [String] = []
        for doc in documents + (compensation.map { [$0] } ?? []) {
            if let id = doc["traceId"]?.stringValue, !traces.contains(id) { traces.append(id) }
        }
        print(traces.isEmpty ? "trace: none (its events carried no traceparent)" : "trace: \(traces.joined(separator: ", "))")
        for (kind, documents) in history {
            print("\(kind.collection) (\(documents.count))")
            if !documents.isEmpty { print(Output.table(kind.sagaColumns, documents)) }
        }
        if let c = compensation {
            print(
                "compensated at \(Output.time(c["compensatedAt"])): \(Output.text(c["reason"])) (failed event \(Output.text(c["failedEvent"])), \(Output.text(c["failedType"])))"
            )
            let lists = history.map { (kind, _) in ("deleted \(kind.collection)", CompensationList.deleted(kind)) } + [("suppressed", .suppressed)]
            for (label, list) in lists {
                let ids = list.ids(in: c) ?? []
                print("  \(label): \(ids.joined(separator: ", "))")
                // Past the cap the record counts them all; the rest are in compensation_ids.
                if let total = list.count(in: c), total > ids.count {
                    print(
                        "    (\(total) in all; the other \(total - ids.count) in \(CompensationList.overflowCollection): {sagaId: \(Output.text(c["_id"])), list: \"\(list.name)\"})"
                    )
                }
            }
        } else {
            print("not compensated")
        }
    }
}
