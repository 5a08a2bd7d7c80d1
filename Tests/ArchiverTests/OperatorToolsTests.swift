import Events
import Foundation
import Kafka
import Logging
import Mongo
import TestSupport
import Testing

@testable import Archiver

/// Runs the `archiver` executable to completion and returns (exit code, stdout+stderr).
func archiverCLI(_ arguments: [String]) async -> (Int32, String) {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID()).txt").path
    let quoted = arguments.map { "'\($0.replacingOccurrences(of: "'", with: "'\\''"))'" }.joined(separator: " ")
    let status = await shell("'\(binary("archiver"))' \(quoted) >'\(out)' 2>&1")
    return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
}

@Suite("archiver history")
struct HistoryQueryTests {
    func seeded() async throws -> Scenario {
        let s = try await Scenario()
        let t0: Int64 = 1_764_000_000_000
        try await s.send(
            (0..<3).map { Make.deducted(s, saga: "pay-\($0)", user: 42, amount: 1_234_567 + Int64($0), time: t0 + Int64($0) * 60_000) }
                + [Make.deducted(s, saga: "pay-other", user: 7), Make.paymentCompleted(s, saga: "pay-1")])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.archived == 5 })
        try await s.send([Make.deducted(s, saga: "pay-3", user: 42, amount: 99, time: t0 + 300_000), Make.paymentFailed(s, saga: "pay-3")])
        #expect(try await eventually { archiver.totals.compensated == 1 })
        archiver.stop()
        try await task.value
        return s
    }

    @Test func balanceHistoryPagesNewestFirstWithReadableAmountsAndJSON() async throws {
        let s = try await seeded()
        let db = ["--database", s.database, "--mongo-uri", mongoURI]
        let (code, table) = await archiverCLI(["history", "balance", "--user", "42", "--limit", "1"] + db)
        #expect(code == 0, "\(table)")
        let lines = table.split(separator: "\n")
        #expect(lines.first?.hasPrefix("OCCURRED AT") == true)
        #expect(lines.count == 3, "header, one row, and the cursor hint: \(table)")
        #expect(lines[1].contains("2025-11-24T16:02:00.000Z") && lines[1].contains("1,234,569"), "pay-3 was compensated: \(table)")
        let cursor = try #require(lines[2].split(separator: " ").last.map(String.init)?.replacingOccurrences(of: ")", with: ""))
        let (_, next) = await archiverCLI(["history", "balance", "--user", "42", "--before", cursor, "--json"] + db)
        let docs = try next.split(separator: "\n").map { try JSONValue.parse(String($0)) }
        #expect(docs.count == 2 && docs[1]["sagaId"] == "pay-0" && docs[1]["amount"] == 1_234_567)
        #expect(docs[1]["occurredAt"] == "2025-11-24T16:00:00.000Z")
        let (emptyCode, empty) = await archiverCLI(["history", "balance", "--user", "999"] + db)
        #expect(emptyCode == 0 && empty == "no history found\n")
        let (_, ranged) = await archiverCLI(
            ["history", "balance", "--user", "42", "--since", "2025-11-24T16:00:30Z", "--until", "2025-11-24T16:01:30Z", "--json"] + db)
        #expect(ranged.split(separator: "\n").count == 1 && ranged.contains("pay-1"), "\(ranged)")
        await s.drop()
    }

    @Test func paymentHistoryByOrderOrUserAndBadArgumentsAreOneLine() async throws {
        let s = try await seeded()
        let db = ["--database", s.database, "--mongo-uri", mongoURI]
        let (_, byOrder) = await archiverCLI(["history", "payment", "--order", "1001", "--json"] + db)
        #expect(try JSONValue.parse(String(byOrder.split(separator: "\n")[0]))["status"] == "COMPLETED")
        let (_, byUser) = await archiverCLI(["history", "payment", "--user", "42"] + db)
        #expect(byUser.contains("15,000") && byUser.contains("COMPLETED"))
        let (code, both) = await archiverCLI(["history", "payment", "--order", "1", "--user", "2"] + db)
        #expect(code != 0 && both.split(separator: "\n").count == 1 && both.contains("exactly one"))
        let (badCode, badTime) = await archiverCLI(["history", "balance", "--user", "1", "--since", "yesterday"] + db)
        #expect(badCode != 0 && badTime.split(separator: "\n").count == 1 && badTime.contains("--since"))
        let (downCode, down) = await archiverCLI([
            "history", "balance", "--user", "1", "--mongo-uri", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
        ])
        #expect(downCode != 0 && down.split(separator: "\n").count == 1 && down.contains("127.0.0.1:1"), "\(down)")
        await s.drop()
    }

    /// libmongoc keeps counters in /dev/shm/mongoc-<pid> unless told not to, and a process killed
    /// with SIGKILL leaves its segment behind: when a later process got the same pid, libmongoc
    /// printed a warning into the CLI's output, before any handler of ours was set.
    @Test func aStaleCountersSegmentPrintsNoLibraryWarning() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("shm-\(UUID()).txt").path
        let script = """
            echo $$ >'\(out).pid'; ln -s /dev/null /dev/shm/mongoc-$$
            exec '\(binary("archiver"))' history balance --user 999 --database nothing-here --mongo-uri '\(mongoURI)' >'\(out)' 2>&1
            """
        let status = await shell(script)
        let pid = try String(contentsOfFile: out + ".pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        defer { for path in [out, out + ".pid", "/dev/shm/mongoc-\(pid)"] { unlink(path) } }
        let output = try String(contentsOfFile: out, encoding: .utf8)
        #expect(status == 0 && output == "no history found\n", "\(output)")
    }

    @Test func sagaHistoryShowsTheCompensationAndAnUnknownSagaSaysSo() async throws {
        let s = try await seeded()
        let db = ["--database", s.database, "--mongo-uri", mongoURI]
        let (_, compensated) = await archiverCLI(["history", "saga", "pay-3", "--json"] + db)
        let doc = try JSONValue.parse(compensated)
        #expect(doc["balance_history"] == .array([]))
        #expect(doc["compensation"]?["reason"] == "declined")
        // Topics are not ordered against each other: the deduction was either deleted or suppressed.
        let deleted = doc["compensation"]?["deleted"]?["balance_history"]?.arrayValue?.count ?? 0
        #expect(deleted + (doc["compensation"]?["suppressed"]?.arrayValue?.count ?? 0) == 1)
        let (_, text) = await archiverCLI(["history", "saga", "pay-1"] + db)
        #expect(text.contains("balance_history (1)") && text.contains("payment_history (1)") && text.contains("not compensated"))
        let (code, unknown) = await archiverCLI(["history", "saga", "pay-nope"] + db)
        #expect(code == 0 && unknown.contains("no history and no compensation"))
        let (_, unknownJSON) = await archiverCLI(["history", "saga", "pay-nope", "--json"] + db)
        #expect(try JSONValue.parse(unknownJSON)["compensation"] == .null)
        await s.drop()
    }
}

