import Foundation
import Kafka
import Testing

// Against the real broker started by scripts/services (KAFKA_BROKERS, default 127.0.0.1:21092).
let brokers = ProcessInfo.processInfo.environment["KAFKA_BROKERS"] ?? "127.0.0.1:21092"

func uniqueTopic(_ name: String) -> String { "test.\(name).\(UUID().uuidString.prefix(8).lowercased())" }

func makeTopic(_ name: String, partitions: Int32) async throws -> String {
    let topic = uniqueTopic(name)
    try await KafkaAdmin(configuration: KafkaConfiguration(brokers: brokers)).createTopics([topic], partitions: partitions)
    return topic
}

func makeConsumer(group: String, topics: [String]) throws -> KafkaConsumer {
    var config = KafkaConsumerConfiguration(connection: KafkaConfiguration(brokers: brokers), groupID: group, topics: topics)
    // The local broker holds a join for a share of the rebalance timeout: keep it short.
    config.sessionTimeoutMs = 6_000
    config.maxPollIntervalMs = 10_000
    return try KafkaConsumer(configuration: config)
}

/// Polls until `count` messages arrived or `seconds` passed.
func consume(_ consumer: KafkaConsumer, count: Int, seconds: Double = 30) async throws -> [KafkaMessage] {
    var all: [KafkaMessage] = []
    let deadline = Date().addingTimeInterval(seconds)
    while all.count < count && Date() < deadline {
        all += try await consumer.poll(maxMessages: 500, timeout: .milliseconds(200)).messages
    }
    return all
}

@Suite("Kafka against the real broker")
struct KafkaIntegrationTests {
    @Test func producedRecordsArriveWithKeysAndHeaders() async throws {
        let topic = try await makeTopic("roundtrip", partitions: 1)
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        let reports = try await producer.send(
            (0..<3).map {
                KafkaRecord(topic: topic, key: "k\($0)", value: "v\($0)", headers: [KafkaHeader("x-n", "\($0)"), KafkaHeader("x-empty", "")])
            })
        #expect(reports.map(\.offset) == [0, 1, 2])
        await producer.close()

        let consumer = try makeConsumer(group: "g-\(UUID())", topics: [topic])
        let messages = try await consume(consumer, count: 3)
        await consumer.close()
        #expect(messages.map(\.keyString) == ["k0", "k1", "k2"])
        #expect(messages.map { String(decoding: $0.value, as: UTF8.self) } == ["v0", "v1", "v2"])
        #expect(messages.map { $0.header("x-n")?.stringValue } == ["0", "1", "2"])
        #expect(messages[0].header("x-empty")?.value == [])
        #expect(messages.allSatisfy { $0.timestampMs != nil })
    }

    /// What a relay taking over reads: each partition from a given offset to its end. A start
    /// past the end (the broker lost its messages) reads the partition from its first message:
    /// the local broker answers such a fetch with nothing, forever, rather than "out of range".
    @Test func aPartitionReaderReadsFromEachStartToTheEnd() async throws {
        let topic = try await makeTopic("reader", partitions: 2)
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        _ = try await producer.send((0..<6).map { KafkaRecord(topic: topic, key: nil, value: Array("v\($0)".utf8), partition: Int32($0 % 2)) })
        await producer.close()
        let (p0, p1) = (TopicPartition(topic: topic, partition: 0), TopicPartition(topic: topic, partition: 1))
        func read(_ starts: [TopicPartition: Int64], topics: [String] = [topic]) async throws -> [String] {
            try await KafkaPartitionReader.read(
                topics: topics, from: starts, connection: KafkaConfiguration(brokers: brokers), timeout: .seconds(20)
            ) { $0 != Array("v4".utf8) ? () : nil }
            .map { "\($0.entry.partition.partition):\($0.entry.offset):\(String(decoding: $0.entry.value, as: UTF8.self))" }.sorted()
        }
        #expect(try await read([:]) == ["0:0:v0", "0:1:v2", "1:0:v1", "1:1:v3", "1:2:v5"], "everything but what match refused")
        #expect(try await read([p0: 2, p1: 1]) == ["1:1:v3", "1:2:v5"])
        #expect(try await read([p0: 3, p1: 3]) == [], "starts at the ends")
        let pastTheEnd = try await read([p0: 1_000, p1: 2])
        #expect(pastTheEnd == ["0:0:v0", "0:1:v2", "1:2:v5"], "a start past the end reads from the first message")
        #expect(try await read([:], topics: [uniqueTopic("absent")]) == [])
    }

    @Test func recordsWithOneKeyStayInOnePartitionInOrder() async throws {
        let topic = try await makeTopic("sticky", partitions: 4)
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        let keys = (0..<8).map { "user-\($0)" }
        let reports = try await producer.send((0..<80).map { i in KafkaRecord(topic: topic, key: keys[i % 8], value: "\(i)") })
        await producer.close()
        var partitionOfKey: [String: Set<Int32>] = [:]
        for (i, report) in reports.enumerated() { partitionOfKey[keys[i % 8], default: []].insert(report.partition) }
        #expect(partitionOfKey.values.allSatisfy { $0.count == 1 })
        #expect(Set(reports.map(\.partition)).count > 1, "8 keys over 4 partitions should use more than one")

        let consumer = try makeConsumer(group: "g-\(UUID())", topics: [topic])
        let messages = try await consume(consumer, count: 80)
        await consumer.close()
        for key in keys {
            let values = messages.filter { $0.keyString == key }.map { Int(String(decoding: $0.value, as: UTF8.self))! }
            #expect(values == values.sorted() && values.count == 10)
        }
    }

