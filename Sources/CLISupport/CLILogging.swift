import Foundation
import Logging

public enum CLILogging {
    /// Logs go to stderr, so stdout stays clean for results; LOG_LEVEL overrides the default.
    public static func bootstrap(default level: Logger.Level) {
        let chosen = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? level
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = chosen
            return handler
        }
    }
}
