import Foundation

/// The CNN+LSTM hybrid: multi-scale 1-D convolutions with self-attention, a stacked
/// bidirectional LSTM with self-attention, cross-attention fusion, and classification
/// (Sell/Hold/Buy) and regression (next return) heads. Parameters are named as the PyTorch
/// module's `state_dict()` (see the README's tensor names), so weights load there with
/// `strict=True` and the other way round.
public struct HybridModel: Sendable {
    public struct Config: Codable, Sendable, Equatable {
        public var features = 32
        public var steps = 64
        public var convChannels = 32
        public var kernels = [3, 5, 7, 11]
        public var heads = 8
        public var lstmHidden = 64
        public var lstmLayers = 3
        public var dropout: Float = 0.3
        public var fusionSize = 256
        public var classes = 3
        /// Loss = cross-entropy + regressionWeight × MSE.
        public var regressionWeight: Float = 0.5

        public init() {}

        /// Missing keys take their defaults, so a file may name only what it changes.
        public init(from decoder: any Decoder) throws {
            let values = try decoder.container(keyedBy: CodingKeys.self)
            let defaults = Config()
            features = try values.decodeIfPresent(Int.self, forKey: .features) ?? defaults.features
            steps = try values.decodeIfPresent(Int.self, forKey: .steps) ?? defaults.steps
            convChannels = try values.decodeIfPresent(Int.self, forKey: .convChannels) ?? defaults.convChannels
            kernels = try values.decodeIfPresent([Int].self, forKey: .kernels) ?? defaults.kernels
            heads = try values.decodeIfPresent(Int.self, forKey: .heads) ?? defaults.heads
            lstmHidden = try values.decodeIfPresent(Int.self, forKey: .lstmHidden) ?? defaults.lstmHidden
            lstmLayers = try values.decodeIfPresent(Int.self, forKey: .lstmLayers) ?? defaults.lstmLayers
            dropout = try values.decodeIfPresent(Float.self, forKey: .dropout) ?? defaults.dropout
            fusionSize = try values.decodeIfPresent(Int.self, forKey: .fusionSize) ?? defaults.fusionSize
            classes = try values.decodeIfPresent(Int.self, forKey: .classes) ?? defaults.classes
            regressionWeight = try values.decodeIfPresent(Float.self, forKey: .regressionWeight) ?? defaults.regressionWeight
        }

        /// The width of the CNN features (all kernels' channels side by side).
        public var cnnWidth: Int { convChannels * kernels.count }

        public func validate() throws {
            guard features > 0, steps > 0, convChannels > 0, !kernels.isEmpty, kernels.allSatisfy({ $0 > 0 && $0 % 2 == 1 })
            else {
                throw SafeTensorsError("the hybrid model needs positive sizes and odd kernels (got \(kernels))")
            }
            guard cnnWidth % heads == 0, (2 * lstmHidden) % heads == 0 else {
                throw SafeTensorsError("attention widths \(cnnWidth) and \(2 * lstmHidden) must split into \(heads) heads")
            }
            guard cnnWidth == 2 * lstmHidden else {
                throw SafeTensorsError(
                    "cross-attention needs the CNN width (\(cnnWidth)) to equal twice the LSTM hidden size (\(2 * lstmHidden))")
            }
        }
    }

    public let config: Config
    /// By `state_dict()` name.
    public var parameters: [String: Tensor]

