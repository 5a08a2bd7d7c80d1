import Testing

@testable import Archiver

/// The `batch timeline` log's figures: pure formatting, no server.
@Suite("Batch timeline")
struct BatchTimelineTests {
    @Test func millisecondsKeepTwoDecimalsTruncatedAndPadded() {
        #expect(BatchTimeline.milliseconds(.microseconds(1_054)) == "1.05")
        #expect(BatchTimeline.milliseconds(.microseconds(1_009)) == "1.00")
        #expect(BatchTimeline.milliseconds(.microseconds(70)) == "0.07")
        #expect(BatchTimeline.milliseconds(.seconds(2) + .microseconds(999)) == "2000.99")
        #expect(BatchTimeline.milliseconds(.zero) == "0.00")
    }

    @Test func eachMarkChargesTheTimeSinceThePreviousMarkToItsPhase() {
        let start = ContinuousClock.now - .seconds(10)
        var timeline = BatchTimeline(start: start)
        timeline.mark(.poll)  // about ten seconds
        timeline.mark(.decode)  // almost nothing
        let metadata = timeline.metadata(events: 7)
        #expect(metadata["events"] == "7")
        #expect(Set(metadata.keys) == ["events", "pollMs", "decodeMs", "lookupMs", "settleMs", "writeMs"])
        let poll = Double("\(metadata["pollMs"]!)")!
        let decode = Double("\(metadata["decodeMs"]!)")!
        #expect(poll >= 10_000 && decode < 1_000)
        #expect(metadata["writeMs"] == "0.00")
    }
}
