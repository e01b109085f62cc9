// Trains the hybrid model with two data-parallel workers on the cluster it finds (SHOAL_ADDRESS)
// and registers the result, as a user's own package would.
import Foundation
import Shoal
import ShoalTensor
import ShoalTrain

await Shoal.bootstrap(tasks: [], actors: [TrainingWorker.actorType])
let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: user-training OUT_FOLDER MODEL_NAME\n".utf8))
    exit(64)
}
let (folder, name) = (arguments[1], arguments[2])
do {
    let cluster = try await Cluster.connect()
    var config = TrainingConfig()
    config.model.convChannels = 4
    config.model.kernels = [3, 5]
    config.model.heads = 2
    config.model.lstmHidden = 4
    config.model.lstmLayers = 1
    config.model.fusionSize = 8
    config.data.bars = 600
    config.data.steps = 12
    config.batchSize = 16
    config.maxSteps = 20
    let data = try HybridDataset.build(try config.data.load(), config: config.data)
    var options = TrainerOptions(checkpointFolder: folder + "/checkpoints")
    options.workers = 2
    let trainer = try Trainer(cluster: cluster, config: config, dataset: data, options: options)
    let result = try await trainer.fit()
    let weights = folder + "/model.safetensors"
    try SafeTensors.write(result.weights, metadata: ["format": "pt"], to: weights)
    let plan = try TrainingLoop(config: config, dataset: data)
    let report = TestReport(
        metrics: plan.evaluate(data.test, weights: plan.parameterNames.compactMap { result.weights[$0] }),
        trainCounts: data.train.classCounts, testLabels: data.test.labels, epoch: result.bestEpoch)
    let record = TrainedModelRecord(
        name: name, weightsPath: weights, config: plan.config, report: report, history: result.history,
        dataSHA256: try data.sha256(), jobID: cluster.jobID, parentVersion: nil, workers: 2)
    let version = try record.register(in: try cluster.registry(), alias: "staging")
    print("user-training registered \(name) version \(version.version) after \(result.steps) steps")
    await cluster.shutdown()
} catch {
    FileHandle.standardError.write(Data("user-training: \(error)\n".utf8))
    exit(1)
}
