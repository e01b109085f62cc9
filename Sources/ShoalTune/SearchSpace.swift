import Foundation
import ShoalMarket
import Yams

/// One hyperparameter's value: JSON's scalars.
public enum TuneValue: Codable, Sendable, Hashable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "a value must be a number, a string or a boolean")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        }
    }

    /// The value as a number (nil for a string).
    public var number: Double? {
        switch self {
        case .int(let value): Double(value)
        case .double(let value): value
        case .bool(let value): value ? 1 : 0
        case .string: nil
        }
    }

    public var description: String {
        switch self {
        case .int(let value): "\(value)"
        case .double(let value): String(format: "%.6g", value)
        case .string(let value): value
        case .bool(let value): "\(value)"
        }
    }
}

/// A trial's configuration: a value for each parameter of the space. Encodes as one JSON
/// object, its keys sorted.
public struct TrialConfig: Codable, Sendable, Hashable, CustomStringConvertible {
    public var values: [String: TuneValue]

    public init(_ values: [String: TuneValue] = [:]) { self.values = values }

    public init(from decoder: any Decoder) throws {
        values = try decoder.singleValueContainer().decode([String: TuneValue].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }

    public subscript(name: String) -> TuneValue? {
        get { values[name] }
        set { values[name] = newValue }
    }

    /// The configuration as one JSON object, keys sorted.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    public var description: String {
        values.keys.sorted().map { "\($0)=\(values[$0]!)" }.joined(separator: " ")
    }
}

/// Where a parameter's values come from (Ray Tune's names and conventions).
public enum Domain: Sendable, Equatable, Codable {
    /// Uniform on [low, high].
    case uniform(low: Double, high: Double)
    /// Uniform in log on [low, high], both positive.
    case loguniform(low: Double, high: Double)
    /// Uniform on [low, high], rounded to a multiple of q.
    case quniform(low: Double, high: Double, q: Double)
    /// An integer in low..<high (high excluded, as Ray Tune's `randint`).
    case randint(low: Int, high: Int)
    /// One of the values, each as likely.
    case choice([TuneValue])
    /// Every value in turn: the grid is the product of the grid parameters, run `num-samples` times.
    case grid([TuneValue])
    /// A fixed value (a plain value in a file).
    case constant(TuneValue)

    private enum CodingKeys: String, CodingKey { case type, low, high, q, values }

    public init(from decoder: any Decoder) throws {
        if let value = try? decoder.singleValueContainer().decode(TuneValue.self) {
            self = .constant(value)
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "uniform":
            self = .uniform(
                low: try container.decode(Double.self, forKey: .low), high: try container.decode(Double.self, forKey: .high))
        case "loguniform":
            self = .loguniform(
                low: try container.decode(Double.self, forKey: .low), high: try container.decode(Double.self, forKey: .high))
        case "quniform":
            self = .quniform(
                low: try container.decode(Double.self, forKey: .low), high: try container.decode(Double.self, forKey: .high),
                q: try container.decode(Double.self, forKey: .q))
        case "randint":
            self = .randint(
                low: try container.decode(Int.self, forKey: .low), high: try container.decode(Int.self, forKey: .high))
        case "choice": self = .choice(try container.decode([TuneValue].self, forKey: .values))
        case "grid", "grid_search": self = .grid(try container.decode([TuneValue].self, forKey: .values))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container,
                debugDescription: "unknown type '\(type)': uniform, loguniform, quniform, randint, choice or grid")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        if case .constant(let value) = self {
            try value.encode(to: encoder)
            return
        }
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .uniform(let low, let high):
            try container.encode("uniform", forKey: .type)
            try container.encode(low, forKey: .low)
            try container.encode(high, forKey: .high)
        case .loguniform(let low, let high):
            try container.encode("loguniform", forKey: .type)
            try container.encode(low, forKey: .low)
            try container.encode(high, forKey: .high)
        case .quniform(let low, let high, let q):
            try container.encode("quniform", forKey: .type)
            try container.encode(low, forKey: .low)
            try container.encode(high, forKey: .high)
            try container.encode(q, forKey: .q)
        case .randint(let low, let high):
            try container.encode("randint", forKey: .type)
            try container.encode(low, forKey: .low)
            try container.encode(high, forKey: .high)
        case .choice(let values):
            try container.encode("choice", forKey: .type)
            try container.encode(values, forKey: .values)
        case .grid(let values):
            try container.encode("grid", forKey: .type)
            try container.encode(values, forKey: .values)
        case .constant: break
        }
    }

    /// Why the domain can never give a value, or nil.
    func problem() -> String? {
        switch self {
        case .uniform(let low, let high):
            return low.isFinite && high.isFinite && low < high ? nil : "uniform needs finite low < high, not \(low) and \(high)"
        case .loguniform(let low, let high):
            return low > 0 && high.isFinite && low < high ? nil : "loguniform needs 0 < low < high, not \(low) and \(high)"
        case .quniform(let low, let high, let q):
            return low.isFinite && high.isFinite && low < high && q > 0 && q <= high - low
                ? nil : "quniform needs low < high and 0 < q ≤ high − low, not \(low), \(high) and \(q)"
        case .randint(let low, let high):
            return low < high ? nil : "randint needs low < high (high excluded), not \(low) and \(high)"
        case .choice(let values), .grid(let values):
            return values.isEmpty ? "needs at least one value" : nil
        case .constant: return nil
        }
    }

    /// A value drawn from the domain (a grid's: uniformly, for searchers that do not walk it).
    public func sample(using generator: inout SeededGenerator) -> TuneValue {
        switch self {
        case .uniform(let low, let high): return .double(low + generator.uniform() * (high - low))
        case .loguniform(let low, let high):
            return .double(Foundation.exp(Foundation.log(low) + generator.uniform() * Foundation.log(high / low)))
        case .quniform(let low, let high, let q):
            return .double(Self.quantise(low + generator.uniform() * (high - low), low: low, high: high, q: q))
        case .randint(let low, let high): return .int(low + Int(generator.next() % UInt64(high - low)))
        case .choice(let values), .grid(let values): return values[Int(generator.next() % UInt64(values.count))]
        case .constant(let value): return value
        }
    }

    /// `value` rounded to a multiple of q within [low, high].
    static func quantise(_ value: Double, low: Double, high: Double, q: Double) -> Double {
        var rounded = (value / q).rounded() * q
        if rounded < low { rounded += q }
        if rounded > high { rounded -= q }
        return rounded
    }
}

