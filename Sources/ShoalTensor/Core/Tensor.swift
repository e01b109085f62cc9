import CShoalKernels
import Foundation

/// A dense, contiguous, row-major Float32 array with a shape. A value type: copies share
/// storage until one of them is written.
public struct Tensor: Sendable, Equatable, CustomStringConvertible {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(
            shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == scalars.count,
            "shape \(shape) does not hold \(scalars.count) values")
        self.shape = shape
        self.scalars = scalars
    }

    public init(shape: [Int], repeating value: Float = 0) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A scalar (rank 0).
    public init(_ value: Float) { self.init(shape: [], scalars: [value]) }

    /// A tensor whose values `fill` writes, every one of them: no zeroing first.
    public init(shape: [Int], filling fill: (UnsafeMutablePointer<Float>) -> Void) {
        let count = shape.reduce(1, *)
        self.shape = shape
        scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress { fill(base) }
            initialized = count
        }
        _ = Memory.configured
    }

    /// Values from a normal distribution, scaled, from a seeded generator.
    public static func randomNormal(shape: [Int], standardDeviation: Float = 1, seed: UInt64) -> Tensor {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        return Tensor(shape: shape) { values in
            for index in 0..<shape.reduce(1, *) {
                let u1 = (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992
                let u2 = Double(next() >> 11) / 9_007_199_254_740_992
                values[index] = Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2)) * standardDeviation
            }
        }
    }

    /// Uniform values in [−bound, bound] (PyTorch's default Linear initialisation uses this), seeded.
    public static func randomUniform(shape: [Int], bound: Float, seed: UInt64) -> Tensor {
        // Kept exactly as first written: every seeded initialisation in Shoal depends on it.
        var generator = Tensor.randomNormal(shape: [1], seed: seed).scalars[0].bitPattern
        var state = UInt64(generator) &+ seed
        return Tensor(shape: shape) { values in
            for index in 0..<shape.reduce(1, *) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                generator = UInt32(truncatingIfNeeded: state >> 33)
                values[index] = (Float(generator) / Float(UInt32.max >> 1) * 2 - 1) * bound
            }
        }
    }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    public var description: String { "Tensor(\(shape)): \(scalars.prefix(8))\(count > 8 ? "…" : "")" }

    /// The same values under another shape.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        var result = self
        result.shape = newShape
        return result
    }

    /// Calls `body` with a pointer to the values (valid only inside it).
    @inlinable
    public func withPointer<Result>(_ body: (UnsafePointer<Float>) throws -> Result) rethrows -> Result {
        try scalars.withUnsafeBufferPointer { buffer in
            // An empty array may have no storage; hand out a valid pointer all the same.
            guard let base = buffer.baseAddress else {
                var none: Float = 0
                return try withUnsafePointer(to: &none) { try body($0) }
            }
            return try body(base)
        }
    }

    /// Calls `body` with a mutable pointer to the values, copying them first if they are shared.
    @inlinable
    public mutating func withMutablePointer<Result>(
        _ body: (UnsafeMutablePointer<Float>) throws -> Result
    ) rethrows
        -> Result
    {
        try scalars.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else {
                var none: Float = 0
                return try withUnsafeMutablePointer(to: &none) { try body($0) }
            }
            return try body(base)
        }
    }

    // MARK: elementwise

    public static func + (a: Tensor, b: Tensor) -> Tensor { a.combined(with: b, shoal_add) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.combined(with: b, shoal_sub) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.combined(with: b, shoal_mul) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { a.combined(with: b, shoal_div) }
    public static func * (a: Tensor, b: Float) -> Tensor { a.affine(scale: b, shift: 0) }
    public static func + (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1, shift: b) }
    public static prefix func - (a: Tensor) -> Tensor { a.affine(scale: -1, shift: 0) }

    /// `scale · x + shift` elementwise.
    public func affine(scale: Float, shift: Float) -> Tensor {
        Tensor(shape: shape) { out in withPointer { shoal_affine($0, scale, shift, out, count) } }
    }

    /// `self op other` where `other` has the same shape, is a scalar, a row (the last
    /// dimension) repeated over every row, or a column (`[rows, 1]`) repeated along each row.
    func combined(
        with other: Tensor, _ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    ) -> Tensor {
        let pattern = Broadcast(other.shape, over: shape)
        return Tensor(shape: shape) { out in
            withPointer { x in
                other.withPointer { y in
                    switch pattern {
                    case .same: kernel(x, y, out, count)
                    case .scalar:
                        let repeated = [Float](repeating: y[0], count: Swift.min(count, 4096))
                        repeated.withUnsafeBufferPointer { row in
                            var start = 0
                            while start < count {
                                let length = Swift.min(row.count, count - start)
                                kernel(x + start, row.baseAddress!, out + start, length)
                                start += length
                            }
                        }
                    case .row(let width):
                        for start in stride(from: 0, to: count, by: width) { kernel(x + start, y, out + start, width) }
                    case .column(let rows, let width):
                        let line = UnsafeMutablePointer<Float>.allocate(capacity: width)
                        defer { line.deallocate() }
                        for row in 0..<rows {
                            line.initialize(repeating: y[row], count: width)
                            kernel(x + row * width, line, out + row * width, width)
                        }
                    }
                }
            }
        }
    }

    public func map(_ transform: (Float) -> Float) -> Tensor {
        Tensor(shape: shape) { out in withPointer { x in for index in 0..<count { out[index] = transform(x[index]) } } }
    }

    /// Elementwise `a op b`, `b` broadcast as in `combined(with:)`.
    public func zip(_ other: Tensor, _ operation: (Float, Float) -> Float) -> Tensor {
        let pattern = Broadcast(other.shape, over: shape)
        return Tensor(shape: shape) { out in
            withPointer { x in
                other.withPointer { y in
                    for index in 0..<count { out[index] = operation(x[index], y[pattern.index(of: index)]) }
                }
            }
        }
    }

    /// Applies a kernel `(input, output, count)` to every value.
    func applying(_ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        Tensor(shape: shape) { out in withPointer { kernel($0, out, count) } }
    }

    public func exp() -> Tensor { applying(shoal_exp) }
    public func log() -> Tensor { applying(shoal_log) }
    public func tanh() -> Tensor { applying(shoal_tanh) }
    public func sigmoid() -> Tensor { applying(shoal_sigmoid) }
    public func relu() -> Tensor { applying(shoal_relu) }
    public func clamped(to range: ClosedRange<Float>) -> Tensor {
        applying { shoal_clamp($0, range.lowerBound, range.upperBound, $1, $2) }
    }

    // MARK: reductions

    public func sum() -> Float { withPointer { Float(shoal_sum($0, count)) } }
    public func mean() -> Float { count == 0 ? .nan : sum() / Float(count) }

    /// Sums over the leading dimension: a `[rows, columns]` tensor's column sums.
    public func sumRows() -> Tensor {
        precondition(rank == 2, "sumRows() takes a rank-2 tensor")
        return Tensor(shape: [shape[1]]) { out in withPointer { shoal_column_sums($0, shape[0], shape[1], out, 0) } }
    }

    /// Sums over the last dimension: `[…, width]` → `[…]`.
    public func sumLast() -> Tensor {
        precondition(rank >= 1, "sumLast needs a dimension")
        let width = shape[rank - 1]
        return Tensor(shape: Array(shape.dropLast())) { out in
            withPointer { shoal_row_sums($0, width == 0 ? 0 : count / width, width, out, 0) }
        }
    }

    /// Softmax over the last dimension, computed stably.
    public func softmax() -> Tensor {
        precondition(rank >= 1, "softmax needs a dimension")
        let width = shape[rank - 1]
        return Tensor(shape: shape) { out in withPointer { shoal_softmax_rows($0, out, width == 0 ? 0 : count / width, width) } }
    }

    /// Log-softmax over the last dimension, computed stably.
    public func logSoftmax() -> Tensor {
        precondition(rank >= 1, "logSoftmax needs a dimension")
        let width = shape[rank - 1]
        return Tensor(shape: shape) { out in
            withPointer { shoal_log_softmax_rows($0, out, width == 0 ? 0 : count / width, width) }
        }
    }

    /// The index of the largest value of each row of the last dimension.
    public func argmaxLast() -> [Int] {
        precondition(rank >= 1 && shape[rank - 1] > 0, "argmaxLast needs a non-empty last dimension")
        let width = shape[rank - 1]
        return withPointer { x in
            (0..<(count / width)).map { row in
                var best = 0
                for column in 1..<width where x[row * width + column] > x[row * width + best] { best = column }
                return best
            }
        }
    }
}

/// How a second operand's shape repeats over the first's.
enum Broadcast: Equatable {
    case same
    case scalar
    /// The last dimension, repeated over every row.
    case row(width: Int)
    /// `[rows, 1]`: one value per row, repeated along it.
    case column(rows: Int, width: Int)

    init(_ shape: [Int], over target: [Int]) {
        let count = shape.reduce(1, *)
        let targetCount = target.reduce(1, *)
        if shape == target || (count == targetCount && count <= 1) {
            self = .same
        } else if count == 1 {
            self = .scalar
        } else if let width = target.last, shape.last == width && count == width {
            self = .row(width: width)
        } else if let width = target.last, shape.last == 1, width > 0, count == targetCount / width {
            self = .column(rows: count, width: width)
        } else if shape.count == target.count - 1, Array(target.dropLast()) == shape, let width = target.last, width > 0 {
            self = .column(rows: count, width: width)
        } else {
            preconditionFailure("cannot broadcast \(shape) over \(target)")
        }
    }

    /// The operand's index for the target's `index`.
    func index(of index: Int) -> Int {
        switch self {
        case .same: index
        case .scalar: 0
        case .row(let width): index % width
        case .column(_, let width): index / width
        }
    }
}
