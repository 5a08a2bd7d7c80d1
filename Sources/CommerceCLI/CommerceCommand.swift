import ArgumentParser
import CLISupport

@main
struct CommerceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commerce",
        abstract: "The user, product, order and payment services, and a shopper simulation that drives them.",
        subcommands: [ServeCommand.self, SimulateCommand.self])

    static func main() async { await OneLineErrors.main(Self.self, name: "commerce") }
}
