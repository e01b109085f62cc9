import ArgumentParser
import Foundation
import ShoalTensor

/// `trading model`: the hybrid model's weights and forward pass, for checking it against
/// another implementation.
struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Train the CNN+LSTM hybrid model; initialise it and run it on inputs from safetensors files.",
        subcommands: [Train.self, Initialise.self, Forward.self, Bench.self, AllReduceBench.self]
    )

    struct ConfigOption: ParsableArguments {
        @Option(help: "A JSON file with the model's configuration (default: the reference configuration).") var config: String?

        func load() throws -> HybridModel.Config {
            guard let config else { return HybridModel.Config() }
            guard let data = FileManager.default.contents(atPath: config) else { throw CommandFailure("cannot read \(config)") }
            do {
                return try JSONDecoder().decode(HybridModel.Config.self, from: data)
            } catch {
                throw CommandFailure("\(config) is not a model configuration: \(error)")
            }
        }
    }

    struct Initialise: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init", abstract: "Write freshly initialised weights (named as PyTorch's state_dict).")
        @OptionGroup var config: ConfigOption
        @Option(help: "Seed.") var seed: UInt64 = 0
        @Option(help: "Output safetensors file.") var out: String

        func run() async throws {
            let model = try HybridModel(config: try config.load(), seed: seed)
            try SafeTensors.write(model.parameters, metadata: ["format": "pt", "model": "shoal-hybrid"], to: out)
            print("Wrote \(model.parameters.count) tensors, \(model.parameterCount) parameters, to \(out).")
        }
    }

    struct Forward: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the model in eval mode on `input` [batch, features, steps].",
            discussion: """
                Writes `classification` (logits, [batch, classes]), `regression` ([batch, 1]) and \
                `fused_features` ([batch, steps, fusion]). With --targets (tensors `labels`, class \
                indices as F32 [batch], and `returns` [batch, 1]) also `loss` and the gradient of \
                every parameter, under the parameter's name.
                """)
        @OptionGroup var config: ConfigOption
        @Option(help: "Weights (safetensors).") var weights: String
        @Option(help: "Input (safetensors with `input`).") var input: String
        @Option(help: "Targets (safetensors with `labels` and `returns`).") var targets: String?
        @Option(help: "Output safetensors file.") var out: String
        @Option(help: "Threads (ShoalTensor's loops and OpenBLAS); the outputs do not depend on it.") var threads = 1

        func run() async throws {
            guard threads > 0 else { throw ValidationError("--threads must be above 0") }
            Compute.setThreads(threads)
            let model = try HybridModel(config: try config.load(), parameters: try SafeTensors.read(path: weights).tensors)
            guard let x = try SafeTensors.read(path: input).tensors["input"] else {
                throw CommandFailure("\(input) has no tensor named input")
            }
            guard x.rank == 3, x.shape[1] == model.config.features else {
                throw CommandFailure("input must be [batch, \(model.config.features), steps], not \(x.shape)")
            }
            // Without targets there is nothing to differentiate: a tape that keeps nothing.
            let tape = Tape(recording: targets != nil)
            let variables = model.variables(on: tape)
            let output = model.forward(tape.constant(x), variables: variables, training: false)
            var results: [String: Tensor] = [
                "classification": output.logits.value, "regression": output.regression.value,
                "fused_features": output.fused.value,
            ]
            if let targets {
                let tensors = try SafeTensors.read(path: targets).tensors
                guard let labels = tensors["labels"], let returns = tensors["returns"] else {
                    throw CommandFailure("\(targets) needs tensors labels and returns")
                }
                let classes = labels.scalars.map { Int($0) }
                guard classes.count == x.shape[0], classes.allSatisfy({ (0..<model.config.classes).contains($0) }),
                    returns.count == x.shape[0]
                else { throw CommandFailure("labels must be \(x.shape[0]) class indices and returns \(x.shape[0]) values") }
                let loss = model.loss(output, labels: classes, returns: returns.reshaped([x.shape[0], 1]))
                tape.backward(from: loss)
                results["loss"] = loss.value
                for (name, variable) in variables { results[name] = variable.gradient ?? Tensor(shape: variable.shape) }
            }
            try SafeTensors.write(results, to: out)
            print("Wrote \(results.count) tensors to \(out).")
        }
    }
}