/// The parameters a search draws, by name (Ray Tune's `param_space`).
public struct SearchSpace: Sendable, Equatable {
    /// The parameters in name order (the order every searcher draws them in).
    public let parameters: [(name: String, domain: Domain)]

    /// - Throws: `TuneError` naming a parameter whose domain can give no value.
    public init(_ domains: [String: Domain]) throws {
        guard !domains.isEmpty else { throw TuneError.badSpace("the search space has no parameters") }
        for (name, domain) in domains {
            if let problem = domain.problem() { throw TuneError.badSpace("parameter '\(name)': \(problem)") }
        }
        parameters = domains.keys.sorted().map { ($0, domains[$0]!) }
    }

    /// A space of domains known to be good (the test functions').
    init(trusted domains: [String: Domain]) {
        parameters = domains.keys.sorted().map { ($0, domains[$0]!) }
    }

    public static func == (a: SearchSpace, b: SearchSpace) -> Bool {
        a.parameters.map(\.name) == b.parameters.map(\.name) && a.parameters.map(\.domain) == b.parameters.map(\.domain)
    }

    /// A space from a JSON or YAML file (by its extension, `.yaml`/`.yml` for YAML): one object
    /// whose keys are the parameters, each a domain object such as
    /// `{"type": "loguniform", "low": 1e-5, "high": 1e-1}` or a plain value.
    /// - Throws: `TuneError` naming the file and what in it is wrong.
    public init(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TuneError.badSpace("cannot read the search space file \(path)")
        }
        let yaml = path.hasSuffix(".yaml") || path.hasSuffix(".yml")
        do {
            let domains =
                yaml
                ? try YAMLDecoder().decode([String: Domain].self, from: data)
                : try JSONDecoder().decode([String: Domain].self, from: data)
            try self.init(domains)
        } catch let error as TuneError {
            throw TuneError.badSpace("\(path): \(error.message)")
        } catch {
            throw TuneError.badSpace("\(path) is not a search space (\(yaml ? "YAML" : "JSON")): \(Self.describe(error))")
        }
    }

    /// A decoding error as one line naming where it happened.
    static func describe(_ error: any Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (keys.isEmpty ? "" : "at \(keys): ") + context.debugDescription
        }
        switch error as? DecodingError {
        case .dataCorrupted(let context)?: return path(context)
        case .keyNotFound(let key, let context)?: return path(context) + " (missing '\(key.stringValue)')"
        case .typeMismatch(_, let context)?: return path(context)
        case .valueNotFound(_, let context)?: return path(context)
        default: return "\(error)"
        }
    }

    /// A configuration drawn at random from every parameter.
    public func sample(using generator: inout SeededGenerator) -> TrialConfig {
        var config = TrialConfig()
        for (name, domain) in parameters { config[name] = domain.sample(using: &generator) }
        return config
    }

    /// The grid parameters' product, in order (one empty configuration when there are none).
    public var grid: [TrialConfig] {
        var points = [TrialConfig()]
        for (name, domain) in parameters {
            guard case .grid(let values) = domain else { continue }
            points = points.flatMap { point in
                values.map { value in
                    var next = point
                    next[name] = value
                    return next
                }
            }
        }
        return points
    }
}

/// What went wrong in a search.
public struct TuneError: Error, CustomStringConvertible, Equatable {
    public let message: String

    public init(_ message: String) { self.message = message }

    static func badSpace(_ message: String) -> TuneError { TuneError(message) }

    public var description: String { message }
}
