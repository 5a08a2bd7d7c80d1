import Events
import Foundation
import Kafka
import Mongo
import TestSupport
import Testing

@testable import Archiver

/// Outages, crashes and signals, with real processes and real servers.
@Suite("archiver run: resilience")
struct ResilienceTests {
    @Test func mongoStoppedMidStreamThenStartedLosesNothingAndDeadLettersNothing() async throws {
        let mongo = try await PrivateMongo(port: freePort())
        let s = try await Scenario(mongoURI: mongo.uri)
        var config = s.configuration(batchSize: 50)
        config.mongoURI = mongo.uri
        let archiver = try await Archiver(configuration: config, logger: .init(label: "outage-test"))
        let task = Task { try await archiver.run() }
        try await s.send((0..<200).map { i in Make.deducted(s, saga: "pay-\(i)", user: Int64(i % 9)) })
        #expect(try await eventually { try await s.count(s.store.collection(of: .balance)) == 200 })

        try await mongo.stop()
        try await s.send((200..<500).map { i in Make.deducted(s, saga: "pay-\(i)", user: Int64(i % 9)) })
        #expect(try await eventually(20) { !archiver.status.snapshot.mongoReachable }, "the outage is noticed and reported to /readyz")
        #expect(!archiver.status.snapshot.ready)
        try await mongo.start()
        #expect(try await eventually(60) { try await s.count(s.store.collection(of: .balance)) == 500 })
        #expect(archiver.totals.deadLettered == 0)
        archiver.stop()
        try await task.value
        #expect(try await s.readAll(s.deadLetterTopic).isEmpty)
        try await mongo.stop()
    }

    @Test func killedMidBatchAndRestartedLosesNothingAndDuplicatesNothing() async throws {
        let s = try await Scenario()
        let port = adminPort()
        let events = (0..<3_000).map { i in Make.deducted(s, saga: "pay-\(i)", user: Int64(i % 13)) }
        var first = try ArchiverProcess(arguments: s.runArguments(adminPort: port) + ["--batch-size", "100"], adminPort: port)
        #expect(try await eventually { await first.isReady() }, "\(first.output)")
        try await s.send(events)
        #expect(try await eventually { try await s.count(s.store.collection(of: .balance)) > 300 })
        await first.kill9()
        let atKill = try await s.count(s.store.collection(of: .balance))
        first = try ArchiverProcess(arguments: s.runArguments(adminPort: port) + ["--batch-size", "100"], adminPort: port)
        #expect(try await eventually(60) { try await s.count(s.store.collection(of: .balance)) == 3_000 }, "\(first.output)")
        first.terminate()
        await first.waitForExit()
        #expect(atKill < 3_000, "the kill came mid-stream")
        // Every event sent is there, and nothing else. `_id` is unique, so a redelivery could only
        // show as a document of another id (an upsert without `_id` gets an ObjectId): every
        // document is counted, whatever its id, and every id must be a sent event's.
        let sent = Set(events.map { try! JSONValue.parse($0.value)["id"]!.stringValue! })
        let documents = try await s.store.collection(of: .balance).find([:], options: FindOptions(projection: ["_id": 1]))
        let ids = documents.map { $0["_id"]?.stringValue ?? "not a string: \(String(describing: $0["_id"]))" }
        #expect(try await s.count(s.store.collection(of: .balance)) == sent.count)
        #expect(sent.count == 3_000 && documents.count == sent.count && Set(ids) == sent, "\(Set(ids).subtracting(sent).prefix(3))")
        #expect(try await s.readAll(s.deadLetterTopic).isEmpty)
        await s.drop()
    }

    @Test func twoInstancesInOneGroupSurviveOneBeingKilled() async throws {
        let s = try await Scenario()
        let (portA, portB) = (adminPort(), adminPort())
        let a = try ArchiverProcess(arguments: s.runArguments(adminPort: portA) + ["--batch-size", "50"], adminPort: portA)
        let b = try ArchiverProcess(arguments: s.runArguments(adminPort: portB) + ["--batch-size", "50"], adminPort: portB)
        #expect(
            try await eventually(60) {
                let readyA = await a.isReady()
                let readyB = await b.isReady()
                return readyA && readyB
            }, "both own partitions: \(a.output) \(b.output)")
        try await s.send((0..<1_500).map { i in Make.deducted(s, saga: "pay-\(i)", user: Int64(i)) })
        #expect(try await eventually { try await s.count(s.store.collection(of: .balance)) > 100 })
        await a.kill9()
        try await s.send((1_500..<2_000).map { i in Make.deducted(s, saga: "pay-\(i)", user: Int64(i)) })
        #expect(try await eventually(90) { try await s.count(s.store.collection(of: .balance)) == 2_000 }, "\(b.output)")
        b.terminate()
        await b.waitForExit()
        await s.drop()
    }

    @Test func sigtermFinishesTheBatchCommitsAndExitsZeroPromptly() async throws {
        let s = try await Scenario()
        let port = adminPort()
        let p = try ArchiverProcess(arguments: s.runArguments(adminPort: port) + ["--batch-size", "200"], adminPort: port)
        #expect(try await eventually { await p.isReady() })
        #expect(await ArchiverProcess.get("http://127.0.0.1:\(port)/healthz")?.0 == 200)
        try await s.send((0..<2_000).map { i in Make.deducted(s, saga: "pay-\(i)", user: Int64(i)) })
        #expect(try await eventually { try await s.count(s.store.collection(of: .balance)) > 0 })
        let signalled = Date()
        p.terminate()
        await p.waitForExit()
        let took = Date().timeIntervalSince(signalled)
        #expect(p.process.terminationStatus == 0, "\(p.output)")
        #expect(took < 15, "exited \(took) s after SIGTERM")
        #expect(p.output.contains("archiver stopped"))
        // What it committed, it wrote: a restart archives the rest and nothing twice.
        let next = try ArchiverProcess(arguments: s.runArguments(adminPort: port), adminPort: port)
        #expect(try await eventually(60) { try await s.count(s.store.collection(of: .balance)) == 2_000 })
        let metrics = await next.metrics() ?? ""
        next.terminate()
        await next.waitForExit()
        #expect(metrics.contains("archiver_events_archived_total"))
        await s.drop()
    }

    @Test func anAdminPortAlreadyTakenStopsTheProcessWithThatError() async throws {
        let s = try await Scenario()
        let (taken, port) = boundSocket()
        defer { close(taken) }
        #expect(listen(taken, 1) == 0)
        let p = try ArchiverProcess(arguments: s.runArguments(adminPort: port), adminPort: port)
        #expect(try await eventually(30) { !p.process.isRunning }, "still running with no admin port: \(p.output)")
        if p.process.isRunning { await p.kill9() }
        await p.waitForExit()
        #expect(p.process.terminationStatus != 0)
        #expect(
            p.output.contains("archiver: admin server on 127.0.0.1:\(port): ") && p.output.lowercased().contains("address already in use"),
            "\(p.output)")
        await s.drop()
    }
}
