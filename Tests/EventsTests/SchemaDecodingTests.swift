import Testing

@testable import Events

@Suite("Decoding against a schema of kinds")
struct SchemaDecodingTests {
    /// Attributes may come in any order: `data` before `type` is read once the type is known.
    @Test func dataBeforeTypeIsReadTheSame() throws {
        let dataFirst = """
            {"data":{"userId":42,"amount":15000,"balanceBefore":50000,"balanceAfter":35000,"orderId":1001,"paymentId":3},
             "specversion":"1.0","id":"0f1e6a52-5b7e-4a43-9a8e-2c3d1b7f9e10","source":"/commerce/user","type":"commerce.balance.deducted",
             "subject":"user/42","time":"2026-11-24T10:00:00.123Z","datacontenttype":"application/json","sagaid":"pay-1001-3"}
            """
        let first = BalanceChange(try decode(dataFirst).archiveEvent(fallbackTimeMs: nil))
        let last = BalanceChange(try decode(deducted).archiveEvent(fallbackTimeMs: nil))
        #expect(first != nil && first == last)
    }

    /// Without a schema nothing is the archiver's business.
    @Test func noSchemaNoArchiveEvent() throws {
        #expect(try CloudEvent.decode(Array(deducted.utf8)).archiveEvent(fallbackTimeMs: nil) == nil)
    }
}
