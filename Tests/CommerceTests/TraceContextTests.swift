import Events
import Foundation
import Kafka
import Mongo
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One saga, one trace: the HTTP request's W3C `traceparent` travels with every event the
/// saga causes, in the envelope and as the Kafka header, through every service and the archiver.
@Suite("trace context")
struct TraceContextTests {
    static let orderTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    static let paymentTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test(arguments: Backend.allCases) func everyHopOfASagaCarriesTheRequestsTrace(backend: Backend) async throws {
        let s = try await CommerceScenario(backend: backend)
        let (order, payment) = try await s.placedOrderAndFailedPayment(orderTrace: Self.orderTrace, paymentTrace: Self.paymentTrace)

        // Read until every hop of both sagas is there: the topics' partitions arrive in any order.
        let hops = try await Self.events(
            of: ["order-\(order)", "pay-\(payment)"], in: s,
            until: [
                EventType.orderRequested, EventType.stockDecreased, EventType.cartRemoved, EventType.orderPlaced,
                EventType.paymentRequested, EventType.balanceDeductFailed, EventType.paymentFailed, EventType.historyDeleted,
            ])
        let orderHops = hops.filter { $0.saga == "order-\(order)" }, paymentHops = hops.filter { $0.saga == "pay-\(payment)" }
        for (hops, trace) in [(orderHops, Self.orderTrace), (paymentHops, Self.paymentTrace)] {
            let expected = try #require(TraceParent(trace))
            for hop in hops {
                #expect(hop.header?.traceId == expected.traceId, "\(hop.type) has the header of its saga's trace")
                #expect(hop.envelope == hop.header, "\(hop.type): the envelope and the header agree")
            }
            // Each hop is a span of its own, none of them the caller's (a redelivered copy of an
            // event is the same hop: counted once).
            let spans = Dictionary(hops.map { ($0.id, $0.header?.spanId) }, uniquingKeysWith: { first, _ in first })
            #expect(Set(spans.values.compactMap { $0 }).count == spans.count && !spans.values.contains(expected.spanId))
        }
        let record = try await s.store.compensations.findOne(["_id": .string("pay-\(payment)")])
        #expect(record?["traceId"]?.stringValue == TraceParent(Self.paymentTrace)?.traceId.hex)
        await s.finish()
    }

    @Test func aMissingOrMalformedTraceparentStartsANewTraceAndTheResponseNamesIt() async throws {
        let s = try await CommerceScenario(backend: .sqlite)
        let product = try await s.shop(price: 1_000, balance: 10_000, quantity: 4)
        var orders: [(Int64, TraceParent)] = []
        for header in [
            "", "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "garbage",
        ] {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(s.port)/orders")!)
            request.httpMethod = "POST"
            request.httpBody = Data(#"{"userId": 1, "items": [{"productId": \#(product), "quantity": 1}]}"#.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.setValue("Bearer \(try await TestTokens.shared.token(.user(1)))", forHTTPHeaderField: "Authorization")
            if !header.isEmpty { request.setValue(header, forHTTPHeaderField: "traceparent") }
            let (data, response) = try await URLSession.shared.data(for: request)
            let http = try #require(response as? HTTPURLResponse)
            #expect(http.statusCode == 202, "\(header): \(String(decoding: data, as: UTF8.self))")
            let named = try #require(http.value(forHTTPHeaderField: "traceresponse").flatMap(TraceParent.init), "\(header)")
            let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            orders.append((try #require((json?["orderId"] as? NSNumber)?.int64Value), named))
        }
        #expect(Set(orders.map(\.1.traceId)).count == orders.count, "a new trace each")
        // The malformed headers' ids (capitals, zeros) were not taken up in any form.
        #expect(!orders.map(\.1.traceId.hex).contains { ["0af7651916cd43dd8448eb211c80319c", String(repeating: "0", count: 32)].contains($0) })
        let hops = try await Self.events(
            of: orders.map { "order-\($0.0)" }, in: s, until: Array(repeating: EventType.orderPlaced, count: orders.count))
        for (order, named) in orders {
            let sagaHops = hops.filter { $0.saga == "order-\(order)" }
            #expect(!sagaHops.isEmpty && sagaHops.allSatisfy { $0.header?.traceId == named.traceId }, "order \(order)")
        }
        await s.finish()
    }

    @Test func aRetryAnsweredFromItsIdempotencyKeyNamesTheTraceTheFirstRequestsEventsCarry() async throws {
        let s = try await CommerceScenario(backend: .sqlite)
        let product = try await s.shop(price: 1_000, balance: 10_000)
        let body: [String: Any] = ["userId": 1, "items": [["productId": product, "quantity": 1]]]
        let first = try await s.exchange("POST", "/orders", body, headers: ["Idempotency-Key": "o-1", "traceparent": Self.orderTrace])
        let retry = try await s.exchange("POST", "/orders", body, headers: ["Idempotency-Key": "o-1", "traceparent": Self.paymentTrace])
        let named = try #require(first.response?.value(forHTTPHeaderField: "traceresponse").flatMap(TraceParent.init))
        #expect(named.traceId == TraceParent(Self.orderTrace)?.traceId)
        #expect(retry.status == first.status && retry.json["orderId"] as? Int == first.json["orderId"] as? Int)
        #expect(retry.response?.value(forHTTPHeaderField: "traceresponse") == named.text, "the first request's context, not the retry's")
        let order = try #require((first.json["orderId"] as? NSNumber)?.int64Value)
        let hops = try await Self.events(of: ["order-\(order)"], in: s, until: [EventType.orderRequested])
        #expect(!hops.isEmpty && hops.allSatisfy { $0.header?.traceId == named.traceId })
        await s.finish()
    }

    struct Hop {
        var id: String
        var saga: String
        var type: String
        var header: TraceParent?
        var envelope: TraceParent?
    }

    /// Every event of `sagas` on the scenario's topics, read from the beginning until the
    /// `until` types have all been seen (a type listed twice must be seen twice).
    static func events(of sagas: [String], in s: CommerceScenario, until types: [String]) async throws -> [Hop] {
        let topics = [Topic.order, Topic.product, Topic.balance, Topic.payment, Topic.compensation].map { s.prefix + $0 }
        var config = KafkaConsumerConfiguration(connection: KafkaConfiguration(brokers: brokers), groupID: "trace-\(UUID())", topics: topics)
        config.sessionTimeoutMs = 6_000
        let consumer = try KafkaConsumer(configuration: config)
        var hops: [Hop] = []
        let wanted = Set(sagas)
        let deadline = Date().addingTimeInterval(60)
        func missing() -> Bool {
            var left = types
            for hop in hops { if let i = left.firstIndex(of: hop.type) { left.remove(at: i) } }
            return !left.isEmpty
        }
        while missing(), Date() < deadline {
            for message in try await consumer.poll(maxMessages: 500, timeout: .milliseconds(200)).messages {
                guard let event = try? CloudEvent.decode(message.value), let saga = event.sagaId, wanted.contains(saga) else { continue }
                hops.append(
                    Hop(
                        id: event.id, saga: saga, type: event.type, header: message.header("traceparent").flatMap { TraceParent($0.stringValue) },
                        envelope: event.traceParent))
            }
        }
        await consumer.close()
        #expect(!missing(), "saw \(hops.map(\.type))")
        return hops
    }
}
