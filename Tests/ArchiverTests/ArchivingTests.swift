import Events
import Foundation
import Kafka
import Mongo
import TestSupport
import Testing

@testable import Archiver

@Suite("archiver run: archiving (contract §5)")
struct ArchivingTests {
    @Test func balanceAndPaymentEventsBecomeTheContractsDocuments() async throws {
        let s = try await Scenario()
        let deductId = Make.id(), chargeId = Make.id(), paymentId = Make.id()
        try await s.send([
            Make.charged(s, saga: "charge-1", id: chargeId), Make.deducted(s, saga: "pay-3", id: deductId),
            Make.paymentCompleted(s, saga: "pay-3", id: paymentId),
            Make.event(s.orderTopic, key: "1001", type: EventType.orderPlaced, saga: "order-1001", ["orderId": .int(1001)]),
        ])
        let (archiver, task) = try await s.start()
        #expect(try await eventually { try await s.count(s.store.collection(of: .balance)) == 2 })
        #expect(try await eventually { try await s.count(s.store.collection(of: .payment)) == 1 })
        #expect(try await eventually { archiver.totals.ignored == 1 })
        archiver.stop()
        try await task.value

        let deduct = try #require(try await s.store.collection(of: .balance).findOne(["_id": .string(deductId)]))
        #expect(
            deduct.keys == [
                "_id", "userId", "type", "amount", "balanceBefore", "balanceAfter", "orderId", "paymentId",
                "sagaId", "occurredAt", "archivedAt", "source",
            ])
        #expect(deduct["type"] == "DEDUCT" && deduct["userId"]?.int64Value == 42 && deduct["amount"]?.int64Value == 15_000)
        #expect(deduct["balanceBefore"]?.int64Value == 50_000 && deduct["balanceAfter"]?.int64Value == 35_000)
        #expect(deduct["sagaId"] == "pay-3" && deduct["occurredAt"] == .datetime(1_764_000_000_000))
        #expect(deduct["source"]?.documentValue?["topic"]?.stringValue == s.balanceTopic)
        #expect(deduct["source"]?.documentValue?["offset"]?.int64Value != nil)
        let charge = try #require(try await s.store.collection(of: .balance).findOne(["_id": .string(chargeId)]))
        #expect(charge["type"] == "CHARGE" && charge["orderId"] == nil && charge["paymentId"] == nil)
        let payment = try #require(try await s.store.collection(of: .payment).findOne(["_id": .string(paymentId)]))
        #expect(payment.keys == ["_id", "paymentId", "orderId", "userId", "amount", "status", "sagaId", "occurredAt", "archivedAt", "source"])
        #expect(payment["status"] == "COMPLETED" && payment["orderId"]?.int64Value == 1001)
        await s.drop()
    }

    @Test func theIndexesOfTheContractExist() async throws {
        let s = try await Scenario()
        try await s.store.migrate()
        try await s.store.migrate()  // twice is fine
        let balance = try await s.store.collection(of: .balance).listIndexes().compactMap { $0["key"]?.documentValue?.keys }
        let payment = try await s.store.collection(of: .payment).listIndexes().compactMap { $0["key"]?.documentValue?.keys }
        #expect(balance.contains(["userId", "occurredAt"]) && balance.contains(["sagaId"]))
        #expect(payment.contains(["orderId"]) && payment.contains(["userId", "occurredAt"]) && payment.contains(["sagaId"]))
        await s.drop()
    }

    @Test func aRedeliveredEventLeavesOneUnchangedDocument() async throws {
        let s = try await Scenario()
        let id = Make.id()
        try await s.send([Make.deducted(s, saga: "pay-1", id: id), Make.deducted(s, saga: "pay-1", id: id)])
        var (archiver, task) = try await s.start()
        #expect(try await eventually { archiver.totals.archived == 2 })
        archiver.stop()
        try await task.value
        let first = try await s.store.collection(of: .balance).findOne(["_id": .string(id)])

        // A new group reads everything again: the redelivery changes nothing.
        (archiver, task) = try await s.start(group: "second-\(s.group)")
        #expect(try await eventually { archiver.totals.archived == 2 })
        archiver.stop()
        try await task.value
        #expect(try await s.count(s.store.collection(of: .balance)) == 1)
        #expect(try await s.store.collection(of: .balance).findOne(["_id": .string(id)]) == first)
        await s.drop()
    }

    @Test func offsetsAreCommittedOnlyAfterTheWrite() async throws {
        let mongo = try await PrivateMongo(port: freePort())
        let s = try await Scenario(mongoURI: mongo.uri)
        var config = s.configuration(batchSize: 7)
        config.mongoURI = mongo.uri
        let archiver = try await Archiver(configuration: config, logger: .init(label: "commit-test"))
        let task = Task { try await archiver.run() }
        #expect(try await eventually { archiver.status.snapshot.assignedPartitions > 0 })
        try await mongo.stop()
        try await s.send((0..<20).map { _ in Make.deducted(s, saga: "pay-x") })
        // The first batch was polled and its write failed: nothing may be committed for it.
        #expect(try await eventually(30) { !archiver.status.snapshot.mongoReachable })
        #expect(try await s.committed(s.balanceTopic).isEmpty, "committed while the write was failing")
        try await mongo.start()
        #expect(try await eventually(60) { try await s.count(s.store.collection(of: .balance)) == 20 })
        archiver.stop()
        try await task.value
        // Everything written was committed.
        #expect(try await s.committed(s.balanceTopic).values.reduce(0, +) == 20)
        await s.drop()
        try await mongo.stop()
    }
}
