import ShoalWire

/// Amounts of named resources: `CPU`, `GPU`, `memory` (bytes) and any custom name.
public struct Resources: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The amounts, by name. Zero amounts are dropped.
    public private(set) var amounts: [String: Double]

    public static let cpu = "CPU"
    public static let gpu = "GPU"
    public static let memory = "memory"

    /// Resources from a dictionary of names to amounts.
    public init(_ amounts: [String: Double] = [:]) {
        self.amounts = amounts.filter { $0.value != 0 }
    }

    /// The common shape: CPUs, GPUs, memory in bytes and custom amounts.
    public init(cpu: Double = 0, gpu: Double = 0, memory: Double = 0, custom: [String: Double] = [:]) {
        var amounts = custom
        amounts[Self.cpu] = cpu
        amounts[Self.gpu] = gpu
        amounts[Self.memory] = memory
        self.init(amounts)
    }

    public subscript(name: String) -> Double {
        get { amounts[name] ?? 0 }
        set { amounts[name] = newValue == 0 ? nil : newValue }
    }

    /// Whether `self` holds at least `request` of every resource.
    public func covers(_ request: Resources) -> Bool {
        request.amounts.allSatisfy { name, amount in self[name] + 1e-9 >= amount }
    }

    public static func - (lhs: Resources, rhs: Resources) -> Resources {
        var result = lhs
        for (name, amount) in rhs.amounts { result[name] = lhs[name] - amount }
        return result
    }

    public static func + (lhs: Resources, rhs: Resources) -> Resources {
        var result = lhs
        for (name, amount) in rhs.amounts { result[name] = lhs[name] + amount }
        return result
    }

    /// Checks every amount is finite and not negative.
    /// - Throws: `ClusterError.invalidArgument` naming the bad amount.
    public func validate() throws {
        for (name, amount) in amounts where !amount.isFinite || amount < 0 {
            throw ClusterError.invalidArgument("resource '\(name)' has amount \(amount); amounts must be finite and >= 0")
        }
    }

    public var description: String {
        amounts.sorted { $0.key < $1.key }.map { name, amount in
            name == Self.memory ? "\(name)=\(Int(amount / 1_048_576))MiB" : "\(name)=\(amount.formatted)"
        }.joined(separator: " ")
    }

    var proto: Shoal_V1_ResourceSet {
        var set = Shoal_V1_ResourceSet()
        set.amounts = amounts
        return set
    }

    init(_ proto: Shoal_V1_ResourceSet) { self.init(proto.amounts) }
}

extension Double {
    /// Whole numbers without a fraction, others with up to two decimals.
    var formatted: String {
        rounded() == self && abs(self) < 1e15 ? String(Int(self)) : String(format2: self)
    }
}

extension String {
    init(format2 value: Double) {
        let scaled = (value * 100).rounded() / 100
        self = "\(scaled)"
    }
}
