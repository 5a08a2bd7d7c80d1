import Events
import Foundation
import Kafka
import Logging
import Mongo
import TestSupport
import Testing

@testable import Archiver

/// Rebalances never let a commit pass a message that was neither archived nor dead-lettered.
@Suite("archiver run: rebalances and dead letters")
struct RebalanceDeadLetterTests {
    @Test func everyPoisonMessageIsDeadLetteredWhileASecondArchiverJoinsAndLeavesRepeatedly() async throws {
        let s = try await Scenario()
        var config = s.configuration(batchSize: 50)
        // A poll that waits long enough for a whole rebalance (revoke, rejoin, assign, fetch from
        // the last commit) to happen inside it: the timing that once dropped dead letters.
        config.pollTimeoutMs = 8_000
        var logger = Logger(label: "rebalance-a")
        logger.logLevel = .error  // each dead letter is a warning
        let a = try await Archiver(configuration: config, logger: logger)
        let taskA = Task { try await a.run() }
        #expect(try await eventually(60) { a.status.snapshot.assignedPartitions == 12 })

        let producing = Task {
            var sent = 0
            while !Task.isCancelled {
                let key = String(sent % 8)
                try await s.send([
                    KafkaRecord(topic: s.balanceTopic, key: Array(key.utf8), value: Array("poison \(sent)".utf8)),
                    Make.deducted(s, saga: "pay-\(sent)", user: Int64(sent % 8)),
                ])
                sent += 1
                try? await Task.sleep(for: .milliseconds(20))
            }
            return sent
        }
        for round in 0..<4 {
            var configB = config
            configB.pollTimeoutMs = 100
            var loggerB = Logger(label: "rebalance-b-\(round)")
            loggerB.logLevel = .error
            let b = try await Archiver(configuration: configB, logger: loggerB)
            let taskB = Task { try await b.run() }
            #expect(try await eventually(60) { b.status.snapshot.assignedPartitions > 0 && a.status.snapshot.assignedPartitions < 12 })
            try await Task.sleep(for: .seconds(1))
            b.stop()
            try await taskB.value
            #expect(try await eventually(60) { a.status.snapshot.assignedPartitions == 12 })
            try await Task.sleep(for: .milliseconds(500))
        }
        producing.cancel()
        let sent = try await producing.value

        // Once the group has committed past every message, each poison one must be on the dead-letter topic.
        let passedEverything = try await eventually(60) { try await s.committed(s.balanceTopic).values.reduce(0, +) == Int64(2 * sent) }
        let committed = try await s.committed(s.balanceTopic)
        #expect(passedEverything, "committed \(committed) of \(2 * sent)")
        a.stop()
        try await taskA.value
        let letters = Set(try await s.readAll(s.deadLetterTopic).map { String(decoding: $0.value, as: UTF8.self) })
        let missing = (0..<sent).map { "poison \($0)" }.filter { !letters.contains($0) }
        #expect(missing.isEmpty, "\(missing.count) of \(sent) poison messages committed past without a dead letter: \(missing.prefix(10))")
        #expect(try await s.count(s.store.collection(of: .balance)) == sent)
        await s.drop()
    }
}