@Suite("archiver replay")
struct ReplayTests {
    func replayer(_ s: Scenario, group: String) -> Replayer {
        var config = s.configuration()
        config.groupID = group
        var logger = Logger(label: "replay-test")
        logger.logLevel = .warning
        return Replayer(configuration: config, logger: logger)
    }

    /// A dead letter as an earlier, stricter archiver would have left it.
    func letter(_ s: Scenario, _ record: KafkaRecord, kind: String, failedAt: Int64 = 1_764_000_000_000) -> KafkaRecord {
        DeadLetter(
            message: KafkaMessage(topic: record.topic, partition: 0, offset: 7, key: record.key, value: record.value),
            origin: Origin(topic: record.topic, partition: 0, offset: 7), kind: kind, reason: "old", attempts: 1, failedAtMs: failedAt
        )
        .record(topic: s.deadLetterTopic)
    }

    @Test func everyKindIsReArchivedOnceItsCauseIsFixedAndWhatStillFailsIsDeadLetteredAgain() async throws {
        let s = try await Scenario()
        // rejected: an operator's unique index refuses the second deduction...
        try await s.store.migrate()
        try await s.store.collection(of: .balance).createIndexes([IndexModel(keys: ["balanceAfter": 1], name: "unique_after", unique: true)])
        let refused = Make.deducted(s, saga: "pay-r", amount: 5)
        try await s.send([Make.deducted(s, saga: "pay-ok", amount: 5), refused])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.deadLettered == 1 })
        archiver.stop()
        try await task.value
        // ...until the index is dropped. decode and schema letters are fixed by a newer archiver: valid values now.
        _ = try await s.store.database.runCommand(["dropIndexes": .string(HistoryKind.balance.collection), "index": .document(["balanceAfter": 1])])
        let decodeFixed = Make.deducted(s, saga: "pay-d"), schemaFixed = Make.paymentCompleted(s, saga: "pay-s")
        let stillBroken = KafkaRecord(topic: s.balanceTopic, key: "k", value: "still not json")
        try await s.send([letter(s, decodeFixed, kind: "decode"), letter(s, schemaFixed, kind: "schema"), letter(s, stillBroken, kind: "decode")])

        let summary = try await replayer(s, group: "replay-\(s.id)").run(filter: .init(), dryRun: false, idleMs: 4_000)
        #expect(summary == Replayer.Summary(archived: 3, failed: 1, skipped: 0))
        #expect(try await s.count(s.store.collection(of: .balance)) == 3)
        #expect(try await s.count(s.store.collection(of: .payment)) == 1)
        let source = try await s.store.collection(of: .payment).findOne([:])?["source"]?.documentValue
        #expect(source?["offset"]?.int64Value == 7, "history keeps the original position")
        let again = try await s.read(s.deadLetterTopic, count: 5).filter { $0.value == stillBroken.value }
        #expect(again.map { $0.header("x-attempts")?.stringValue }.sorted { ($0 ?? "") < ($1 ?? "") } == ["1", "2"])
        await s.drop()
    }

    @Test func aDryRunChangesNothing() async throws {
        let s = try await Scenario()
        try await s.send([
            letter(s, Make.deducted(s, saga: "pay-1"), kind: "schema"),
            letter(s, KafkaRecord(topic: s.balanceTopic, key: "k", value: "x"), kind: "decode"),
        ])
        let group = "replay-\(s.id)"
        let dry = try await replayer(s, group: group).run(filter: .init(), dryRun: true, idleMs: 4_000)
        #expect(dry == Replayer.Summary(archived: 1, failed: 1, skipped: 0, dryRun: true))
        #expect(try await s.count(s.store.collection(of: .balance)) == 0)
        #expect(try await s.read(s.deadLetterTopic, count: 3, seconds: 10).count == 2, "no new dead letter")
        let real = try await replayer(s, group: group).run(filter: .init(), dryRun: false, idleMs: 4_000)
        #expect(real.archived == 1 && real.failed == 1, "the dry run did not move the group")
        await s.drop()
    }

    @Test func anInterruptedReplayResumesWhereItStopped() async throws {
        let s = try await Scenario()
        // One partition's worth of order: all letters keyed alike.
        try await s.send(
            (0..<5).map { i in
                var r = letter(s, Make.deducted(s, saga: "pay-\(i)"), kind: "schema"); r.key = Array("same".utf8); return r
            })
        let group = "replay-\(s.id)"
        let first = try await replayer(s, group: group).run(filter: .init(limit: 2), dryRun: false, idleMs: 4_000)
        #expect(first.archived == 2)
        let second = try await replayer(s, group: group).run(filter: .init(), dryRun: false, idleMs: 4_000)
        #expect(second.archived == 3)
        #expect(try await s.count(s.store.collection(of: .balance)) == 5)
        await s.drop()
    }

    @Test func filtersByEventIdAndTimeLeaveTheRestForLater() async throws {
        let s = try await Scenario()
        let wanted = Make.id()
        try await s.send(
            [
                letter(s, Make.deducted(s, saga: "pay-1", id: wanted), kind: "schema", failedAt: 1_700_000_000_000),
                letter(s, Make.deducted(s, saga: "pay-2"), kind: "schema", failedAt: 1_600_000_000_000),
                letter(s, Make.deducted(s, saga: "pay-3"), kind: "schema", failedAt: 1_650_000_000_000),
            ].map {
                var r = $0; r.key = Array("k".utf8); return r
            })
        let group = "replay-\(s.id)"
        let byId = try await replayer(s, group: group).run(filter: .init(eventID: wanted), dryRun: false, idleMs: 4_000)
        #expect(byId == Replayer.Summary(archived: 1, failed: 0, skipped: 2))
        let byTime = try await replayer(s, group: group).run(
            filter: .init(sinceMs: 1_620_000_000_000, untilMs: 1_680_000_000_000), dryRun: false, idleMs: 4_000)
        #expect(byTime.archived == 1, "pay-3 only; pay-1 again is outside the window")
        let rest = try await replayer(s, group: group).run(filter: .init(), dryRun: false, idleMs: 4_000)
        #expect(rest.archived == 2, "pay-2 was skipped so far and pay-3 sits behind it: not committed past; re-archiving is idempotent")
        #expect(try await s.count(s.store.collection(of: .balance)) == 3)
        await s.drop()
    }
}
