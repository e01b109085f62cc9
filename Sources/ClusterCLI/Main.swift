import ArgumentParser
import Shoal

/// `cluster`: start, stop and inspect a Shoal cluster. The binary is also a job binary: its
/// microbenchmark tasks run in executors started from it.
@main
enum Main {
    static func main() async {
        await Shoal.bootstrap(tasks: BenchmarkTasks.all, actors: BenchmarkTasks.actors)
        await ClusterCommand.main()
    }
}

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Start, stop and inspect a Shoal cluster.",
        subcommands: [
            StartCommand.self, StopCommand.self, StatusCommand.self, SubmitCommand.self, JobCommand.self,
            UpCommand.self, DownCommand.self, ModelsCommand.self, RegistryCommand.self,
            MicrobenchmarkCommand.self, ZMQEchoCommand.self,
        ]
    )
}