    /// A freshly initialised model (PyTorch's default initialisations), from `seed`.
    public init(config: Config = Config(), seed: UInt64) throws {
        try config.validate()
        self.config = config
        var parameters: [String: Tensor] = [:]
        var seed = seed
        func next() -> UInt64 {
            seed &+= 1_000_003
            return seed
        }
        for (index, kernel) in config.kernels.enumerated() {
            let bound = 1 / Float(config.features * kernel).squareRoot()
            parameters["conv_layers.\(index).weight"] = .randomUniform(
                shape: [config.convChannels, config.features, kernel], bound: bound, seed: next())
            parameters["conv_layers.\(index).bias"] = .randomUniform(shape: [config.convChannels], bound: bound, seed: next())
        }
        let width = config.cnnWidth
        for name in ["attention_cnn", "attention_lstm", "fusion_attention"] {
            for (key, value) in MultiheadAttention(embedding: width, heads: config.heads, seed: next()).parameters {
                parameters["\(name).\(key)"] = value
            }
        }
        for (name, size) in [("norm_cnn", width), ("norm_lstm", width), ("fusion_norm", config.fusionSize)] {
            parameters["\(name).weight"] = Tensor(shape: [size], repeating: 1)
            parameters["\(name).bias"] = Tensor(shape: [size])
        }
        let lstm = LSTM(
            inputSize: width, hiddenSize: config.lstmHidden, layers: config.lstmLayers, bidirectional: true,
            dropout: config.dropout,
            seed: next())
        for (key, value) in lstm.parameters { parameters["lstm.\(key)"] = value }
        for (name, inputs, outputs) in [
            ("fusion_proj", width, config.fusionSize), ("classifier", config.fusionSize, config.classes),
            ("regressor", config.fusionSize, 1),
        ] {
            let layer = Linear(inputs: inputs, outputs: outputs, seed: next())
            parameters["\(name).weight"] = layer.weight
            parameters["\(name).bias"] = layer.bias
        }
        self.parameters = parameters
    }

    /// A model with the given parameters.
    /// - Throws: when a parameter is missing, unexpected or of the wrong shape (`strict` loading).
    public init(config: Config = Config(), parameters: [String: Tensor]) throws {
        let template = try HybridModel(config: config, seed: 0)
        for (name, tensor) in template.parameters {
            guard let given = parameters[name] else { throw SafeTensorsError("the weights lack \(name)") }
            guard given.shape == tensor.shape else {
                throw SafeTensorsError("\(name) has shape \(given.shape), the model needs \(tensor.shape)")
            }
        }
        if let extra = parameters.keys.first(where: { template.parameters[$0] == nil }) {
            throw SafeTensorsError("the weights hold \(extra), which the model does not have")
        }
        self.config = config
        self.parameters = parameters
    }

    public var parameterCount: Int { parameters.values.reduce(0) { $0 + $1.count } }

    /// The outputs of one forward pass.
    public struct Output {
        /// `[batch, classes]` logits.
        public var logits: Variable
        /// `[batch, 1]`.
        public var regression: Variable
        /// `[batch, steps, fusionSize]`, before the final dropout.
        public var fused: Variable
        public var cnnFeatures: Variable
        public var lstmFeatures: Variable
    }

    /// Runs the model on `input` `[batch, features, steps]`; `variables` holds the parameters on
    /// the tape (from `variables(on:)`).
    ///
    /// On a tape that keeps nothing (inference), a large batch runs in chunks of
    /// `inferenceChunk` samples, whose activations stay in the processor's caches (measured:
    /// 20% more samples per second at batch 256 than in one piece); chunk i's dropout masks are
    /// drawn from `seed + i · 0x9E3779B9`.
    public func forward(_ input: Variable, variables: [String: Variable], training: Bool, seed: UInt64 = 0) -> Output {
        let batch = input.shape.first ?? 0
        let chunk = Self.inferenceChunk
        // Only when nothing records: a recording tape (the input's or the variables') would be
        // written from several threads.
        guard !input.tape.recording, batch > chunk, input.shape.count == 3, variables.values.allSatisfy({ !$0.tape.recording })
        else {
            return forwardBatch(input, variables: variables, training: training, seed: seed)
        }
        let tape = input.tape
        let sample = input.value.count / batch
        let chunks = (batch + chunk - 1) / chunk
        // With several threads the chunks run side by side, each on one thread (a tape that
        // keeps nothing is only read); their results go to their own slots.
        var slots = [Output?](repeating: nil, count: chunks)
        slots.withUnsafeMutableBufferPointer { slots in
            let shared = UncheckedSendable((tape, slots))
            Compute.parallelFor(chunks, cost: 1 << 20) { index in
                let (tape, slots) = shared.value
                let start = index * chunk
                let size = min(chunk, batch - start)
                let piece = Tensor(shape: [size, input.shape[1], input.shape[2]]) { out in
                    input.value.withPointer { (out).update(from: $0 + start * sample, count: size * sample) }
                }
                slots[index] = forwardBatch(
                    tape.constant(piece), variables: variables, training: training,
                    seed: seed &+ UInt64(index) &* 0x9E37_79B9)
            }
        }
        let outputs = slots.compactMap { $0 }
        func joined(_ part: (Output) -> Variable) -> Variable {
            tape.constant(Tensor.concatenate(outputs.map { part($0).value }, axis: 0))
        }
        return Output(
            logits: joined(\.logits), regression: joined(\.regression), fused: joined(\.fused),
            cnnFeatures: joined(\.cnnFeatures), lstmFeatures: joined(\.lstmFeatures))
    }

