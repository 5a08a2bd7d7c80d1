import ArgumentParser
import CLISupport
import Foundation
import Kafka

/// Connection settings shared by every subcommand: each a flag, else its environment
/// variable (contract §7), else the default. Flags win over the environment.
struct ConnectionOptions: ParsableArguments {
    @OptionGroup var kafkaOptions: KafkaOptions

    @Option(help: "MongoDB URI (env MONGO_URI, default mongodb://127.0.0.1:27017).")
    var mongoUri: String?

    @Option(help: "A file whose one line is the MongoDB URI (env MONGO_URI_FILE): keeps a password out of process arguments.")
    var mongoUriFile: String?

    @Option(help: "History database (env ARCHIVER_DATABASE, default history).")
    var database: String?

    static func value(_ flag: String?, _ variable: String, _ fallback: String) -> String { Settings.value(flag, variable, fallback) }

    var resolvedMongoURI: String {
        get throws { try Settings.secret(mongoUri, "--mongo-uri", file: mongoUriFile, "MONGO_URI") ?? "mongodb://127.0.0.1:27017" }
    }

    var resolvedDatabase: String {
        get throws {
            let name = Self.value(database, "ARCHIVER_DATABASE", "history")
            guard !name.isEmpty, name.utf8.count <= 63, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
            else {
                throw ValidationError("ARCHIVER_DATABASE / --database must be letters, digits, '_' or '-', got '\(name)'")
            }
            return name
        }
    }

    var kafka: KafkaConfiguration {
        get throws { try kafkaOptions.configuration }
    }

    static func port(_ flag: Int?, _ variable: String, _ fallback: Int) throws -> Int {
        try Settings.port(flag, "--admin-port", variable, fallback)
    }
}
