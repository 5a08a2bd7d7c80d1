import Archiver
import Benchmark
import Foundation
import Kafka

/// The archiver's per-event work without servers, as `archiver run` does it between a poll and
/// its bulk writes: decode each CloudEvent, plan the batch, write each history document's BSON
/// (`HotPath.encode`).
///
/// One iteration is one batch of 1,000 messages and `scalingFactor: .kilo` divides by 1,000, so
/// the figures printed are per event (`--scale` prints them per batch). The committed p90
/// thresholds, `Thresholds/<swift>/HotPath.ArchiverHotPath1000.p90.json`, are per batch.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, threadCPU, threadCPUBestOf20, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 2_000,
        // How far a run's p90 may stray from the committed one (either way) and still count as
        // equal. Only the metrics in the thresholds file are checked (scripts/check-benchmarks
        // keeps these two); one checked without an entry here would have to match exactly.
        thresholds: [
            // The time gate: 25%. On the shared machine its p90 stayed within 2% in 9 runs of 10
            // (once +37%, with a neighbour's build holding the other hyperthread for long; the
            // script then runs again), while per-batch thread CPU p90 moved by 20% and wall-clock
            // p90 by 200%.
            threadCPUBestOf20: .init(relative: [.p90: 25.0]),
            // Allocations are deterministic: ±100 per batch (0.1 per event), so one more
            // allocation per event fails, and so does one more for every tenth event.
            .mallocCountTotal: .init(absolute: [.p90: 100]),
        ]
    )

    // Built once, outside the measurement: one batch is `scalingFactor` events. The traced batch
    // is the same events as the services now send them, each with a `traceparent`: reading it
    // and writing the documents' `traceId` must cost no allocation.
    // No spaces or `/` in a name: it is the thresholds file's name.
    for (name, traced) in [("ArchiverHotPath1000", false), ("ArchiverHotPathTraced1000", true)] {
        let batch = SampleBatch.messages(count: BenchmarkScalingFactor.kilo.rawValue, traced: traced)
        let archivedAtMs: Int64 = 1_795_000_000_000
        // Every event must come out as a history document (about 300 bytes of BSON each), or this
        // measures the dead-letter path.
        precondition(HotPath.encode(batch, archivedAtMs: archivedAtMs) > 150 * batch.count, "the sample events do not decode")
        let recent = RecentMinimum(count: 20)

        Benchmark(name) { benchmark in
            benchmark.startMeasurement()
            let cpuStart = threadCPUNanoseconds()
            blackHole(HotPath.encode(batch, archivedAtMs: archivedAtMs))
            let cpu = threadCPUNanoseconds() - cpuStart
            benchmark.stopMeasurement()
            benchmark.measurement(threadCPU, cpu)
            benchmark.measurement(threadCPUBestOf20, recent.adding(cpu))
        }
    }
}

/// CPU time of the measuring thread, in ns. `cpuTotal` is read from /proc in 10 ms ticks (a batch
/// takes about 2 ms), and wall-clock time also counts the time other processes hold the core;
/// this counts only the time the batch ran. Still, on a shared 2-core machine a neighbour slows
/// some batches down by up to 90% (cache, the core's other hyperthread): p90 seen from 3% to 90%
/// over p50 with the code unchanged.
let threadCPU = BenchmarkMetric.custom("threadCPUTime")

/// The least `threadCPU` of this batch and the 19 before it (40 ms): neighbours only ever add
/// time, and a slower hot path slows every batch, so this is what the thresholds check.
let threadCPUBestOf20 = BenchmarkMetric.custom("threadCPUBestOf20")

