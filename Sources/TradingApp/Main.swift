import ArgumentParser
import Shoal
import ShoalTensor
import ShoalRollouts
import ShoalTrain
import ShoalTune

/// `trading`: the platform's jobs. Runs alone on an embedded local cluster, or as a job of a
/// running cluster (`SHOAL_ADDRESS`, or `cluster start` on this machine).
@main
enum Main {
    static func main() async {
        // Before anything else: OpenBLAS must load with the kernels this processor supports.
        BLAS.ensureBestKernels()
        await Shoal.bootstrap(
            tasks: MonteCarlo.tasks + WalkForwardTasks.tasks,
            actors: [
                TrainingWorker.actorType, EnvRunner.actorType, MemberTrainer.actorType,
                TrialWorker.actorType(trainables: TuneTrainables.factories),
            ])
        await TradingCommand.main()
    }
}

struct TradingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trading",
        abstract: "The trading platform's jobs on a Shoal cluster.",
        subcommands: [
            DemoCommand.self, DataCommand.self, ModelCommand.self, RLCommand.self, TuneCommand.self, BacktestCommand.self,
            PortfolioCommand.self, BLASCommand.self,
        ]
    )
}
