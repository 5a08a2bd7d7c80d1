import ArgumentParser
import CLISupport
import Foundation
import Mongo

@main
struct ArchiverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archiver",
        abstract: "Archives balance and payment history from Kafka to MongoDB, compensating failed sagas.",
        subcommands: [RunCommand.self, MigrateCommand.self, HistoryCommand.self, ReplayCommand.self])

    static func main() async {
        MongoClient.disableSharedMemoryCounters()  // first: no other thread reads the environment yet
        await OneLineErrors.main(Self.self, name: "archiver")
    }
}
