import Events
import Foundation
import Testing

/// The services' event JSON, written and read by hand: the same JSON Foundation's Codable made
/// and read, and the same refusals.
@Suite("commerce event codec")
struct CommerceEventCodecTests {
    static let full = CommerceEvent(
        id: "e-1", source: "/commerce/order", type: "commerce.order.requested", subject: "order/7", timeMs: 1_795_600_000_123, sagaId: "order-7",
        data: CommerceEventData(
            userId: 3, orderId: 7, paymentId: 9, amount: -12, balanceBefore: 100, balanceAfter: Int64.max,
            items: [OrderItem(productId: 1, quantity: 2), OrderItem(productId: 5, quantity: 1)], status: "PENDING",
            reason: "quote \" backslash \\ slash / newline \n tab \t bell \u{07} é ✓"))

    @Test func whatItWritesFoundationReadsAndTheOtherWayRound() throws {
        let mine = try Self.full.encoded()
        #expect(try JSONDecoder().decode(CommerceEvent.self, from: Data(mine)) == Self.full)
        let foundations = try JSONEncoder().encode(Self.full)
        #expect(try CommerceEvent.decode(Array(foundations)) == Self.full)
        #expect(try CommerceEvent.decode(mine) == Self.full)
        let text = String(decoding: mine, as: UTF8.self)
        #expect(
            text.hasPrefix(
                #"{"specversion":"1.0","id":"e-1","source":"/commerce/order","type":"commerce.order.requested","subject":"order/7","time":"#))
    }

    @Test func absentOptionalsAreLeftOutAndNullIsAbsent() throws {
        let bare = CommerceEvent(id: "e-2", source: "/s", type: "t", timeMs: 0, sagaId: "s", data: CommerceEventData(orderId: 1))
        let text = String(decoding: try bare.encoded(), as: UTF8.self)
        #expect(text.contains(#""data":{"orderId":1}"#) && !text.contains("subject"), "\(text)")
        let withNulls =
            #"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z","subject":null,"extra":[1,{"a":2}],"data":{"orderId":null,"items":null,"unknown":true}}"#
        let event = try CommerceEvent.decode(Array(withNulls.utf8))
        #expect(event.subject == nil && event.data.orderId == nil && event.data.items == nil && event.sagaid == nil)
    }

    @Test func whatFoundationRefusedIsRefused() {
        let bad = [
            "{not an event",
            "[1]",
            #"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z"}"#,  // no data
            #"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z","data":null}"#,
            #"{"specversion":"1.0","source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z","data":{}}"#,  // no id
            #"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z","data":{"amount":"15000"}}"#,
            #"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z","data":{"amount":150.5}}"#,
            #"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z","data":{"amount":99999999999999999999}}"#,
            #"{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z","data":{"items":[{"productId":1}]}}"#,
            #"{"specversion":"1.0","id":7,"source":"/s","type":"t","time":"2026-11-24T10:00:00.000Z","data":{}}"#,
        ]
        for text in bad {
            #expect(throws: (any Error).self, "\(text)") { try CommerceEvent.decode(Array(text.utf8)) }
            #expect(throws: (any Error).self, "Foundation too: \(text)") { try JSONDecoder().decode(CommerceEvent.self, from: Data(text.utf8)) }
        }
    }

    @Test func orderLinesAsTheServicesKeepThem() throws {
        let items = [OrderItem(productId: 1, quantity: 2), OrderItem(productId: 30, quantity: 4)]
        let text = OrderItem.encodeList(items)
        // Foundation's key order varies from run to run on Linux: the text is compared with a
        // literal, and Foundation's reading of it with the lines.
        #expect(text == #"[{"productId":1,"quantity":2},{"productId":30,"quantity":4}]"#)
        #expect(try JSONDecoder().decode([OrderItem].self, from: Data(text.utf8)) == items)
        #expect(try OrderItem.decodeList(text) == items)
        #expect(throws: (any Error).self) { try OrderItem.decodeList(#"[{"productId":1,"quantity":2}] trailing"#) }
    }
}
