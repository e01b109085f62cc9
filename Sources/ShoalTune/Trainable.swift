import Foundation

/// One report of a trial: its metrics after a training iteration.
public struct TrialReport: Codable, Sendable, Equatable {
    public var metrics: [String: Double]
    /// The trainable has nothing more to do (its own budget is spent, or its program ended).
    public var done: Bool
    /// The process that ran the trial (a trial worker is reused from trial to trial).
    public var pid: Int32
    /// No new report: the trainable ended after its last one (a program's clean exit).
    public var ended: Bool

    public init(metrics: [String: Double], done: Bool = false, pid: Int32 = getpid(), ended: Bool = false) {
        self.metrics = metrics
        self.done = done
        self.pid = pid
        self.ended = ended
    }
}

/// Where and with what a trial runs, as its trainable sees it.
public struct TrialContext: Sendable {
    public var trial: Int
    public var config: TrialConfig
    /// The trial's own folder (a command's working directory).
    public var directory: String
    /// Where the trial keeps what a checkpoint holds.
    public var checkpointDirectory: String
    /// The metric the search optimises: every report must carry it.
    public var metric: String
    /// When the trial must have ended (nil: no limit).
    public var deadline: ContinuousClock.Instant?
    /// Settings the search gives every trial (a JSON object the configuration is laid over by
    /// built-in trainables), or nil.
    public var baseSettings: String?
}

/// What a trial runs, iteration by iteration, in a trial worker (Ray Tune's class API):
/// `step` trains one iteration and reports; `save` and `restore` carry its state between
/// trials (PBT's exploit) as bytes. An actor: it keeps its state to itself.
public protocol Trainable: Actor {
    /// One training iteration and its metrics.
    func step() async throws -> TrialReport
    /// The trainable's state now.
    func save() async throws -> [UInt8]
    /// Takes the state another trial saved.
    func restore(_ checkpoint: [UInt8]) async throws
    /// Ends the trainable and frees what it holds.
    func stop() async
    /// The model trained so far, for the registry (nil: a trainable with no model).
    func model() async throws -> TrialModel?
}

extension Trainable {
    public func model() async throws -> TrialModel? { nil }
}

/// A trial's trained model as the registry takes it: the artifact and what it trained on.
public struct TrialModel: Codable, Sendable {
    public var artifact: [UInt8]
    public var format: String
    /// What the model is, for the registry's description ("PPO agent on CartPole-v1").
    public var summary: String
    /// The SHA-256 of the data it trained on.
    public var dataSHA256: String

    public init(artifact: [UInt8], format: String = "safetensors", summary: String, dataSHA256: String) {
        self.artifact = artifact
        self.format = format
        self.summary = summary
        self.dataSHA256 = dataSHA256
    }
}

/// Builds a trainable for a trial. Built-in trainables are registered by name with the trial
/// worker's actor type (`TrialWorker.actorType(trainables:)`).
public typealias TrainableFactory = @Sendable (TrialContext) async throws -> any Trainable

/// A trainable written as a function of its configuration and iteration, with no state of
/// its own beyond the iteration (checkpoints hold the iteration): the trivial trainable of
/// benchmarks and examples.
public actor FunctionTrainable: Trainable {
    let context: TrialContext
    let iterations: Int
    let body: @Sendable (TrialConfig, Int) throws -> [String: Double]
    var iteration = 0

    /// - Parameters:
    ///   - iterations: reports before the trial is done.
    ///   - body: the metrics at iteration i (from 1).
    public init(
        _ context: TrialContext, iterations: Int, body: @escaping @Sendable (TrialConfig, Int) throws -> [String: Double]
    ) {
        self.context = context
        self.iterations = iterations
        self.body = body
    }

    public func step() async throws -> TrialReport {
        iteration += 1
        return TrialReport(metrics: try body(context.config, iteration), done: iteration >= iterations)
    }

    public func save() throws -> [UInt8] { Array(String(iteration).utf8) }

    public func restore(_ checkpoint: [UInt8]) throws {
        guard let saved = Int(String(decoding: checkpoint, as: UTF8.self)) else {
            throw TuneError("trial \(context.trial): the checkpoint is not a function trainable's iteration")
        }
        iteration = saved
    }

    public func stop() {}
}
