import Foundation
import Shoal
import ShoalMarket
import ShoalRL
import ShoalTensor
import ShoalTrain

/// The single-asset trading environment on the synthetic market, described so that a learner
/// and its rollout workers build the same one: the market from its seed, split 70/15/15 in
/// time (training, validation, test), its features z-scored on the training span only, either
/// the standard indicators or the hybrid model's features computed through an encoder as bars
/// are met.
public struct TradingMarketSpec: Codable, Sendable, Equatable {
    /// What the agent observes of the market.
    public enum Features: String, Codable, Sendable, CaseIterable {
        /// The standard indicators (`MarketFeatures.basic`).
        case basic
        /// The hybrid model's fused features, confidence and uncertainty of each bar's window of
        /// the inputs it was trained on (`EncodedFeatures`).
        case hybrid
    }

    public var marketSeed: UInt64 = 42
    public var bars = 20_000
    public var reward: TradingReward = .riskAdjusted
    public var discrete = false
    public var features: Features = .basic
    /// With hybrid features: the encoder's architecture (its training configuration's `model`).
    public var encoder: HybridModel.Config?
    /// Monte Carlo dropout passes for the encoder's uncertainty.
    public var encoderPasses = 10
    /// Position changes smaller than this are not traded (`TradingEnvironment.Config.rebalanceBand`).
    public var rebalanceBand = 0.0

    public init() {}

    /// The market's three environments and what identifies its data.
    public struct Market: Sendable {
        public var train: TradingEnvironment
        public var validation: TradingEnvironment
        public var test: TradingEnvironment
        /// The generator's settings and the SHA-256 of its closing prices, as JSON: the data's identity.
        public var description: String
    }

    /// Builds the market and its environments.
    /// - Parameters:
    ///   - encoderWeights: the encoder's parameters by PyTorch name (needed for hybrid features).
    ///   - seed: the environments' seed.
    /// - Throws: `EnvironmentError` for settings that cannot make a market, a missing or
    ///   mismatched encoder.
    public func build(encoderWeights: [String: Tensor]?, seed: UInt64) throws -> Market {
        guard bars >= 2_000 else {
            throw EnvironmentError("the trading market needs at least 2000 bars for its split, not \(bars)")
        }
        guard encoderPasses >= 2 else { throw EnvironmentError("the encoder needs at least 2 Monte Carlo passes") }
        let data = try series()
        let trainEnd = bars * 70 / 100
        let validationEnd = bars * 85 / 100
        let built = try environments(
            data: data, trainEnd: trainEnd, validationEnd: validationEnd, encoderWeights: encoderWeights, seed: seed)
        let prices = data.close.withUnsafeBytes { ContentDigest.sha256(of: $0) }
        return Market(
            train: built.train, validation: built.validation, test: built.test,
            description:
                #"{"market": "synthetic", "seed": \#(marketSeed), "bars": \#(bars), "features": "\#(features.rawValue)", "prices_sha256": "\#(prices)"}"#
        )
    }

    /// The synthetic market's one asset.
    public func series() throws -> MarketData {
        var marketConfig = SyntheticMarket.Config()
        marketConfig.seed = marketSeed
        marketConfig.symbols = ["AAA"]
        return try SyntheticMarket(config: marketConfig).generate(bars: bars).series[0]
    }

