import ShoalTensor

/// A learning agent: it acts, trains from its own environments, and saves and restores its
/// parameters (a checkpoint is a safetensors file of them, named).
public protocol Agent: AnyObject {
    /// The algorithm's name (`ppo`, `sac` …).
    var name: String { get }
    /// Environment steps taken in training so far (over all its environments).
    var stepsDone: Int { get }
    /// Returns of the training episodes finished so far, in order.
    var episodeReturns: [Double] { get }
    /// Trains for about `steps` more environment steps (whole rollouts for on-policy learners).
    func train(steps: Int)
    /// Actions (`[count × action dimension]`, as the environment takes them) for a batch of
    /// observations `[count × observation dimension]`.
    func act(_ observations: [Float], deterministic: Bool) -> [Float]
    /// The parameters to save, by name.
    func checkpoint() -> [String: Tensor]
    /// Loads saved parameters.
    /// - Throws: `AgentError` when a name is missing or a shape differs.
    func restore(_ parameters: [String: Tensor]) throws
}

/// A bad configuration, a mismatched environment or a bad checkpoint, with the reason.
public struct AgentError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Agent {
    /// Saves the parameters as a safetensors file, with the algorithm's name in its metadata.
    public func save(to path: String) throws {
        try SafeTensors.write(checkpoint(), metadata: ["format": "pt", "algorithm": name], to: path)
    }

    /// Loads parameters from a safetensors file written by `save(to:)`.
    public func load(from path: String) throws {
        let file = try SafeTensors.read(path: path)
        if let algorithm = file.metadata["algorithm"], algorithm != name {
            throw AgentError("\(path) holds a \(algorithm) checkpoint, not \(name)")
        }
        try restore(file.tensors)
    }
}

/// Named tensors of several networks, `prefix.index` each, and back.
enum ParameterNames {
    static func named(_ groups: [(String, [Tensor])]) -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (prefix, tensors) in groups {
            for (index, tensor) in tensors.enumerated() { result["\(prefix).\(index)"] = tensor }
        }
        return result
    }

    static func take(_ prefix: String, like template: [Tensor], from parameters: [String: Tensor]) throws -> [Tensor] {
        try template.enumerated().map { index, tensor in
            guard let loaded = parameters["\(prefix).\(index)"] else {
                throw AgentError("the checkpoint lacks \(prefix).\(index)")
            }
            guard loaded.shape == tensor.shape else {
                throw AgentError("\(prefix).\(index) has shape \(loaded.shape), the network needs \(tensor.shape)")
            }
            return loaded
        }
    }
}

/// Parameters laid end to end, as a learner publishes them to its rollout workers, and back.
enum FlatParameters {
    static func flatten(_ tensors: [Tensor]) -> [Float] {
        var flat = [Float]()
        flat.reserveCapacity(tensors.reduce(0) { $0 + $1.count })
        for tensor in tensors { flat += tensor.scalars }
        return flat
    }

    /// `flat` cut into tensors of `template`'s shapes.
    /// - Throws: `AgentError` naming `what` when the count differs.
    static func unflatten(_ flat: [Float], like template: [Tensor], what: String) throws -> [Tensor] {
        let total = template.reduce(0) { $0 + $1.count }
        guard flat.count == total else { throw AgentError("\(flat.count) parameters published for \(what) of \(total)") }
        var offset = 0
        return template.map { tensor in
            defer { offset += tensor.count }
            return Tensor(shape: tensor.shape, scalars: Array(flat[offset..<(offset + tensor.count)]))
        }
    }
}
