import ArgumentParser
import Foundation
import Kafka

/// Connection settings shared by every subcommand: each a flag, else its environment
/// variable (contract §7), else the default. Flags win over the environment.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers (env KAFKA_BROKERS, default 127.0.0.1:9092).")
    var brokers: String?

    @Option(help: "librdkafka key=value file for TLS/SASL (env KAFKA_CONFIG_FILE).")
    var kafkaConfigFile: String?

    @Option(help: "MongoDB URI (env MONGO_URI, default mongodb://127.0.0.1:27017).")
    var mongoUri: String?

    @Option(help: "History database (env ARCHIVER_DATABASE, default history).")
    var database: String?

    static let env = ProcessInfo.processInfo.environment

    static func value(_ flag: String?, _ variable: String, _ fallback: String) -> String {
        if let flag { return flag }
        if let v = env[variable], !v.isEmpty { return v }
        return fallback
    }

    var resolvedBrokers: String { Self.value(brokers, "KAFKA_BROKERS", "127.0.0.1:9092") }
    var resolvedMongoURI: String { Self.value(mongoUri, "MONGO_URI", "mongodb://127.0.0.1:27017") }

    var resolvedDatabase: String {
        get throws {
            let name = Self.value(database, "ARCHIVER_DATABASE", "history")
            guard !name.isEmpty, name.utf8.count <= 63, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                throw ValidationError("ARCHIVER_DATABASE / --database must be letters, digits, '_' or '-', got '\(name)'")
            }
            return name
        }
    }

    var kafka: KafkaConfiguration {
        get throws {
            let brokers = resolvedBrokers
            guard !brokers.isEmpty, brokers.split(separator: ",").allSatisfy({ $0.contains(":") }) else {
                throw ValidationError("KAFKA_BROKERS / --brokers must be host:port[,host:port...], got '\(brokers)'")
            }
            var config = KafkaConfiguration(brokers: brokers)
            if let file = kafkaConfigFile ?? Self.env["KAFKA_CONFIG_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
                try config.load(file: file)
            }
            return config
        }
    }

    static func port(_ flag: Int?, _ variable: String, _ fallback: Int) throws -> Int {
        if let flag {
            guard (1...65_535).contains(flag) else { throw ValidationError("--admin-port must be 1-65535, got \(flag)") }
            return flag
        }
        guard let raw = env[variable], !raw.isEmpty else { return fallback }
        guard let port = Int(raw), (1...65_535).contains(port) else {
            throw ValidationError("\(variable) must be a port number (1-65535), got '\(raw)'")
        }
        return port
    }
}
