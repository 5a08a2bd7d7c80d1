import Foundation

/// librdkafka settings as plain values. Named fields cover what this project tunes;
/// `extra` is the escape hatch for any other librdkafka key (TLS, SASL, ...), and wins.
public struct KafkaConfiguration: Sendable {
    public var brokers: String
    public var extra: [String: String]

    public init(brokers: String = "127.0.0.1:9092", extra: [String: String] = [:]) {
        self.brokers = brokers
        self.extra = extra
    }

    /// Reads librdkafka `key=value` lines; `#` starts a comment. A malformed line is an error
    /// naming the file and line, never silently skipped.
    public mutating func load(file path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw KafkaError.configuration("cannot read KAFKA_CONFIG_FILE \(path)")
        }
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "="), eq != line.startIndex else {
                throw KafkaError.configuration("\(path):\(number + 1): expected key=value, got \(Self.describeBadLine(line))")
            }
            extra[line[..<eq].trimmingCharacters(in: .whitespaces)] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
    }

    /// A bad line may hold a secret in any form: only a first word that reads like a librdkafka
    /// key is shown, never what follows it.
    static func describeBadLine(_ line: String) -> String {
        let first = line.prefix { !$0.isWhitespace && $0 != ":" }
        let looksLikeKey = first.contains(".") && first.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-" }
        return looksLikeKey ? "a line starting with '\(first)' (rest hidden)" : "a line that is not key=value (content hidden)"
    }

    /// Keys whose values must never be printed.
    public static func isSecret(_ key: String) -> Bool {
        let k = key.lowercased()
        return k.contains("password") || k.contains("secret") || k.contains(".key") || k == "sasl.oauthbearer.config"
    }

    func settings(_ defaults: [String: String]) -> [String: String] {
        var all = defaults
        all["bootstrap.servers"] = brokers
        all.merge(extra) { _, new in new }
        return all
    }
}

/// Consumer-group settings on top of the connection.
public struct KafkaConsumerConfiguration: Sendable {
    public var connection: KafkaConfiguration
    public var groupID: String
    public var topics: [String]
    public var sessionTimeoutMs = 10_000
    public var maxPollIntervalMs = 300_000
    /// Caps librdkafka's prefetch buffer: its default (64 MiB) alone would blow a small memory budget.
    public var queuedMaxKBytes = 2_048
    /// Caps one fetch response (default 50 MiB; a response for 12 partitions reached 12 MiB): measured
    /// 70.5 -> 58.9 MiB peak RSS over a 200,000-event drain. A larger single message still arrives.
    public var fetchMaxBytes = 1_048_576

    public init(connection: KafkaConfiguration, groupID: String, topics: [String]) {
        self.connection = connection
        self.groupID = groupID
        self.topics = topics
    }

    var settings: [String: String] {
        connection.settings([
            "group.id": groupID,
            // At-least-once: nothing is stored or committed behind the application's back.
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": String(sessionTimeoutMs),
            "max.poll.interval.ms": String(maxPollIntervalMs),
            "queued.max.messages.kbytes": String(queuedMaxKBytes),
            // librdkafka refuses a fetch.max.bytes below message.max.bytes that a config file raised.
            "fetch.max.bytes": String(max(fetchMaxBytes, connection.extra["message.max.bytes"].flatMap { Int($0) } ?? 0)),
            "enable.partition.eof": "false",
            // librdkafka's 500 ms default lets a fetch on a quiet partition sit that long before
            // a new message is handed over: every saga hop and archive latency paid it.
            "fetch.wait.max.ms": "20",
            // A subscribed topic created after start is otherwise noticed only at the next
            // 5-minute metadata refresh.
            "topic.metadata.refresh.interval.ms": "10000",
        ])
    }
}