    /// The three environments on `data`: training up to `trainEnd` (episodes), validation up to
    /// `validationEnd`, test to the end (each one pass), features z-scored on the training bars.
    /// - Throws: `EnvironmentError` for spans the features or episodes do not fit.
    public func environments(
        data: MarketData, trainEnd: Int, validationEnd: Int, encoderWeights: [String: Tensor]?, seed: UInt64
    ) throws -> (train: TradingEnvironment, validation: TradingEnvironment, test: TradingEnvironment) {
        let bars = data.close.count
        let market: MarketFeatures
        var encoded: EncodedFeatures?
        switch features {
        case .basic:
            market = try MarketFeatures.basic(data, trainingBars: trainEnd)
        case .hybrid:
            guard let encoder, let encoderWeights else {
                throw EnvironmentError("hybrid features need an encoder: its configuration and weights")
            }
            let inputs: (values: [Float], width: Int, names: [String], firstComplete: Int)
            do {
                inputs = try HybridDataset.modelInputs(data, trainingBars: trainEnd)
            } catch {
                throw EnvironmentError("the encoder's inputs: \(error)")
            }
            market = try MarketFeatures(
                prices: data.close, values: inputs.values, width: inputs.width, names: inputs.names,
                firstComplete: inputs.firstComplete)
            let model: HybridModel
            do {
                model = try HybridModel(config: encoder, parameters: encoderWeights)
            } catch {
                throw EnvironmentError("the encoder's weights do not fit its configuration: \(error)")
            }
            encoded = try EncodedFeatures(inputs: market, model: model, passes: encoderPasses)
        }
        let first = max(market.firstComplete, encoded?.firstComplete ?? 0)
        guard first < trainEnd else { throw EnvironmentError("the features' warm-up of \(first) bars covers the training span") }
        var config = TradingEnvironment.Config()
        config.reward = reward
        config.actionMode = discrete ? .discrete : .continuous
        config.rebalanceBand = rebalanceBand
        var whole = config
        whole.episodeLength = nil
        return (
            try TradingEnvironment(market: market, span: first..<trainEnd, config: config, seed: seed, encoder: encoded),
            try TradingEnvironment(market: market, span: trainEnd..<validationEnd, config: whole, seed: seed, encoder: encoded),
            try TradingEnvironment(market: market, span: validationEnd..<bars, config: whole, seed: seed, encoder: encoded)
        )
    }
}

/// A hybrid model from the registry, as an encoder for trading environments.
public struct RegisteredEncoder: Sendable {
    public var name: String
    public var version: Int
    /// Its architecture, from the model card's training configuration.
    public var config: HybridModel.Config
    /// Its safetensors file.
    public var artifact: [UInt8]

    /// Fetches `reference`: NAME (the latest version), NAME:VERSION, NAME:ALIAS or NAME@ALIAS.
    /// - Throws: `EnvironmentError` when the version's card has no hybrid-model configuration,
    ///   the registry's errors when there is no such version.
    public static func fetch(_ reference: String, from registry: ModelRegistry) throws -> RegisteredEncoder {
        let (name, number, alias) = parse(reference)
        guard !name.isEmpty else { throw EnvironmentError("an encoder reference needs a model name: \(reference)") }
        let (version, artifact) = try registry.load(name: name, version: number, alias: alias)
        guard let card = try? JSONSerialization.jsonObject(with: Data(version.modelCard.utf8)) as? [String: Any],
            let configuration = card["config"] as? [String: Any], configuration["model"] != nil,
            let data = try? JSONSerialization.data(withJSONObject: configuration),
            let training = try? JSONDecoder().decode(TrainingConfig.self, from: data)
        else {
            throw EnvironmentError(
                "\(name) version \(version.version) is not a hybrid model trained by trading model train (its card has no model configuration)"
            )
        }
        return RegisteredEncoder(name: name, version: version.version, config: training.model, artifact: artifact)
    }

    /// NAME, NAME:VERSION, NAME:ALIAS or NAME@ALIAS.
    static func parse(_ reference: String) -> (name: String, version: Int?, alias: String?) {
        if let at = reference.firstIndex(of: "@") {
            return (String(reference[..<at]), nil, String(reference[reference.index(after: at)...]))
        }
        if let colon = reference.firstIndex(of: ":") {
            let tail = String(reference[reference.index(after: colon)...])
            return (String(reference[..<colon]), Int(tail), Int(tail) == nil ? tail : nil)
        }
        return (reference, nil, nil)
    }

    /// The encoder's parameters by name.
    /// - Throws: `EnvironmentError` for a file that is not safetensors.
    public func weights() throws -> [String: Tensor] {
        do {
            return try SafeTensors.decode(artifact, source: "\(name) version \(version)").tensors
        } catch {
            throw EnvironmentError("the encoder \(name) version \(version): \(error)")
        }
    }
}
