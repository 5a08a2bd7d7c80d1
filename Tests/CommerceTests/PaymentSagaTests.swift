import Archiver
import Foundation
import Mongo
import TestSupport
import Testing

/// The payment saga end to end with the archiver: balance deducted -> order paid -> payment
/// completed and archived; each failure restores what was done and deletes the history.
@Suite("payment saga")
struct PaymentSagaTests {
    @Test(arguments: Backend.allCases) func aCompletedPaymentIsArchived(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(price: 2_000, balance: 10_000)
        let order = try await s.order(product: product)
        #expect(try await s.settledOrder(order) == "PLACED")
        let payment = try await s.pay(order: order, amount: 4_000)
        #expect(try await s.settledPayment(payment) == "COMPLETED")
        #expect(try await s.string("/orders/\(order)", "status") == "PAID")
        #expect(try await s.int("/users/1/balance", "balance") == 6_000)
        #expect(try await eventually { try await s.historyCount(s.store.collection(of: .payment), saga: "pay-\(payment)") == 1 })
        #expect(
            try await eventually {
                let deduct = try await s.store.collection(of: .balance).findOne(["sagaId": .string("pay-\(payment)")])
                return deduct?["type"]?.stringValue == "DEDUCT" && deduct?["balanceAfter"]?.int64Value == 6_000
            })
        #expect(try await eventually { try await s.store.collection(of: .balance).count(["type": "CHARGE", "userId": .int64(1)]) == 1 })
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func insufficientBalanceFailsThePaymentAndLeavesTheOrderPlaced(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(price: 2_000, balance: 1_000)
        let order = try await s.order(product: product)
        #expect(try await s.settledOrder(order) == "PLACED")
        let payment = try await s.pay(order: order, amount: 4_000)
        #expect(try await s.settledPayment(payment) == "FAILED")
        #expect(try await s.string("/payments/\(payment)", "reason") == "insufficient balance: user 1 has 1000, payment needs 4000")
        #expect(try await s.string("/orders/\(order)", "status") == "PLACED")
        #expect(try await s.int("/users/1/balance", "balance") == 1_000)
        #expect(
            try await eventually { try await s.store.compensations.findOne(["_id": .string("pay-\(payment)")]) != nil },
            "the archiver recorded the failed saga")
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func anOrderThatCannotBePaidRestoresTheBalanceAndTheHistoryIsDeleted(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let product = try await s.shop(price: 2_000, balance: 10_000)
        let order = try await s.order(product: product)
        #expect(try await s.settledOrder(order) == "PLACED")
        let first = try await s.pay(order: order, amount: 4_000)
        #expect(try await s.settledPayment(first) == "COMPLETED")
        let second = try await s.pay(order: order, amount: 4_000)
        #expect(try await s.settledPayment(second) == "FAILED")
        #expect(try await s.string("/payments/\(second)", "reason") == "order \(order) is already paid by payment \(first)")
        #expect(try await eventually { try await s.int("/users/1/balance", "balance") == 6_000 }, "the second deduction was given back")
        // The failure and the deduction travel on different topics: the archiver either deletes
        // the archived deduction or, if the failure came first, suppresses it.
        #expect(
            try await eventually {
                let record = try await s.store.compensations.findOne(["_id": .string("pay-\(second)")])
                let deleted = record?["deleted"]?.documentValue?["balance_history"]?.arrayValue?.count ?? 0
                return deleted + (record?["suppressed"]?.arrayValue?.count ?? 0) == 1
            }, "the archiver took back the second payment's deduction")
        #expect(try await eventually { try await s.historyCount(s.store.collection(of: .balance), saga: "pay-\(second)") == 0 })
        #expect(try await eventually { try await s.historyCount(s.store.collection(of: .payment), saga: "pay-\(first)") == 1 })
        await s.finish()
    }

    @Test(arguments: Backend.allCases) func aFailureAfterTheOrderWasPaidRestoresOrderStatusAndBalance(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend, faults: "payment.complete=pay-1")
        let product = try await s.shop(price: 2_000, balance: 10_000)
        let order = try await s.order(product: product)
        #expect(try await s.settledOrder(order) == "PLACED")
        let payment = try await s.pay(order: order, amount: 4_000)
        #expect(payment == 1)
        #expect(try await s.settledPayment(payment) == "FAILED")
        #expect(try await eventually { try await s.string("/orders/\(order)", "status") == "PLACED" }, "order status restored")
        #expect(try await eventually { try await s.int("/users/1/balance", "balance") == 10_000 }, "balance restored")
        #expect(
            try await eventually {
                let record = try await s.store.compensations.findOne(["_id": "pay-1"])
                let deleted = record?["deleted"]?.documentValue?["balance_history"]?.arrayValue?.count ?? 0
                return deleted + (record?["suppressed"]?.arrayValue?.count ?? 0) == 1
            }, "the deduction was archived and taken back, or suppressed")
        // The archiver writes its compensation record first, then deletes.
        #expect(try await eventually { try await s.historyCount(s.store.collection(of: .balance), saga: "pay-1") == 0 })
        // The payment never completed, so no payment history was ever archived, nor taken back.
        let record = try await s.store.compensations.findOne(["_id": "pay-1"])
        #expect(record?["deleted"]?.documentValue?["payment_history"]?.arrayValue == [], "\(String(describing: record))")
        await s.finish()
    }
}
