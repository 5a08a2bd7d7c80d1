import ServiceRuntime
import Testing

@Suite("fault plan")
struct FaultPlanTests {
    @Test func aNamedSagaFailsOnlyThatSagaAtThatStep() throws {
        let plan = try FaultPlan(parsing: "cart.remove=order-7")
        #expect(plan.fails("cart.remove", saga: "order-7"))
        #expect(!plan.fails("cart.remove", saga: "order-8"))
        #expect(!plan.fails("stock.decrease", saga: "order-7"))
    }

    @Test func aRateFailsAboutThatShareAndAlwaysTheSameSagas() throws {
        let plan = try FaultPlan(parsing: "*=0.2")
        let failing = (1...5_000).filter { plan.fails("order.pay", saga: "pay-\($0)") }
        #expect((800...1_200).contains(failing.count), "\(failing.count) of 5000")
        #expect(failing == (1...5_000).filter { plan.fails("order.pay", saga: "pay-\($0)") })
        #expect(try FaultPlan(parsing: "order.pay=0").fails("order.pay", saga: "pay-1") == false)
        #expect(try FaultPlan(parsing: "order.pay=1").fails("order.pay", saga: "pay-1"))
    }

    @Test func badPlansAreRejectedWithTheReason() {
        #expect(throws: FaultPlanError.self) { try FaultPlan(parsing: "stok.decrease=0.1") }
        #expect(throws: FaultPlanError.self) { try FaultPlan(parsing: "order.pay=1.5") }
        #expect(throws: FaultPlanError.self) { try FaultPlan(parsing: "order.pay") }
        #expect((try? FaultPlan(parsing: ""))?.isEmpty == true)
    }
}
