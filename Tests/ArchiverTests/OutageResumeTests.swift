import Events
import Foundation
import Kafka
import Logging
import Mongo
import Prometheus
import TestSupport
import Testing

@testable import Archiver

/// MongoDB taken away at an exact point of a batch (a wire-protocol proxy between the archiver
/// and the server), then given back: whichever call met the outage, the archiver goes on
/// archiving what comes after it.
@Suite("archiver run: every outage resumes")
struct OutageResumeTests {
    static let mongoPort = Int(URLComponents(string: mongoURI)?.port ?? 21_017)

    /// The outage the issue reproduced: the write is acknowledged, then the server goes, and the
    /// batch's re-check (the poll after it came back empty) is what meets it.
    @Test func anOutageMetByTheRecheckResumesAndLaterEventsAreArchived() async throws {
        let s = try await Scenario()
        let proxy = try MongoFaultProxy(targetPort: Self.mongoPort)
        defer { proxy.cutOff() }
        let port = adminPort()
        let p = try ArchiverProcess(arguments: s.runArguments(adminPort: port, mongoURI: proxy.uri), adminPort: port)
        #expect(try await eventually(60) { await p.isReady() }, "\(p.output)")
        proxy.arm(.afterReply(command: "insert", collection: HistoryKind.balance.collection))
        try await s.send([Make.deducted(s, saga: "pay-first")])
        #expect(try await eventually { proxy.cutCount == 1 }, "the write went through the proxy")
        #expect(try await eventually(30) { await p.readyz()?.contains("mongo=down") == true }, "the re-check met the outage: \(p.output)")
        try proxy.restore()
        #expect(try await eventually(30) { await p.isReady() }, "\(p.output)")
        try await s.send((0..<10).map { Make.deducted(s, saga: "pay-after-\($0)") })
        #expect(
            try await eventually(45) { try await s.count(s.store.collection(of: .balance)) == 11 }, "events after the outage archived: \(p.output)")
        p.terminate()
        await p.waitForExit()
        #expect(p.process.terminationStatus == 0, "\(p.output)")
        await s.drop()
    }

    enum Site: String, CaseIterable, CustomTestStringConvertible {
        /// `settle` taking back a write that raced a compensation.
        case settleSuppression
        /// A dead letter the broker refuses, kept whole in MongoDB.
        case deadLetterKept
        /// The compensation record of a failed saga.
        case compensation
        /// The compensation lookup that plans a batch.
        case lookup

        var testDescription: String { rawValue }

        /// Balance documents once everything is archived: only the lookup's event is history of
        /// its own (the raced one is taken back, the others write none), and it may be written
        /// after the outage is seen to end, so the end state is counted, not a difference.
        var balanceDocumentsBeforeTheTen: Int { self == .lookup ? 1 : 0 }
    }

    @Test(arguments: Site.allCases)
    func anOutageAtEachRetriedCallResumes(_ site: Site) async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let proxy = try MongoFaultProxy(targetPort: Self.mongoPort)
        defer { proxy.cutOff() }
        let (archiver, task) = try await s.start(batchSize: 100, mongoURI: proxy.uri)
        #expect(try await eventually(60) { archiver.status.snapshot.ready })

        switch site {
        case .settleSuppression:
            // Another instance compensates the saga between this batch's lookup and its write:
            // the re-check finds the record and takes the write back, a delete, which meets the outage.
            archiver.faults.withLock {
                $0.beforeWritingHistory = { [store = s.store] plan in
                    guard plan.writes(of: .balance).contains(where: { $0.sagaId == "pay-raced" }) else { return }
                    try await store.compensations.insertOne(["_id": "pay-raced", "reason": "declined", "failedEvent": "elsewhere"])
                    proxy.arm(.before(command: "delete", collection: HistoryKind.balance.collection))
                }
            }
            try await s.send([Make.deducted(s, saga: "pay-raced")])
        case .deadLetterKept:
            proxy.arm(.before(command: "update", collection: HistoryStore.deadLetterPayloadCollection))
            try await s.send([
                KafkaRecord(topic: s.balanceTopic, key: Array("9".utf8), value: Array(repeating: UInt8(ascii: "x"), count: HardeningTests.poisonSize))
            ])
        case .compensation:
            proxy.arm(.before(command: "update", collection: HistoryStore.compensationCollection))
            try await s.send([Make.paymentFailed(s, saga: "pay-failed")])
        case .lookup:
            proxy.arm(.before(command: "find", collection: HistoryStore.compensationCollection))
            try await s.send([Make.deducted(s, saga: "pay-looked-up")])
        }
        #expect(try await eventually(30) { proxy.cutCount == 1 }, "the outage met \(site)")
        #expect(try await eventually(30) { !archiver.status.snapshot.mongoReachable }, "the outage was noticed")
        try proxy.restore()
        #expect(try await eventually(30) { archiver.status.snapshot.mongoReachable })
        try await s.send((0..<10).map { Make.deducted(s, saga: "pay-after-\($0)") })
        let expected = site.balanceDocumentsBeforeTheTen + 10
        #expect(try await eventually(45) { try await s.count(s.store.collection(of: .balance)) == expected }, "events after the outage archived")
        archiver.stop()
        try await task.value
        await s.drop()
    }
}