    /// Samples per chunk of an inference pass (see `forward`).
    public static let inferenceChunk = 32

    private func forwardBatch(_ input: Variable, variables: [String: Variable], training: Bool, seed: UInt64) -> Output {
        let c = config
        precondition(
            input.shape.count == 3 && input.shape[1] == c.features,
            "the input must be [batch, \(c.features), steps], not \(input.shape)")
        let steps = input.shape[2]
        func p(_ name: String) -> Variable {
            guard let variable = variables[name] else { preconditionFailure("model variables lack \(name): pass variables(on:)") }
            return variable
        }
        func linear(_ x: Variable, _ name: String) -> Variable {
            let width = x.shape[x.shape.count - 1]
            let rows = x.value.count / width
            let out = Variable.linear(x.reshaped([rows, width]), weight: p("\(name).weight"), bias: p("\(name).bias"))
            return out.reshaped(Array(x.shape.dropLast()) + [out.shape[1]])
        }
        let width = c.cnnWidth
        func attention(query: Variable, memory: Variable, _ name: String) -> Variable {
            MultiheadAttention.forward(
                query: query, key: memory, value: memory, variables: variables, prefix: name + ".", heads: c.heads)
        }
        // Every kernel's convolution in one product, time-major and side by side: [batch, steps, width].
        let cnn = Variable.multiKernelConv1d(
            input, weights: c.kernels.indices.map { p("conv_layers.\($0).weight") },
            biases: c.kernels.indices.map { p("conv_layers.\($0).bias") }
        ).relu()
        let cnnAttended = attention(query: cnn, memory: cnn, "attention_cnn")
        let cnnFeatures = (cnn + cnnAttended).layerNorm(weight: p("norm_cnn.weight"), bias: p("norm_cnn.bias"))

        let recurrent = LSTM.forward(
            cnnFeatures, variables: variables, prefix: "lstm.", layers: c.lstmLayers, bidirectional: true, dropout: c.dropout,
            training: training, seed: seed)
        let lstmAttended = attention(query: recurrent, memory: recurrent, "attention_lstm")
        let lstmFeatures = (recurrent + lstmAttended).layerNorm(weight: p("norm_lstm.weight"), bias: p("norm_lstm.bias"))

        let cross = attention(query: lstmFeatures, memory: cnnFeatures, "fusion_attention")
        let fused = linear(lstmFeatures + cross, "fusion_proj").layerNorm(
            weight: p("fusion_norm.weight"), bias: p("fusion_norm.bias"))
        // Only the last step reaches the heads, so only it goes through the final dropout.
        let last = fused.timeStep(steps - 1).dropout(c.dropout, training: training, seed: seed &+ 7919)
        return Output(
            logits: linear(last, "classifier"), regression: linear(last, "regressor"), fused: fused, cnnFeatures: cnnFeatures,
            lstmFeatures: lstmFeatures)
    }

    public func variables(on tape: Tape) -> [String: Variable] { parameters.mapValues { tape.variable($0) } }

    /// Cross-entropy on the class labels plus `regressionWeight` × MSE on the returns.
    public func loss(_ output: Output, labels: [Int], returns: Tensor) -> Variable {
        output.logits.crossEntropy(labels: labels) + output.regression.meanSquaredError(returns) * config.regressionWeight
    }
}
