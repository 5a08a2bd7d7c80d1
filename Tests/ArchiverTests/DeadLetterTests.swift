import Events
import Foundation
import Kafka
import Mongo
import TestSupport
import Testing

@testable import Archiver

@Suite("archiver run: dead letters (contract §6)")
struct DeadLetterTests {
    @Test func everyKindIsDeadLetteredUnchangedWithTheContractsHeadersAndTheRestArchived() async throws {
        let s = try await Scenario()
        // An operator's unique index makes MongoDB refuse the second of two deductions leaving the same balance.
        try await s.store.migrate()
        try await s.store.collection(of: .balance).createIndexes([IndexModel(keys: ["balanceAfter": 1], name: "unique_after", unique: true)])
        let good = Make.deducted(s, saga: "pay-1", amount: 100)
        let refused = Make.deducted(s, saga: "pay-2", amount: 100)
        let bad: [(KafkaRecord, String, String)] = [
            (KafkaRecord(topic: s.balanceTopic, key: "k1", value: "not json at all", headers: [KafkaHeader("trace", "t1")]), "decode", "not JSON"),
            (KafkaRecord(topic: s.paymentTopic, key: "k2", value: "[1,2,3]"), "schema", "JSON object"),
            (KafkaRecord(topic: s.paymentTopic, key: "k3", value: #"{"id":"x","type":"commerce.payment.completed"}"#), "schema", "specversion"),
            (
                Make.event(
                    s.balanceTopic, key: "k4", type: EventType.balanceDeducted, saga: "pay-3",
                    ["userId": "42", "amount": 1, "balanceBefore": 1, "balanceAfter": 0]),
                "schema", "data.userId must be an integer"
            ),
            (
                Make.event(s.paymentTopic, key: "k5", type: EventType.paymentCompleted, saga: "pay-4", ["paymentId": 1]), "schema",
                "data.orderId is missing"
            ),
            (KafkaRecord(topic: s.balanceTopic, key: nil, value: [0xFF, 0xFE, 0x00]), "decode", "not JSON"),
        ]
        try await s.send([good] + bad.map(\.0))
        try await s.send([refused])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.deadLettered == bad.count + 1 })
        archiver.stop()
        try await task.value
        #expect(try await s.count(s.store.collection(of: .balance)) == 1)

        let letters = try await s.read(s.deadLetterTopic, count: bad.count + 1)
        #expect(letters.count == bad.count + 1)
        for (record, kind, mentions) in bad {
            let letter = try #require(
                letters.first { $0.value == record.value }, "no dead letter for \(String(decoding: record.value, as: UTF8.self))")
            #expect(letter.key == record.key)
            #expect(letter.header("x-error-kind")?.stringValue == kind)
            #expect(
                letter.header("x-error-message")?.stringValue.contains(mentions) == true, "\(letter.header("x-error-message")?.stringValue ?? "")")
            #expect(letter.header("x-original-topic")?.stringValue == record.topic)
            #expect(letter.header("x-original-partition").flatMap { Int32($0.stringValue) } != nil)
            #expect(letter.header("x-original-offset").flatMap { Int64($0.stringValue) } != nil)
            #expect(letter.header("x-attempts")?.stringValue == "1")
            #expect(letter.header("x-failed-at").flatMap { Timestamp.parse($0.stringValue) } != nil)
        }
        #expect(letters.first { $0.value == bad[0].0.value }?.header("trace")?.stringValue == "t1", "original headers are kept")
        let rejected = try #require(letters.first { $0.value == refused.value })
        #expect(rejected.header("x-error-kind")?.stringValue == "rejected")
        #expect(rejected.header("x-error-message")?.stringValue.contains("11000") == true)
        await s.drop()
    }
}
