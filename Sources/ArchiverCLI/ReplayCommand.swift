import Archiver
import ArgumentParser
import CLISupport
import Logging

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Re-archive dead letters from archive.dlq, then print archived / still failing / skipped.")

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only the dead letter of this event id.") var eventId: String?
    @Option(help: "Only letters dead-lettered at or after this ISO 8601 time (x-failed-at).") var since: String?
    @Option(help: "Only letters dead-lettered before this ISO 8601 time.") var until: String?
    @Option(help: "At most this many letters.") var limit: Int?
    @Flag(help: "Report what would happen; write, produce and commit nothing.") var dryRun = false
    @Option(help: "Replay consumer group (default: ARCHIVER_GROUP + '-replay'), so a replay can stop and resume.") var group: String?
    @Option(help: "Dead-letter topic.") var deadLetterTopic = "archive.dlq"
    @Option(help: "Topic for archive.history.deleted events.") var compensationTopic = "archive.compensation"
    @Option(help: "Stop after the dead-letter topic has been quiet this long, in ms.") var idleMs = 3_000
    @Option(help: "Kafka session timeout in ms.") var sessionTimeoutMs = 10_000

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        _ = try parseTime(since, "--since")
        _ = try parseTime(until, "--until")
    }

    func run() async throws {
        CLILogging.bootstrap(default: .warning)
        let baseGroup = ConnectionOptions.value(nil, "ARCHIVER_GROUP", "history-archiver")
        var config = ArchiverConfiguration(
            kafka: try connection.kafka, mongoURI: try connection.resolvedMongoURI,
            database: try connection.resolvedDatabase, groupID: group ?? "\(baseGroup)-replay")
        config.deadLetterTopic = deadLetterTopic
        config.compensationTopic = compensationTopic
        config.sessionTimeoutMs = sessionTimeoutMs
        config.maxPollIntervalMs = max(10_000, sessionTimeoutMs)
        let summary = try await Replayer(configuration: config, logger: Logger(label: "replay")).run(
            filter: .init(eventID: eventId, sinceMs: try parseTime(since, "--since"), untilMs: try parseTime(until, "--until"), limit: limit),
            dryRun: dryRun, idleMs: idleMs)
        print(summary)
    }
}
