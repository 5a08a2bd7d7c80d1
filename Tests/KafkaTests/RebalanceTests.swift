import Foundation
import Kafka
import Testing

/// Polls every consumer (so a rebalance can complete) until `condition` holds or time runs out.
func pollUntil(_ consumers: KafkaConsumer..., seconds: Double = 60, _ condition: () -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        guard Date() < deadline else { return false }
        for c in consumers { _ = try await c.poll(maxMessages: 1, timeout: .milliseconds(100)) }
    }
    return true
}

@Suite("Kafka: pauses and commits across rebalances")
struct RebalanceTests {
    @Test func aPausedPartitionRevokedAndAssignedBackIsFetchedAgain() async throws {
        let topic = try await makeTopic("repause", partitions: 4)
        let group = "g-\(UUID())"
        let a = try makeConsumer(group: group, topics: [topic])
        #expect(try await pollUntil(a) { a.assignment.count == 4 })
        try await a.pause(Array(a.assignment))
        // A second member takes some partitions, then leaves: every partition comes back to `a`.
        let b = try makeConsumer(group: group, topics: [topic])
        #expect(try await pollUntil(a, b) { !b.assignment.isEmpty && a.assignment.count < 4 })
        await b.close()
        #expect(try await pollUntil(a) { a.assignment.count == 4 })

        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        _ = try await producer.send((0..<4).map { KafkaRecord(topic: topic, key: nil, value: Array("p\($0)".utf8), partition: $0) })
        await producer.close()
        let got = try await consume(a, count: 4, seconds: 20)
        #expect(Set(got.map(\.partition)) == [0, 1, 2, 3], "partitions assigned back must be fetched, got \(got.map(\.partition))")
        await a.close()
    }

    @Test func aCommitOfPartitionsLostToARebalanceLeavesTheNewOwnersOffsets() async throws {
        let topic = try await makeTopic("recommit", partitions: 4)
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        _ = try await producer.send((0..<40).map { KafkaRecord(topic: topic, key: nil, value: Array("m\($0)".utf8), partition: Int32($0 % 4)) })
        await producer.close()
        let group = "g-\(UUID())"
        let a = try makeConsumer(group: group, topics: [topic])
        #expect(try await pollUntil(a) { a.assignment.count == 4 })
        let b = try makeConsumer(group: group, topics: [topic])
        #expect(try await pollUntil(a, b) { a.assignment.count == 2 && b.assignment.count == 2 })
        // The new owner moved on; the old owner's retried commit still carries all four partitions.
        try await b.commit(Dictionary(uniqueKeysWithValues: b.assignment.map { ($0, Int64(10)) }))
        let stale = Dictionary(uniqueKeysWithValues: (0..<4).map { (TopicPartition(topic: topic, partition: $0), Int64(1)) })
        try await a.commitOwned(stale)
        let committed = try await b.committed(Array(b.assignment))
        #expect(committed.values.allSatisfy { $0 == 10 }, "the new owner's offsets moved back: \(committed)")
        let own = try await a.committed(Array(a.assignment))
        #expect(own.values.allSatisfy { $0 == 1 })
        await a.close()
        await b.close()
    }

    @Test func aSecretInABadConfigLineNeverReachesTheError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kafka-\(UUID()).properties").path
        try "client.id=test\nsasl.password hunter2-secret\n".write(toFile: path, atomically: true, encoding: .utf8)
        var config = KafkaConfiguration(brokers: brokers)
        #expect { try config.load(file: path) } throws: { error in
            let text = "\(error)"
            return text.contains(":2:") && text.contains("sasl.password") && !text.contains("hunter2")
        }
        try "hunter2-secret\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try config.load(file: path) } throws: { !"\($0)".contains("hunter2") }
    }

    /// What a poll returned before a partition's revocation belongs to the assignment that
    /// ended; what came after it (assigned back and fetched again), to the one in force.
    @Test func aPollKeepsOnlyTheMessagesAfterTheirPartitionsLastRevocation() {
        let (a, b) = (TopicPartition(topic: "t", partition: 0), TopicPartition(topic: "t", partition: 1))
        let m = { (tp: TopicPartition, offset: Int64) in
            KafkaMessage(topic: tp.topic, partition: tp.partition, offset: offset, key: nil, value: [], headers: [], timestampMs: nil)
        }
        let messages = [m(a, 10), m(b, 5), m(a, 11), m(a, 3), m(b, 6), m(a, 4)]
        #expect(PollResult(messages: messages, rebalances: []).current.map(\.offset) == [10, 5, 11, 3, 6, 4])
        // a revoked after the first three messages (and again after the fourth: the last counts); b never.
        let result = PollResult(messages: messages, rebalances: [.revoked([a]), .assigned([a])], revokedAt: [a: 4])
        #expect(result.current.map { "\($0.topicPartition)@\($0.offset)" } == ["t[1]@5", "t[1]@6", "t[0]@4"])
    }
}