/// A stall must show: lag keeps counting while partitions are paused, and readiness says why.
@Suite("archiver run: a stall shows")
struct StallVisibilityTests {
    @Test func whileAnOutageIsWaitedOutTheLagKeepsCountingFromTheBroker() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        let proxy = try MongoFaultProxy(targetPort: OutageResumeTests.mongoPort)
        defer { proxy.cutOff() }
        let registry = PrometheusCollectorRegistry()
        let (archiver, task) = try await s.start(batchSize: 100, mongoURI: proxy.uri, registry: registry)
        #expect(try await eventually(60) { archiver.status.snapshot.ready })
        // One key: one partition, whose position is known once these are archived.
        try await s.send((0..<20).map { Make.deducted(s, saga: "pay-\($0)", user: 7) })
        #expect(try await eventually { try await s.count(s.store.collection(of: .balance)) == 20 })
        #expect(try await eventually { Self.lag(registry) == 0 })

        proxy.cutOff()
        try await s.send([Make.deducted(s, saga: "pay-20", user: 7)])
        #expect(try await eventually(30) { archiver.status.snapshot.outageInProgress && archiver.status.snapshot.pausedPartitions > 0 })
        let snapshot = archiver.status.snapshot
        #expect(!snapshot.ready && !snapshot.stalled && snapshot.detail.contains("outage=waiting"), "\(snapshot.detail)")
        #expect(Self.gauge("archiver_paused_partitions", registry) == Double(snapshot.assignedPartitions))
        // Produced after the pause: only the broker knows of these. Over every partition: those
        // this instance never read from count from their last commit.
        try await s.send((21..<51).map { Make.deducted(s, saga: "pay-\($0)", user: Int64($0)) })
        #expect(try await eventually(30) { Self.lag(registry) == 31 }, "lag \(Self.lag(registry))")

        try proxy.restore()
        #expect(try await eventually(60) { try await s.count(s.store.collection(of: .balance)) == 51 })
        #expect(try await eventually(30) { Self.lag(registry) == 0 && Self.gauge("archiver_paused_partitions", registry) == 0 })
        #expect(try await eventually { archiver.status.snapshot.ready })
        archiver.stop()
        try await task.value
        await s.drop()
    }

    @Test func partitionsPausedWithNoOutageInProgressAreNotReady() {
        var s = ArchiverStatus.Snapshot(
            mongoReachable: true, kafkaReachable: true, assignedPartitions: 12, pausedPartitions: 0, outageInProgress: false, lastError: nil)
        #expect(s.ready)
        s.pausedPartitions = 12
        #expect(!s.ready && s.stalled && s.detail.contains("stalled=paused-without-outage"))
        s.outageInProgress = true
        #expect(!s.stalled)
    }

    static func lag(_ registry: PrometheusCollectorRegistry) -> Double? {
        let lines = series("archiver_consumer_lag", registry)
        return lines.isEmpty ? nil : lines.reduce(0, +)
    }

    static func gauge(_ name: String, _ registry: PrometheusCollectorRegistry) -> Double? { series(name, registry).first }

    /// The values of every series of this family in the registry's exposition.
    static func series(_ name: String, _ registry: PrometheusCollectorRegistry) -> [Double] {
        prometheusValues(String(decoding: registry.emitToBuffer(), as: UTF8.self), name)
    }
}

/// The broker frozen (SIGSTOP) exactly when a batch's dead letter is to be sent, after the
/// batch's history is written: the send times out, the outage is waited out, and after SIGCONT
/// the archiver goes on.
@Suite("archiver run: a Kafka outage at the dead-letter send")
struct KafkaOutageResumeTests {
    @Test func aFrozenBrokerMetByTheDeadLetterSendResumes() async throws {
        let kafka = try await PrivateKafka(port: freePort())
        let s = try await Scenario()
        try await s.store.migrate()
        var config = s.configuration(batchSize: 100)
        config.kafka = KafkaConfiguration(brokers: kafka.brokers, extra: ["message.timeout.ms": "3000"])
        let admin = try KafkaAdmin(configuration: config.kafka)
        try await admin.createTopics(config.topics + [config.deadLetterTopic], partitions: 4)
        var logger = Logger(label: "kafka-outage")
        logger.logLevel = .warning
        let archiver = try await Archiver(configuration: config, logger: logger)
        let frozen = Locked(false)
        archiver.faults.withLock {
            $0.beforeWritingHistory = { plan in
                guard !plan.deadLetters.isEmpty, !frozen.withLock({ $0 }) else { return }
                frozen.withLock { $0 = true }
                kafka.freeze()
            }
        }
        let task = Task { try await archiver.run() }
        #expect(try await eventually(60) { archiver.status.snapshot.ready })
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: kafka.brokers))
        _ = try await producer.send(KafkaRecord(topic: s.balanceTopic, key: Array("1".utf8), value: Array("not json".utf8)))
        #expect(try await eventually(30) { frozen.withLock { $0 } })
        #expect(try await eventually(30) { archiver.status.snapshot.outageInProgress }, "the dead-letter send met the outage")
        kafka.thaw()
        #expect(try await eventually(60) { archiver.totals.deadLettered == 1 }, "\(archiver.status.snapshot.detail) \(archiver.totals)")
        _ = try await producer.send(
            (0..<10).map { Make.deducted(s, saga: "pay-after-\($0)") }.map {
                KafkaRecord(topic: $0.topic, key: $0.key, value: $0.value)
            })
        #expect(try await eventually(45) { try await s.count(s.store.collection(of: .balance)) == 10 }, "events after the outage archived")
        archiver.stop()
        try await task.value
        await producer.close()
        await kafka.kill9()
        await s.drop()
    }
}

extension ArchiverProcess {
    /// The body of /readyz (its one-line detail), nil if nothing answered.
    func readyz() async -> String? { await Self.get("http://127.0.0.1:\(adminPort)/readyz")?.1 }
}
