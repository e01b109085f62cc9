import Foundation
import ShoalTensor

/// A folder of training checkpoints, each a folder of its own written whole before it is named:
/// `checkpoint-00000200/` holds `model.safetensors` (the weights under PyTorch's names),
/// `optimizer.safetensors` (AdamW's moments, `NAME.exp_avg` and `NAME.exp_avg_sq`),
/// `best.safetensors` (the best validation epoch's weights, once there is one) and
/// `state.json` (configuration, step, epoch, place in the epoch, early-stopping state, learning
/// curve, the data's SHA-256). The file `latest` names the newest complete checkpoint.
public struct CheckpointFolder: Sendable {
    public let path: String
    /// How many checkpoints to keep (the newest).
    public let keep: Int

    /// Uses (and creates) the folder at `path`.
    /// - Throws: `TrainingError` when it cannot be created.
    public init(path: String, keep: Int = 2) throws {
        self.path = path
        self.keep = max(1, keep)
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("cannot create the checkpoint folder \(path): \(error.localizedDescription)")
        }
    }

    struct Saved: Codable {
        var config: TrainingConfig
        var state: TrainingState
        var optimizerStep: Int
        var dataSHA256: String
        var parameterNames: [String]
    }

    /// Writes a checkpoint of `loop` and names it in `latest`; removes checkpoints past `keep`.
    /// - Returns: the checkpoint's folder.
    @discardableResult
    public func save(_ loop: TrainingLoop) throws -> String {
        let name = String(format: "checkpoint-%08d", loop.state.step)
        let final = "\(path)/\(name)"
        let staging = "\(path)/.\(name).partial-\(getpid())"
        let files = FileManager.default
        try? files.removeItem(atPath: staging)
        do {
            try files.createDirectory(atPath: staging, withIntermediateDirectories: false)
            try SafeTensors.write(
                loop.namedParameters(), metadata: ["format": "pt", "model": "shoal-hybrid"], to: "\(staging)/model.safetensors")
            var moments: [String: Tensor] = [:]
            for (index, name) in loop.parameterNames.enumerated() where index < loop.optimizer.moments.count {
                moments["\(name).exp_avg"] = loop.optimizer.moments[index]
                moments["\(name).exp_avg_sq"] = loop.optimizer.squares[index]
            }
            try SafeTensors.write(moments, metadata: ["step": "\(loop.optimizer.step)"], to: "\(staging)/optimizer.safetensors")
            if let best = loop.bestParameters {
                try SafeTensors.write(
                    loop.namedParameters(best), metadata: ["format": "pt", "model": "shoal-hybrid"],
                    to: "\(staging)/best.safetensors")
            }
            let saved = Saved(
                config: loop.config, state: loop.state, optimizerStep: loop.optimizer.step,
                dataSHA256: try loop.dataset.sha256(), parameterNames: loop.parameterNames)
            try Self.writeDurably(try TrainingJSON.encoder().encode(saved), to: "\(staging)/state.json")
            for file in ["model.safetensors", "optimizer.safetensors", "best.safetensors"] {
                try Self.synchronise("\(staging)/\(file)")
            }
            if files.fileExists(atPath: final) {
                let old = "\(path)/.\(name).old-\(getpid())"
                try files.moveItem(atPath: final, toPath: old)
                try? files.removeItem(atPath: old)
            }
            guard rename(staging, final) == 0 else {
                throw TrainingError("cannot name the checkpoint \(final): \(String(cString: strerror(errno)))")
            }
            try Self.writeDurably(Data((name + "\n").utf8), to: "\(path)/.latest.partial-\(getpid())")
            guard rename("\(path)/.latest.partial-\(getpid())", "\(path)/latest") == 0 else {
                throw TrainingError("cannot update \(path)/latest: \(String(cString: strerror(errno)))")
            }
        } catch let error as TrainingError {
            try? files.removeItem(atPath: staging)
            throw error
        } catch {
            try? files.removeItem(atPath: staging)
            throw TrainingError("cannot write the checkpoint \(final): \(error)")
        }
        prune(keeping: name)
        return final
    }

    /// The step a checkpoint was written at, or nil when its state cannot be read.
    public static func step(of checkpoint: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: "\(checkpoint)/state.json") else { return nil }
        return (try? TrainingJSON.decoder().decode(Saved.self, from: data))?.state.step
    }

    /// The newest complete checkpoint's folder, or nil when the folder has none.
    public func latest() throws -> String? {
        guard let text = try? String(contentsOfFile: "\(path)/latest", encoding: .utf8) else { return nil }
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard name.hasPrefix("checkpoint-"), !name.contains("/") else {
            throw TrainingError("\(path)/latest does not name a checkpoint (it says \(name.prefix(80)))")
        }
        return "\(path)/\(name)"
    }

    private func prune(keeping current: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
        let checkpoints = names.filter { $0.hasPrefix("checkpoint-") }.sorted()
        for name in checkpoints.dropLast(keep) where name != current {
            try? FileManager.default.removeItem(atPath: "\(path)/\(name)")
        }
    }

    static func writeDurably(_ data: Data, to file: String) throws {
        guard FileManager.default.createFile(atPath: file, contents: data) else {
            throw TrainingError("cannot write \(file)")
        }
        try synchronise(file)
    }

    static func synchronise(_ file: String) throws {
        let descriptor = open(file, O_RDONLY)
        guard descriptor >= 0 else {
            if errno == ENOENT { return }
            throw TrainingError("cannot open \(file): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw TrainingError("cannot sync \(file): \(String(cString: strerror(errno)))") }
    }
}

extension TrainingLoop {
    /// A run taken up from a checkpoint: the checkpoint folder's newest (`latest`), or one
    /// checkpoint's own folder. The configuration is the checkpoint's.
    /// - Parameter dataset: the data, when the caller has built it already; it must be the
    ///   checkpoint's (same SHA-256). Nil builds it from the checkpoint's configuration.
    /// - Throws: `TrainingError` when the checkpoint is missing, incomplete, or of other data.
    public init(resumingFrom path: String, dataset: HybridDataset? = nil) throws {
        var folder = path
        if !FileManager.default.fileExists(atPath: "\(path)/state.json") {
            guard let latest = try CheckpointFolder(path: path).latest() else {
                throw TrainingError("\(path) holds no checkpoint (no state.json and no latest)")
            }
            folder = latest
        }
        guard let stateData = FileManager.default.contents(atPath: "\(folder)/state.json") else {
            throw TrainingError("cannot read \(folder)/state.json")
        }
        let saved: CheckpointFolder.Saved
        do {
            saved = try TrainingJSON.decoder().decode(CheckpointFolder.Saved.self, from: stateData)
        } catch {
            throw TrainingError("\(folder)/state.json is not a training state: \(error)")
        }
        let data = try dataset ?? HybridDataset.build(try saved.config.data.load(), config: saved.config.data)
        let digest = try data.sha256()
        guard digest == saved.dataSHA256 else {
            throw TrainingError(
                "the data differs from the checkpoint's (SHA-256 \(digest.prefix(12)), the checkpoint's \(saved.dataSHA256.prefix(12)))")
        }
        try self.init(config: saved.config, dataset: data)
        guard saved.parameterNames == parameterNames else {
            throw TrainingError("\(folder) holds other parameters than the configured model's")
        }
        func weights(_ file: String) throws -> [Tensor] {
            let tensors: [String: Tensor]
            do {
                tensors = try SafeTensors.read(path: "\(folder)/\(file)").tensors
            } catch {
                throw TrainingError("\(folder)/\(file): \(error)")
            }
            return try zip(parameterNames, parameters).map { name, template in
                guard let tensor = tensors[name], tensor.shape == template.shape else {
                    throw TrainingError("\(folder)/\(file) lacks \(name) of shape \(template.shape)")
                }
                return tensor
            }
        }
        parameters = try weights("model.safetensors")
        if FileManager.default.fileExists(atPath: "\(folder)/best.safetensors") {
            bestParameters = try weights("best.safetensors")
        }
        if saved.optimizerStep > 0 {
            let moments: [String: Tensor]
            do {
                moments = try SafeTensors.read(path: "\(folder)/optimizer.safetensors").tensors
            } catch {
                throw TrainingError("\(folder)/optimizer.safetensors: \(error)")
            }
            func moment(_ suffix: String) throws -> [Tensor] {
                try zip(parameterNames, parameters).map { name, parameter in
                    // Shapes are checked here: Adam's kernel reads as many moments as the parameter has.
                    guard let tensor = moments["\(name).\(suffix)"], tensor.shape == parameter.shape else {
                        throw TrainingError(
                            "\(folder)/optimizer.safetensors lacks \(name).\(suffix) of shape \(parameter.shape)")
                    }
                    return tensor
                }
            }
            do {
                try optimizer.restore(step: saved.optimizerStep, moments: try moment("exp_avg"), squares: try moment("exp_avg_sq"))
            } catch let error as SafeTensorsError {
                throw TrainingError("\(folder)/optimizer.safetensors: \(error)")
            }
        }
        let state = saved.state
        guard state.step >= 0, state.step <= totalSteps, state.epoch >= 0, state.batchInEpoch >= 0,
            state.batchInEpoch < max(1, stepsPerEpoch), state.trainLossCount >= 0, state.samplesSeen >= 0
        else {
            throw TrainingError(
                "\(folder)/state.json is not a state of this run (step \(state.step) of \(totalSteps), "
                    + "batch \(state.batchInEpoch) of \(stepsPerEpoch) in epoch \(state.epoch))")
        }
        self.state = state
    }
}

/// JSON for training states and reports: non-finite numbers (a diverged loss, the correlation
/// of a constant prediction) are written as "nan", "inf" and "-inf" instead of failing.
public enum TrainingJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }
}
