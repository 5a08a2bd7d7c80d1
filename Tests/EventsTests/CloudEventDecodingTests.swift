import Foundation
import Testing

@testable import Events

let deducted = """
    {"specversion":"1.0","id":"0f1e6a52-5b7e-4a43-9a8e-2c3d1b7f9e10","source":"/commerce/user","type":"commerce.balance.deducted",
     "subject":"user/42","time":"2026-11-24T10:00:00.123Z","datacontenttype":"application/json","sagaid":"pay-1001-3",
     "data":{"userId":42,"amount":15000,"balanceBefore":50000,"balanceAfter":35000,"orderId":1001,"paymentId":3}}
    """

func decode(_ text: String) throws -> CloudEvent { try CloudEvent.decode(Array(text.utf8), schema: contract) }

func kind(of text: String) -> EventDecodingError.Kind? {
    do {
        _ = try CloudEvent.decode(Array(text.utf8), schema: contract).archiveEvent(fallbackTimeMs: nil)
        return nil
    } catch { return error.kind }
}

@Suite("Decoding CloudEvents (contract §2, §4)")
struct CloudEventDecodingTests {
    @Test func theContractsDeductionDecodesToABalanceChange() throws {
        let event = try decode(deducted)
        #expect(event.sagaId == "pay-1001-3")
        let archive = try event.archiveEvent(fallbackTimeMs: nil)
        #expect(
            BalanceChange(archive)
                == BalanceChange(
                    eventId: "0f1e6a52-5b7e-4a43-9a8e-2c3d1b7f9e10", kind: .deduct, userId: 42, amount: 15000,
                    balanceBefore: 50000, balanceAfter: 35000, orderId: 1001, paymentId: 3, sagaId: "pay-1001-3",
                    occurredAtMs: Timestamp.parse("2026-11-24T10:00:00.123Z")!))
    }

    @Test func unknownAttributesAndDataFieldsAreIgnored() throws {
        let text = deducted.replacingOccurrences(of: "\"subject\"", with: "\"extra\":{\"deep\":[1,2,{\"x\":null}]},\"subject\"")
            .replacingOccurrences(of: "\"userId\":42", with: "\"userId\":42,\"note\":\"hi\\u00e9\\n\",\"f\":1.5e3")
        guard let b = BalanceChange(try decode(text).archiveEvent(fallbackTimeMs: nil)) else { Issue.record("not a balance"); return }
        #expect(b.userId == 42 && b.amount == 15000)
    }

    @Test func aChargeHasNoOrderOrPayment() throws {
        let text = """
            {"specversion":"1.0","id":"c1","source":"/commerce/user","type":"commerce.balance.charged","sagaid":"charge-c1",
             "time":"2026-11-24T10:00:00+09:00","data":{"userId":7,"amount":100,"balanceBefore":0,"balanceAfter":100}}
            """
        guard let b = BalanceChange(try decode(text).archiveEvent(fallbackTimeMs: nil)) else { Issue.record("not a balance"); return }
        #expect(b.kind == .charge && b.orderId == nil && b.paymentId == nil)
        #expect(b.occurredAtMs == Timestamp.parse("2026-11-24T01:00:00Z"))
    }

    @Test func paymentCompletedAndSagaFailuresDecode() throws {
        let payment = """
            {"specversion":"1.0","id":"p1","source":"/commerce/payment","type":"commerce.payment.completed","sagaid":"pay-3",
             "time":"2026-11-24T10:00:00Z","data":{"paymentId":3,"orderId":1001,"userId":42,"amount":15000,"status":"COMPLETED"}}
            """
        guard let p = PaymentCompletion(try decode(payment).archiveEvent(fallbackTimeMs: nil)) else { Issue.record("not a payment"); return }
        #expect(p.status == "COMPLETED" && p.orderId == 1001)
        let failed = """
            {"specversion":"1.0","id":"f1","source":"/commerce/order","type":"commerce.order.status-change-failed","sagaid":"pay-3","data":{"reason":"order cancelled"}}
            """
        #expect(
            try decode(failed).archiveEvent(fallbackTimeMs: nil)
                == .sagaFailed(SagaFailure(eventId: "f1", type: EventType.orderStatusChangeFailed, sagaId: "pay-3", reason: "order cancelled")))
    }

    @Test func otherTypesAreNoneOfTheArchiversBusiness() throws {
        let placed =
            #"{"specversion":"1.0","id":"o1","source":"/commerce/order","type":"commerce.order.placed","data":{"orderId":"not even checked"}}"#
        #expect(try decode(placed).archiveEvent(fallbackTimeMs: nil) == nil)
    }

    @Test func theKafkaTimestampStandsInForAMissingTime() throws {
        let text = deducted.replacingOccurrences(of: "\"time\":\"2026-11-24T10:00:00.123Z\",", with: "")
        guard let b = BalanceChange(try decode(text).archiveEvent(fallbackTimeMs: 1234)) else { Issue.record("not a balance"); return }
        #expect(b.occurredAtMs == 1234)
        #expect(throws: EventDecodingError.self) { try decode(text).archiveEvent(fallbackTimeMs: nil) }
    }

    @Test(arguments: [
        "", "not json", "{\"specversion\":\"1.0\"", "{\"a\":1}x", "{\"a\":\"\u{1}\"}", "{'a':1}", "[1,2", "{\"a\":01}",
        "{\"a\":\"\\q\"}", "{\"a\":tru}",
    ])
    func malformedJSONIsADecodeError(_ text: String) {
        #expect(kind(of: text) == .decode)
    }

    @Test func invalidUTF8IsADecodeError() {
        #expect(throws: EventDecodingError.self) { try CloudEvent.decode([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) }
        do { _ = try CloudEvent.decode(Array("{\"id\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)) } catch { #expect(error.kind == .decode) }
    }

    @Test(arguments: [
        ("[1,2]", "JSON object"),
        ("{\"id\":\"x\"}", "specversion"),
        (deducted.replacingOccurrences(of: "\"1.0\"", with: "\"0.3\""), "specversion 0.3"),
        (deducted.replacingOccurrences(of: "\"id\":\"0f1e6a52-5b7e-4a43-9a8e-2c3d1b7f9e10\",", with: ""), "id"),
        (deducted.replacingOccurrences(of: "\"amount\":15000", with: "\"amount\":\"15000\""), "data.amount must be an integer, got a string"),
        (deducted.replacingOccurrences(of: "\"amount\":15000", with: "\"amount\":150.5"), "data.amount must be an integer"),
        (deducted.replacingOccurrences(of: "\"amount\":15000,", with: ""), "data.amount is missing"),
        (deducted.replacingOccurrences(of: "\"orderId\":1001", with: "\"orderId\":true"), "data.orderId"),
        (deducted.replacingOccurrences(of: "\"sagaid\":\"pay-1001-3\",", with: ""), "sagaid"),
        (deducted.replacingOccurrences(of: "2026-11-24T10:00:00.123Z", with: "yesterday"), "time"),
        (deducted.replacingOccurrences(of: "\"type\":\"commerce.balance.deducted\"", with: "\"type\":7"), "type must be a string"),
        (#"{"specversion":"1.0","id":"x","source":"s","type":"commerce.payment.failed","sagaid":"s","data":"oops"}"#, "data must be a JSON object"),
    ])
    func wrongShapesAreSchemaErrorsThatNameTheField(_ text: String, _ mentions: String) {
        do {
            _ = try CloudEvent.decode(Array(text.utf8), schema: contract).archiveEvent(fallbackTimeMs: nil)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.kind == .schema)
            #expect(error.message.contains(mentions), "\(error.message)")
        }
    }

    @Test func anOutgoingEventDecodesToWhatWasWritten() throws {
        let out = OutgoingEvent(
            id: "e-\"1\"", source: "/archiver", type: EventType.historyDeleted, timeMs: 1_764_000_000_123,
            sagaId: "pay-9", data: ["sagaId": .string("pay-9"), "reason": .string("line\nbreak ✓")])
        // `data` is read for the types of a schema: here one whose only type is this one, with a reason.
        let event = try CloudEvent.decode(out.bytes, schema: EventSchema(histories: [], failureTypes: [EventType.historyDeleted]))
        #expect(event.id == "e-\"1\"" && event.type == EventType.historyDeleted && event.timeMs == 1_764_000_000_123)
        #expect(event.data.values.text(EventSchema.reason) == "line\nbreak ✓")
        #expect(try JSONValue.parse(out.json)["data"]?["sagaId"] == .string("pay-9"))
    }

    /// Strings are scanned eight bytes at a time: the closing quote, an escape, a control character
    /// and a non-ASCII character must be seen at every offset in that block.
    @Test func stringsAreReadTheSameWhereverTheirSpecialBytesFall() throws {
        func id(_ json: String) throws -> String {
            try decode(deducted.replacingOccurrences(of: "\"0f1e6a52-5b7e-4a43-9a8e-2c3d1b7f9e10\"", with: "\"\(json)\"")).id
        }
        for n in 0..<20 {
            let head = String(repeating: "a", count: n), tail = String(repeating: "b", count: 19 - n)
            #expect(try id(head + "x") == head + "x")
            #expect(try id(head + "\\\"" + tail) == head + "\"" + tail)
            #expect(try id(head + "\\u00e9" + tail) == head + "é" + tail)
            #expect(try id(head + "é✓" + tail) == head + "é✓" + tail)
            #expect(kind(of: deducted.replacingOccurrences(of: "0f1e6a52-5b7e-4a43-9a8e-2c3d1b7f9e10", with: head + "\t" + tail)) == .decode)
        }
    }

    @Test func theServicesSourcesAndAnyOtherAreReadAsWritten() throws {
        for source in ["/commerce/payment", "/commerce/product", "/commerce/paymenX", "/commerce/payments", "/x", "/commerce/order"] {
            #expect(try decode(deducted.replacingOccurrences(of: "/commerce/user", with: source)).source == source)
        }
    }
}

@Suite("RFC 3339 timestamps")
struct TimestampTests {
    @Test(arguments: ["1970-01-01T00:00:00Z", "2000-02-29T23:59:59.999Z", "2026-11-24T10:00:00.123Z", "1969-12-31T23:59:59.500Z"])
    func formatAndParseRoundTrip(_ text: String) throws {
        let ms = try #require(Timestamp.parse(text))
        #expect(Timestamp.format(ms) == text.replacingOccurrences(of: ":00Z", with: ":00.000Z"))
    }

    @Test func knownValues() {
        #expect(Timestamp.parse("1970-01-01T00:00:01Z") == 1000)
        #expect(Timestamp.parse("2026-11-24T10:00:00.1234567Z") == Timestamp.parse("2026-11-24T10:00:00.123Z"))
        #expect(Timestamp.parse("2026-11-24T19:00:00+09:00") == Timestamp.parse("2026-11-24T10:00:00Z"))
    }

    @Test(arguments: [
        "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-24 10:00", "2026-11-24T10:00:00", "2026-11-24T10:00:00Zjunk", "2026-11-24T25:00:00Z",
    ])
    func rejectsWhatIsNotATimestamp(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }
}

@Suite("CloudEvent: bounded attributes")
struct BoundedAttributeTests {
    func event(id: String, saga: String) -> [UInt8] {
        Array(#"{"specversion":"1.0","id":"\#(id)","source":"/s","type":"commerce.payment.failed","sagaid":"\#(saga)","data":{"reason":"r"}}"#.utf8)
    }

    @Test func anIdOrSagaLongerThan256BytesIsASchemaError() {
        #expect(throws: EventDecodingError.self) { try CloudEvent.decode(event(id: String(repeating: "i", count: 257), saga: "pay-1")) }
        #expect(throws: EventDecodingError.self) { try CloudEvent.decode(event(id: "e1", saga: String(repeating: "s", count: 257))) }
        #expect(throws: Never.self) { try CloudEvent.decode(event(id: String(repeating: "i", count: 256), saga: String(repeating: "s", count: 256))) }
    }

    @Test func textIsCutByBytesAtACharacterBoundary() {
        let cut = Text.utf8Prefix("a" + String(repeating: "é", count: 10), maxBytes: 6)
        #expect(cut == "aéé" && cut.utf8.count == 5)
        let marks = "a" + String(repeating: "\u{301}", count: 1_000)  // one Character, 2,001 bytes
        #expect(Text.utf8Prefix(marks, maxBytes: 1_000).utf8.count <= 1_000)
    }
}
