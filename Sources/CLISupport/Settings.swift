import ArgumentParser
import Foundation
import Kafka

/// Each setting is a flag, else its environment variable (contract §7), else the default.
/// Flags win over the environment; a bad value is a one-line error naming both.
public enum Settings {
    public static let environment = ProcessInfo.processInfo.environment

    public static func value(_ flag: String?, _ variable: String, _ fallback: String) -> String {
        if let flag { return flag }
        if let v = environment[variable], !v.isEmpty { return v }
        return fallback
    }

    /// A setting with no default: nil when neither the flag nor the variable is set.
    public static func optional(_ flag: String?, _ variable: String) -> String? {
        if let flag { return flag }
        if let v = environment[variable], !v.isEmpty { return v }
        return nil
    }

    /// A setting that may hold a password, from a flag or a file (`--X-file`, or `X_FILE`: what a
    /// container's secret mounts), else the variable: a file keeps it out of process arguments.
    /// Flags win over the environment; a value and a file at one level is an error. Errors name
    /// the flag or the file, never the value.
    public static func secret(_ flag: String?, _ flagName: String, file fileFlag: String?, _ variable: String) throws -> String? {
        let both = ValidationError("give \(flagName) or \(flagName)-file (\(variable) or \(variable)_FILE), not both")
        if flag != nil || fileFlag != nil {
            guard flag == nil || fileFlag == nil else { throw both }
            return try flag ?? secretFile(fileFlag!, flagName)
        }
        let value = optional(nil, variable)
        guard let file = optional(nil, variable + "_FILE") else { return value }
        guard value == nil else { throw both }
        return try secretFile(file, flagName)
    }

    /// A secret file's one line; one trailing newline is dropped.
    private static func secretFile(_ file: String, _ flagName: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(flagName)-file \(file)") }
        guard data.count <= 64 * 1_024, var text = String(data: data, encoding: .utf8) else {
            throw ValidationError("\(flagName)-file \(file) is not UTF-8 text of at most 64 KiB")
        }
        if text.last?.isNewline == true { text.removeLast() }  // "\n", or "\r\n" (one Character)
        guard !text.isEmpty, !text.contains(where: \.isNewline) else { throw ValidationError("\(flagName)-file \(file) must hold one line") }
        return text
    }

    public static func port(_ flag: Int?, _ flagName: String, _ variable: String, _ fallback: Int) throws -> Int {
        if let flag {
            guard (1...65_535).contains(flag) else { throw ValidationError("\(flagName) must be 1-65535, got \(flag)") }
            return flag
        }
        guard let raw = environment[variable], !raw.isEmpty else { return fallback }
        guard let port = Int(raw), (1...65_535).contains(port) else {
            throw ValidationError("\(variable) must be a port number (1-65535), got '\(raw)'")
        }
        return port
    }

    /// An integer setting within `range`.
    public static func integer(_ flag: Int?, _ flagName: String, _ variable: String, _ fallback: Int, range: ClosedRange<Int>) throws -> Int {
        let bounds = "\(range.lowerBound)-\(range.upperBound)"
        if let flag {
            guard range.contains(flag) else { throw ValidationError("\(flagName) must be \(bounds), got \(flag)") }
            return flag
        }
        guard let raw = environment[variable], !raw.isEmpty else { return fallback }
        guard let value = Int(raw), range.contains(value) else { throw ValidationError("\(variable) must be an integer \(bounds), got '\(raw)'") }
        return value
    }

    /// KAFKA_BROKERS / --brokers and KAFKA_CONFIG_FILE / --kafka-config-file.
    public static func kafka(brokers flag: String?, configFile: String?) throws -> KafkaConfiguration {
        let brokers = value(flag, "KAFKA_BROKERS", "127.0.0.1:9092")
        guard !brokers.isEmpty, brokers.split(separator: ",").allSatisfy({ $0.contains(":") }) else {
            throw ValidationError("KAFKA_BROKERS / --brokers must be host:port[,host:port...], got '\(brokers)'")
        }
        var config = KafkaConfiguration(brokers: brokers)
        if let file = optional(configFile, "KAFKA_CONFIG_FILE") {
            try config.load(file: file)
        }
        return config
    }
}

/// Every failure ends as one line on stderr and a non-zero exit: never a stack trace or a usage dump.
public enum OneLineErrors {
    public static func main<Command: ParsableCommand>(_ command: Command.Type, name: String) async {
        do {
            var parsed = try Command.parseAsRoot()
            if var asyncCommand = parsed as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try parsed.run()
            }
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)  // the command has already said why
        } catch {
            let code = Command.exitCode(for: error)
            if code == .success { Command.exit(withError: error) }  // --help, --version
            FileHandle.standardError.write(Data("\(name): \(Command.message(for: error).split(separator: "\n").first ?? "failed")\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}

/// `--brokers` and `--kafka-config-file`, for every command that talks to Kafka.
public struct KafkaOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers (env KAFKA_BROKERS, default 127.0.0.1:9092).")
    public var brokers: String?

    @Option(help: "librdkafka key=value file for TLS/SASL (env KAFKA_CONFIG_FILE).")
    public var kafkaConfigFile: String?

    public init() {}

    public var configuration: KafkaConfiguration {
        get throws { try Settings.kafka(brokers: brokers, configFile: kafkaConfigFile) }
    }
}