func threadCPUNanoseconds() -> Int {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// The minimum of the last `count` values added.
final class RecentMinimum: @unchecked Sendable {  // used by one benchmark thread at a time
    private var values: [Int]
    private var next = 0

    init(count: Int) { values = Array(repeating: .max, count: count) }

    func adding(_ value: Int) -> Int {
        values[next] = value
        next = (next + 1) % values.count
        return values.min()!
    }
}

/// Messages as `scripts/produce_events.py bulk` makes them: 2/3 `commerce.balance.deducted` on
/// `commerce.balance` keyed by user, 1/3 `commerce.payment.completed` on `commerce.payment` keyed
/// by order, saga `pay-<order>`, 330 to 380 bytes each. Ids are version-4 UUIDs from a fixed seed,
/// so every run encodes the same bytes.
enum SampleBatch {
    static func messages(count: Int, traced: Bool = false) -> [KafkaMessage] {
        var random = SplitMix64(seed: 0x0A7C_4175)
        var traces = SplitMix64(seed: 0x7EA5_E000)
        let startMs: Int64 = 1_795_000_000_000  // 2026-11-18T...Z
        var offsets: [String: Int64] = [:]
        return (0..<count).map { i in
            let order = 100_000 + i / 3, user = 1 + order % 500, amount = 1_000 + i % 100
            let saga = "pay-\(order)"
            let timeMs = startMs + Int64(i) * 7
            let id = random.uuid()
            // One trace per saga, a span per event, as the services write them.
            let trace = traced ? traceparent(trace: SplitMix64(seed: UInt64(order)), span: &traces) : nil
            let (topic, key, value): (String, String, String)
            if i % 3 == 2 {
                topic = "commerce.payment"
                key = String(order)
                value = event(
                    type: "commerce.payment.completed", id: id, source: "/commerce/payment", timeMs: timeMs, saga: saga, trace: trace,
                    data: #"{"paymentId": \#(order), "orderId": \#(order), "userId": \#(user), "amount": \#(amount), "status": "COMPLETED"}"#)
            } else {
                let before = 1_000_000_000 - (i / 3) * 1_000
                topic = "commerce.balance"
                key = String(user)
                value = event(
                    type: "commerce.balance.deducted", id: id, source: "/commerce/user", timeMs: timeMs, saga: saga, trace: trace,
                    data:
                        #"{"userId": \#(user), "amount": \#(amount), "balanceBefore": \#(before), "balanceAfter": \#(before - amount), "orderId": \#(order), "paymentId": \#(order)}"#
                )
            }
            let partition = Int32(i % 3 == 2 ? order % 3 : user % 3)
            let offset = offsets["\(topic)/\(partition)", default: 0]
            offsets["\(topic)/\(partition)"] = offset + 1
            return KafkaMessage(
                topic: topic, partition: partition, offset: offset, key: Array(key.utf8), value: Array(value.utf8),
                timestampMs: timeMs + 2)
        }
    }

    /// The envelope in `json.dumps` order and spacing.
    static func event(type: String, id: String, source: String, timeMs: Int64, saga: String, trace: String?, data: String) -> String {
        let traceparent = trace.map { #", "traceparent": "\#($0)""# } ?? ""
        return
            #"{"specversion": "1.0", "id": "\#(id)", "source": "\#(source)", "type": "\#(type)", "time": "\#(rfc3339(timeMs))", "datacontenttype": "application/json", "sagaid": "\#(saga)"\#(traceparent), "data": \#(data)}"#
    }

    /// `00-<trace>-<span>-01`: the trace id from the saga's generator, the span id from `span`.
    static func traceparent(trace: SplitMix64, span: inout SplitMix64) -> String {
        var trace = trace
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return "00-\(hex(trace.next()))\(hex(trace.next()))-\(hex(span.next()))-01"
    }

    /// `2026-11-18T12:26:40.007Z`, as the Python producer writes it.
    static func rfc3339(_ ms: Int64) -> String {
        let seconds = Date.ISO8601FormatStyle().format(Date(timeIntervalSince1970: Double(ms / 1_000)))  // ...:40Z
        return seconds.dropLast() + "." + String(ms % 1_000 + 1_000).dropFirst() + "Z"
    }
}

/// A small seeded generator (SplitMix64), for reproducible UUIDs.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A version-4, variant-1 UUID, lowercase as Python's `uuid.uuid4()` prints it.
    mutating func uuid() -> String {
        let a = next(), b = next()
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: a >> ($0 * 8)) } + (0..<8).map { UInt8(truncatingIfNeeded: b >> ($0 * 8)) }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let u = UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
        return u.uuidString.lowercased()
    }
}
