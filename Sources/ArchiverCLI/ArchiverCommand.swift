import ArgumentParser
import Foundation

@main
struct ArchiverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archiver",
        abstract: "Archives balance and payment history from Kafka to MongoDB, compensating failed sagas.",
        subcommands: [RunCommand.self, MigrateCommand.self, HistoryCommand.self, ReplayCommand.self])

    /// Every failure ends as one line on stderr and a non-zero exit: never a stack trace or a usage dump.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version
            FileHandle.standardError.write(Data("archiver: \(message(for: error).split(separator: "\n").first ?? "failed")\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}
