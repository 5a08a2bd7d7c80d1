import Events
import Foundation
import Kafka
import Logging
import Mongo
import Prometheus
import TestSupport
import Testing

@testable import Archiver

/// Inputs and races that once stopped the archiver or left history behind, one test each.
@Suite("archiver run: hardening")
struct HardeningTests {
    /// A value just under the broker's limit: accepted as produced, too large once the dead-letter headers are added.
    static let poisonSize = 999_900

    @Test func aMessageTooLargeToDeadLetterIsKeptFindableAndTheArchiverMovesOn() async throws {
        let s = try await Scenario()
        let poison = KafkaRecord(topic: s.balanceTopic, key: Array("9".utf8), value: Array(repeating: UInt8(ascii: "x"), count: Self.poisonSize))
        let small = (0..<3).map { KafkaRecord(topic: s.balanceTopic, key: "9", value: "not json \($0)") }
        try await s.send([small[0], poison, small[1], small[2]])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.deadLettered == 4 })
        // Still running: later events are archived.
        try await s.send((0..<10).map { Make.deducted(s, saga: "pay-\($0)", user: 9) })
        #expect(try await eventually { try await s.count(s.store.collection(of: .balance)) == 10 })
        archiver.stop()
        try await task.value

        // Each dead letter exactly once; the oversized one as a stub that says where its bytes are.
        let letters = try await s.readAll(s.deadLetterTopic)
        #expect(letters.count == 4, "\(letters.map { $0.value.count })")
        for m in small { #expect(letters.filter { $0.value == m.value }.count == 1) }
        let stub = try #require(letters.first { $0.header(DeadLetterHeader.originalSize) != nil })
        #expect(stub.value.count < Self.poisonSize && stub.keyString == "9")
        #expect(stub.header(DeadLetterHeader.originalSize)?.stringValue == String(Self.poisonSize))
        #expect(stub.header(DeadLetterHeader.errorKind)?.stringValue == "decode")
        let ref = try #require(stub.header(DeadLetterHeader.payloadRef)?.stringValue)
        let kept = try #require(try await s.store.deadLetterPayloads.findOne(["_id": .string(ref)]))
        guard case .binary(let bytes) = kept["value"] else { Issue.record("no value kept: \(kept.keys)"); return }
        #expect(bytes == poison.value)
        #expect(stub.header(DeadLetterHeader.originalSHA256)?.stringValue == kept["sha256"]?.stringValue)
        await s.drop()
    }

    @Test func anOversizedDeadLetterIsReplayedFromItsKeptBytes() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        // An operator's unique index refuses the event (a `rejected` dead letter) until they drop the blocker.
        try await s.store.collection(of: .balance).createIndexes([
            IndexModel(keys: ["userId": .int32(1), "amount": .int32(1)], name: "operator_unique", unique: true)
        ])
        try await s.store.collection(of: .balance).insertOne(["_id": "blocker", "userId": .int64(77), "amount": .int64(5)])
        let id = Make.id()
        func event(padding: Int) -> KafkaRecord {
            Make.event(
                s.balanceTopic, key: "77", type: EventType.balanceDeducted, saga: "pay-77", id: id,
                [
                    "userId": .int(77), "amount": .int(5), "balanceBefore": .int(10), "balanceAfter": .int(5),
                    "orderId": .int(1), "paymentId": .int(1), "note": .string(String(repeating: "p", count: padding)),
                ])
        }
        // A valid event (unknown data fields are ignored) padded to the poison size.
        try await s.send([event(padding: Self.poisonSize - event(padding: 0).value.count)])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.deadLettered == 1 })
        archiver.stop()
        try await task.value

        try await s.store.collection(of: .balance).deleteMany(["_id": "blocker"])
        var config = s.configuration()
        config.groupID = "\(s.group)-replay"
        let summary = try await Replayer(configuration: config, logger: Logger(label: "replay-test")).run(
            filter: .init(eventID: id), dryRun: false, idleMs: 2_000)
        #expect(summary.archived == 1 && summary.failed == 0, "\(summary)")
        #expect(try await s.store.collection(of: .balance).findOne(["_id": .string(id)])?["amount"]?.int64Value == 5)
        // What the topic held was only the stub: the replay read the whole event from MongoDB.
        let letters = try await s.readAll(s.deadLetterTopic)
        #expect(letters.count == 1 && letters[0].header(DeadLetterHeader.payloadRef) != nil && letters[0].value.count < Self.poisonSize)
        await s.drop()
    }

    @Test func aRedeliveredHistoryEventOfACompensatedSagaIsDeletedAndSuppressed() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let deduct = Make.id()
        // As if an instance wrote this document, then was killed before its re-check found the compensation.
        try await s.store.compensations.insertOne([
            "_id": "pay-21", "reason": "declined", "failedEvent": "f-21",
            "failedType": .string(EventType.paymentFailed),
            "deleted": .document(["balance_history": .array([]), "payment_history": .array([])]),
            "suppressed": .array([]), "compensatedAt": .datetime(1),
        ])
        try await s.store.collection(of: .balance).insertOne(["_id": .string(deduct), "sagaId": "pay-21", "userId": .int64(42)])
        try await s.send([Make.deducted(s, saga: "pay-21", id: deduct)])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.suppressed == 1 })
        archiver.stop()
        try await task.value
        #expect(try await s.count(s.store.collection(of: .balance)) == 0, "history of a compensated saga survived its redelivery")
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-21"]))
        #expect(record["suppressed"] == .array([.string(deduct)]))
        await s.drop()
    }

    @Test func aFailureRacingAnotherCompensationKeepsItsUnwrittenHistoryInTheAuditTrail() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let early = Make.id()
        let batch = Scenario.batch([Make.deducted(s, saga: "pay-31", id: early), Make.paymentFailed(s, saga: "pay-31", id: "f-mine")])
        let executor = s.executor()
        let plan = try await executor.plan(batch).plan
        // Another instance compensates the saga for another failure event between this plan and its writes.
        try await s.store.compensations.insertOne([
            "_id": "pay-31", "reason": "other", "failedEvent": "f-theirs",
            "failedType": .string(EventType.orderStatusChangeFailed),
            "deleted": .document(["balance_history": .array([]), "payment_history": .array([])]),
            "suppressed": .array([]), "compensatedAt": .datetime(1),
        ])
        let outcome = try await executor.apply(plan, to: batch)
        #expect(outcome.duplicateFailures == 1)
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-31"]))
        let listed = (record["suppressed"]?.arrayValue ?? []) + (record["deleted"]?.documentValue?["balance_history"]?.arrayValue ?? [])
        #expect(listed.contains(.string(early)), "an event of the saga is listed nowhere: \(record)")
        #expect(try await s.count(s.store.collection(of: .balance)) == 0)
        await s.drop()
    }

    @Test func aCompensationListsEveryDocumentItDeletes() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let first = Make.id(), racing = Make.id()
        _ = try await s.executor().execute(Scenario.batch([Make.deducted(s, saga: "pay-41", id: first)]))
        var executor = s.executor()
        // Another instance writes history of the saga while the compensation is under way.
        executor.faults.beforeDeletingHistory = { saga in
            try await s.store.collection(of: .balance).insertOne(["_id": .string(racing), "sagaId": .string(saga), "userId": .int64(42)])
        }
        let failure = Scenario.batch([Make.paymentFailed(s, saga: "pay-41")])
        #expect(try await executor.execute(failure).compensated == 1)
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-41"]))
        let deleted = record["deleted"]?.documentValue?["balance_history"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let remaining = try await s.store.collection(of: .balance).find().compactMap { $0["_id"]?.stringValue }
        #expect(deleted.contains(first) && !remaining.contains(first))
        #expect(deleted.contains(racing) || remaining.contains(racing), "deleted but listed nowhere: \(record)")
        let emitted = try await s.readAll(s.compensationTopic)
        #expect(emitted.count == 1)
        let event = try JSONValue.parse(emitted[0].value)
        #expect(event["data"]?["deleted"]?["balance_history"] == .array(deleted.map { .string($0) }))

        // The racing writer's re-check (or its redelivery) takes its write back, listed as suppressed.
        let redelivered = Scenario.batch([Make.deducted(s, saga: "pay-41", id: racing)])
        _ = try await s.executor().execute(redelivered)
        #expect(try await s.count(s.store.collection(of: .balance)) == 0)
        let after = try #require(try await s.store.compensations.findOne(["_id": "pay-41"]))
        let listedNow = (after["suppressed"]?.arrayValue ?? []) + (after["deleted"]?.documentValue?["balance_history"]?.arrayValue ?? [])
        #expect(listedNow.contains(.string(racing)))
        await s.drop()
    }

    @Test func historyPagesVisitEveryDocumentThatSharesAMillisecond() async throws {
        let s = try await Scenario()
        let sameTime: Int64 = 1_764_000_000_000
        let ids = (0..<5).map { _ in Make.id() }
        try await s.send(
            ids.enumerated().map { i, id in Make.deducted(s, saga: "pay-\(i)", user: 55, id: id, time: sameTime) }
                + [Make.deducted(s, saga: "pay-older", user: 55, time: sameTime - 1)])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.archived == 6 })
        archiver.stop()
        try await task.value

        let db = ["--database", s.database, "--mongo-uri", mongoURI]
        for json in [false, true] {
            var seen: [String] = []
            var cursor: [String] = []
            for _ in 0..<10 {
                let (code, out) = await archiverCLI(["history", "balance", "--user", "55", "--limit", "2"] + (json ? ["--json"] : []) + cursor + db)
                #expect(code == 0, "\(out)")
                let lines = out.split(separator: "\n").map(String.init)
                if json {
                    seen += lines.filter { $0.hasPrefix("{") }.compactMap { try? JSONValue.parse($0)["_id"]?.stringValue }
                } else {
                    // Rows end with their event id; the header, "no history found" and any log line
                    // the merged stderr carries (libmongoc warns under load) do not.
                    seen += lines.compactMap { $0.split(separator: " ").last.map(String.init) }.filter { UUID(uuidString: $0) != nil }
                }
                guard let hint = lines.first(where: { $0.contains("--before ") }) else { break }
                // The hint is copied as printed: `(2 shown; older: --before CURSOR)`.
                cursor = ["--before", String(hint.split(separator: " ").last!.dropLast())]
            }
            #expect(seen.count == 6 && Set(seen).isSuperset(of: ids), "json=\(json): \(seen)")
        }
        await s.drop()
    }

    @Test func readyzTurnsUnavailableWhenKafkaGoesAwayWhileIdle() async throws {
        let kafka = try await PrivateKafka(port: freePort())
        let s = try await Scenario()
        var config = s.configuration()
        config.kafka = KafkaConfiguration(brokers: kafka.brokers)
        try await KafkaAdmin(configuration: config.kafka).createTopics(config.topics, partitions: 4)
        let archiver = try await Archiver(configuration: config, logger: .init(label: "kafka-outage-test"))
        let task = Task { try await archiver.run() }
        #expect(try await eventually(60) { archiver.status.snapshot.ready })
        await kafka.kill9()
        #expect(try await eventually(30) { !archiver.status.snapshot.kafkaReachable }, "idle and the broker gone, yet ready")
        #expect(!archiver.status.snapshot.ready)
        try await kafka.restart()
        #expect(try await eventually(60) { archiver.status.snapshot.kafkaReachable }, "the broker is back")
        archiver.stop()
        try await task.value
        await kafka.kill9()
        await s.drop()
    }

    @Test func partitionsTakenOverDuringAnOutageStayPausedAndAtMostOneBatchIsHeld() async throws {
        let mongo = try await PrivateMongo(port: freePort())
        let s = try await Scenario(mongoURI: mongo.uri)
        var config = s.configuration(batchSize: 50)
        config.mongoURI = mongo.uri
        config.retryMaxMs = 5_000  // long waits: a rebalance completes inside one
        let a = try await Archiver(configuration: config, logger: .init(label: "instance-a"))
        var configB = config
        configB.shutdownGraceMs = 0
        let b = try await Archiver(configuration: configB, logger: .init(label: "instance-b"))
        let (taskA, taskB) = (Task { try await a.run() }, Task { try await b.run() })
        #expect(try await eventually(60) { a.status.snapshot.assignedPartitions == 6 && b.status.snapshot.assignedPartitions == 6 })
        try await mongo.stop()
        try await s.send((0..<3_000).map { i in Make.deducted(s, saga: "pay-\(i)", user: Int64(i % 17)) })
        #expect(try await eventually(30) { !a.status.snapshot.mongoReachable && !b.status.snapshot.mongoReachable })
        // B leaves mid-outage: A is assigned B's partitions while it waits.
        b.stop()
        try await taskB.value
        #expect(try await eventually(60) { a.status.snapshot.assignedPartitions == 12 })
        // B's partitions came to A mid-outage and stay paused with A's own: nothing is fetched.
        #expect(try await eventually(30) { a.status.snapshot.pausedPartitions == 12 }, "\(a.status.snapshot.detail)")
        try await Task.sleep(for: .seconds(3))
        #expect(a.status.snapshot.pausedPartitions == 12 && a.status.snapshot.outageInProgress, "\(a.status.snapshot.detail)")
        #expect(a.carriedOverHighWater <= 50, "held \(a.carriedOverHighWater) messages during the outage")
        try await mongo.start()
        #expect(try await eventually(90) { try await s.count(s.store.collection(of: .balance)) == 3_000 }, "every partition resumed after the outage")
        a.stop()
        try await taskA.value
        await s.drop()
        try await mongo.stop()
    }
}