    @Test func aNewConsumerResumesAfterTheLastCommit() async throws {
        let topic = try await makeTopic("resume", partitions: 1)
        let group = "g-\(UUID())"
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        _ = try await producer.send((0..<10).map { KafkaRecord(topic: topic, key: "k", value: "\($0)") })

        let first = try makeConsumer(group: group, topics: [topic])
        let messages = try await consume(first, count: 10)
        #expect(messages.count == 10)
        let tp = TopicPartition(topic: topic, partition: 0)
        try await first.commit([tp: 6])  // messages 0...5 done
        #expect(try await first.committed([tp])[tp] == 6)
        await first.close()

        let second = try makeConsumer(group: group, topics: [topic])
        let rest = try await consume(second, count: 4)
        await second.close()
        #expect(rest.map(\.offset) == [6, 7, 8, 9])
        await producer.close()
    }

    @Test func twoConsumersInOneGroupSplitThePartitions() async throws {
        let topic = try await makeTopic("split", partitions: 4)
        let group = "g-\(UUID())"
        let a = try makeConsumer(group: group, topics: [topic])
        let b = try makeConsumer(group: group, topics: [topic])
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline {
            async let pa = a.poll(maxMessages: 10, timeout: .milliseconds(200))
            async let pb = b.poll(maxMessages: 10, timeout: .milliseconds(200))
            _ = try await (pa, pb)
            if !a.assignment.isEmpty && !b.assignment.isEmpty && a.assignment.count + b.assignment.count == 4 { break }
        }
        #expect(a.assignment.isDisjoint(with: b.assignment))
        #expect(a.assignment.union(b.assignment) == Set((0..<4).map { TopicPartition(topic: topic, partition: $0) }))
        #expect(!a.assignment.isEmpty && !b.assignment.isEmpty)
        await a.close()
        await b.close()
    }

    @Test func pausedPartitionsDeliverNothingUntilResumed() async throws {
        let topic = try await makeTopic("pause", partitions: 2)
        let (paused, fetching) = (TopicPartition(topic: topic, partition: 0), TopicPartition(topic: topic, partition: 1))
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: brokers))
        _ = try await producer.send(KafkaRecord(topic: topic, key: Array("k".utf8), value: Array("first".utf8), partition: 0))
        let consumer = try makeConsumer(group: "g-\(UUID())", topics: [topic])
        #expect(try await consume(consumer, count: 1).count == 1)
        try await consumer.pause([paused])
        // "second" waits on the paused partition; "marker", produced after it, on the other. A
        // fetch that brings the marker would have brought "second" too, were its partition fetched.
        _ = try await producer.send(KafkaRecord(topic: topic, key: Array("k".utf8), value: Array("second".utf8), partition: 0))
        _ = try await producer.send(KafkaRecord(topic: topic, key: Array("k".utf8), value: Array("marker".utf8), partition: 1))
        var whilePaused: [KafkaMessage] = []
        let deadline = Date().addingTimeInterval(30)
        while !whilePaused.contains(where: { $0.topicPartition == fetching }) && Date() < deadline {
            whilePaused += try await consumer.poll(maxMessages: 500, timeout: .milliseconds(200)).messages
        }
        #expect(whilePaused.map { String(decoding: $0.value, as: UTF8.self) } == ["marker"])
        try await consumer.resume([paused])
        let afterResume = try await consume(consumer, count: 1)
        #expect(afterResume.map { String(decoding: $0.value, as: UTF8.self) } == ["second"])
        await consumer.close()
        await producer.close()
    }

    @Test func anUnreachableBrokerIsANamedErrorWithinTheTimeout() async throws {
        let producer = try KafkaProducer(configuration: KafkaConfiguration(brokers: "127.0.0.1:1"), deliveryTimeoutMs: 1_500)
        let started = Date()
        do {
            try await producer.checkConnection(timeoutMs: 1_500)
            Issue.record("connected to nothing")
        } catch let error as KafkaError {
            #expect(error.description.contains("127.0.0.1:1"))
            #expect(error.isRetriable)
        }
        await #expect(throws: KafkaError.self) { try await producer.send(KafkaRecord(topic: "t", key: "k", value: "v")) }
        #expect(Date().timeIntervalSince(started) < 15)
    }

    @Test func aMalformedConfigFileLineIsRejectedWithItsLineNumber() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kafka-\(UUID()).properties").path
        try "# comment\nclient.id=test\nnot a setting\n".write(toFile: path, atomically: true, encoding: .utf8)
        var config = KafkaConfiguration(brokers: brokers)
        #expect { try config.load(file: path) } throws: { "\($0)".contains(":3:") }
        try "client.id=test\n".write(toFile: path, atomically: true, encoding: .utf8)
        try config.load(file: path)
        #expect(config.extra["client.id"] == "test")
    }
}
