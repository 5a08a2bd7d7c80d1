import Testing

@testable import Events

/// W3C Trace Context level 1, as a receiver must read `traceparent`.
@Suite("traceparent")
struct TraceParentTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func aWellFormedOneIsReadAndWrittenBackAlike() throws {
        let trace = try #require(TraceParent(Self.valid))
        #expect(trace.traceId == TraceID(high: 0x4bf9_2f35_77b3_4da6, low: 0xa3ce_929d_0e0e_4736))
        #expect(trace.spanId == 0x00f0_67aa_0ba9_02b7 && trace.flags == 1)
        #expect(trace.text == Self.valid && trace.traceId.hex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(TraceID(hex: trace.traceId.hex) == trace.traceId)
        #expect(trace.traceId.withHex { String(decoding: $0, as: UTF8.self) } == trace.traceId.hex)
    }

    @Test(arguments: [
        "", "garbage", String(valid.dropLast()), valid + "0", valid + "-extra",
        valid.uppercased(), valid.replacingOccurrences(of: "-", with: "_"),
        "ff" + valid.dropFirst(2),  // version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // all-zero span id
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // a later version's extra fields follow a dash
    ])
    func aMalformedOneIsNothing(text: String) {
        #expect(TraceParent(text) == nil)
    }

    @Test func aLaterVersionIsReadByItsFirstFieldsAndWrittenAsVersion00() throws {
        let later = try #require(TraceParent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"))
        #expect(later.text == Self.valid)
    }

    @Test func aChildKeepsOnlyTheSampledFlag() throws {
        #expect(TraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff")?.child().flags == 0x01)
        #expect(TraceParent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe")?.child().flags == 0x00)
    }

    @Test func aChildKeepsTheTraceAndFlagsWithANewSpan() throws {
        let parent = try #require(TraceParent(Self.valid))
        let children = (0..<100).map { _ in parent.child() }
        #expect(children.allSatisfy { $0.traceId == parent.traceId && $0.flags == parent.flags && $0.spanId != 0 })
        #expect(Set(children.map(\.spanId)).count == 100 && !children.map(\.spanId).contains(parent.spanId))
        let roots = (0..<100).map { _ in TraceParent.root() }
        #expect(Set(roots.map(\.traceId)).count == 100 && roots.allSatisfy { TraceParent($0.text) == $0 })
    }

    @Test func anEventsTraceparentIsReadAndAMalformedOneIgnored() throws {
        let traced = deducted.replacingOccurrences(of: #""sagaid""#, with: #""traceparent":"\#(Self.valid)","sagaid""#)
        #expect(try decode(traced).traceParent == TraceParent(Self.valid))
        guard let change = BalanceChange(try decode(traced).archiveEvent(fallbackTimeMs: nil)) else { Issue.record("not a balance change"); return }
        #expect(change.traceParent == TraceParent(Self.valid))
        // Escapes are JSON's business: undone, this one is well formed.
        let escaped = deducted.replacingOccurrences(
            of: #""sagaid""#, with: #""traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u0031","sagaid""#)
        #expect(try decode(escaped).traceParent == TraceParent(Self.valid))
        #expect(try CommerceEvent.decode(Array(escaped.utf8)).traceparent == Self.valid)
        for bad in [#""nope""#, "42", "null", #"{"a":1}"#, #""00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u0078""#] {
            let event = try decode(deducted.replacingOccurrences(of: #""sagaid""#, with: #""traceparent":\#(bad),"sagaid""#))
            #expect(event.traceParent == nil && event.sagaId == "pay-1001-3", "\(bad)")
        }
        let commerce = try CommerceEvent.decode(Array(traced.utf8))
        #expect(commerce.traceparent == Self.valid)
        #expect(try CommerceEvent.decode(commerce.encoded()) == commerce)
        #expect(
            try CommerceEvent.decode(Array(deducted.replacingOccurrences(of: #""sagaid""#, with: #""traceparent":"x","sagaid""#).utf8)).traceparent
                == nil)
    }

    @Test func anEventContinuesATraceOnlyWhenItHasNone() throws {
        let parent = try #require(TraceParent(Self.valid))
        let fresh = CommerceEvent(source: "/test", type: "t", timeMs: 0, sagaId: "s", data: CommerceEventData())
        let continued = fresh.continuing(parent)
        #expect(continued.traceparent.flatMap(TraceParent.init)?.traceId == parent.traceId && continued.traceparent != Self.valid)
        #expect(continued.continuing(TraceParent.root()) == continued)
        #expect(fresh.continuing(nil) == fresh)
    }
}