/// Findings of an adversarial review: each input once stopped the archiver or lost history.
@Suite("archiver run: hostile inputs")
struct HostileInputTests {
    @Test func aProducerTimestampFarInThePastIsNoLatencySampleAndNoTrap() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let registry = PrometheusCollectorRegistry()
        var executor = s.executor()
        executor.metrics = ArchiverMetrics(registry: registry)
        for timestamp in [Int64.min, -8_000_000_000_000] {
            let outcome = try await executor.execute(Scenario.batch([Make.deducted(s, saga: "pay-t")], timestampMs: timestamp))
            #expect(outcome.archived == 1)
        }
        #expect(StallVisibilityTests.series("archiver_event_latency_seconds_count", registry) == [0])
        // A sane timestamp is a sample: the count above could have moved.
        _ = try await executor.execute(Scenario.batch([Make.deducted(s, saga: "pay-t")], timestampMs: Timestamp.nowMs() - 5))
        #expect(StallVisibilityTests.series("archiver_event_latency_seconds_count", registry) == [1])
        await s.drop()
    }

    @Test func anEventIdReusedByAnotherSagaNeverTakesThatSagasHistory() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let shared = Make.id()
        _ = try await s.executor().execute(Scenario.batch([Make.deducted(s, saga: "pay-kept", id: shared)]))
        // Another saga fails, then a history event of it arrives reusing the first event's id.
        _ = try await s.executor().execute(Scenario.batch([Make.paymentFailed(s, saga: "pay-gone"), Make.deducted(s, saga: "pay-gone", id: shared)]))
        #expect(try await s.store.collection(of: .balance).findOne(["_id": .string(shared)])?["sagaId"] == "pay-kept")
        await s.drop()
    }

    @Test func aCompensationOfAHugeSagaIsEmittedWithinTheBrokersLimit() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        // 1,500 history events of one saga with 250-byte ids: listing them all would be ~400 KB of
        // ids per kind; the reason is as long as an event may make it.
        let ids = (0..<1_500).map { i in String(repeating: "x", count: 240) + String(format: "%010d", i) }
        _ = try await s.executor().execute(Scenario.batch(ids.map { Make.deducted(s, saga: "pay-huge", id: $0) }))
        let reason = String(repeating: "é", count: 600_000)
        let failure = Make.event(s.paymentTopic, key: "1", type: EventType.paymentFailed, saga: "pay-huge", ["reason": .string(reason)])
        #expect(try await s.executor().execute(Scenario.batch([failure])).compensated == 1)
        #expect(try await s.count(s.store.collection(of: .balance)) == 0)
        let emitted = try await s.readAll(s.compensationTopic)
        #expect(emitted.count == 1 && emitted[0].value.count < 1_000_000)
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-huge"]))
        #expect(record["deleted"]?.documentValue?["balance_history"]?.arrayValue?.count == 1_500)
        #expect((record["reason"]?.stringValue?.utf8.count ?? .max) <= 1_000)
        await s.drop()
    }

    @Test func aSagaWithMoreIdsThanOneDocumentHoldsKeepsItsRecordBoundedAndEveryIdFindable() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        // 68,500 ids of 256 bytes (the longest an event may carry): 17.5 MB of ids, past
        // MongoDB's 16 MiB document limit, which the local server does not enforce. 2,500 are
        // archived first (found and deleted, in chunks); 66,000 come in the failure's batch
        // (planned as deleted, never written: cheap to make).
        let ids = (0..<68_500).map { String(repeating: "x", count: 246) + String(format: "%010d", $0) }
        let (archived, planned) = (ids.prefix(2_500), ids.dropFirst(2_500))
        _ = try await s.executor().execute(Scenario.batch(archived.map { Make.deducted(s, saga: "pay-vast", id: $0) }))
        #expect(try await s.count(s.store.collection(of: .balance)) == archived.count)
        let outcome = try await s.executor().execute(
            Scenario.batch(planned.map { Make.deducted(s, saga: "pay-vast", id: $0) } + [Make.paymentFailed(s, saga: "pay-vast")]))
        #expect(outcome.compensated == 1)
        #expect(try await s.count(s.store.collection(of: .balance)) == 0)
        let record = try #require(try await s.store.compensations.findOne(["_id": "pay-vast"]))
        #expect(record.bsonSize < 8_500_000, "the record is \(record.bsonSize) bytes")
        #expect(CompensationList.deleted(.balance).ids(in: record)?.count == CompensationList.cap)
        #expect(record["deletedCount"]?.documentValue?[HistoryKind.balance.collection]?.int64Value == Int64(ids.count))
        let all = try await s.store.allIds(in: .deleted(.balance), of: "pay-vast")
        #expect(all.count == ids.count && Set(all) == Set(ids))
        // Redelivered, the failure lists nothing twice.
        _ = try await s.executor().execute(Scenario.batch([Make.paymentFailed(s, saga: "pay-vast")]))
        #expect(try await s.store.allIds(in: .deleted(.balance), of: "pay-vast").count == ids.count)
        await s.drop()
    }

    @Test func aDeadLetterWhoseErrorMessageIsOneHugeCharacterStillFitsAStub() async throws {
        let s = try await Scenario()
        // One character of ~1 MB (a base and combining marks) echoed into the error message.
        var value = Array(#"{"specversion":"a"#.utf8)
        for _ in 0..<499_900 { value += [0xCC, 0x81] }
        value += Array(#""}"#.utf8)
        try await s.send([KafkaRecord(topic: s.balanceTopic, key: Array("k".utf8), value: value)])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.deadLettered == 1 })
        archiver.stop()
        try await task.value
        let letters = try await s.readAll(s.deadLetterTopic)
        #expect(letters.count == 1 && (letters.first?.header(DeadLetterHeader.errorMessage)?.value.count ?? .max) <= 1_000)
        await s.drop()
    }
}
