import ArgumentParser
import CLISupport
import Mongo

@main
struct CommerceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commerce",
        abstract: "The user, product, order and payment services, and a shopper simulation that drives them.",
        subcommands: [ServeCommand.self, SimulateCommand.self, TokenCommand.self])

    static func main() async {
        MongoClient.disableSharedMemoryCounters()  // first (simulate's invariant check reads MongoDB): see MongoClient
        await OneLineErrors.main(Self.self, name: "commerce")
    }
}
