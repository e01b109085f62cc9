import COpenBLAS
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
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        for index in 0..<count {
            let u1 = (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992
            let u2 = Double(next() >> 11) / 9_007_199_254_740_992
            values[index] = Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)) * standardDeviation
        }
        return Tensor(shape: shape, scalars: values)
    }

    /// Uniform values in [−bound, bound] (PyTorch's default Linear initialisation uses this), seeded.
    public static func randomUniform(shape: [Int], bound: Float, seed: UInt64) -> Tensor {
        var generator = Tensor.randomNormal(shape: [1], seed: seed).scalars[0].bitPattern
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        var state = UInt64(generator) &+ seed
        for index in 0..<count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            generator = UInt32(truncatingIfNeeded: state >> 33)
            values[index] = (Float(generator) / Float(UInt32.max >> 1) * 2 - 1) * bound
        }
        return Tensor(shape: shape, scalars: values)
    }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    public var description: String { "Tensor(\(shape)): \(scalars.prefix(8))\(count > 8 ? "…" : "")" }

    /// The same values under another shape.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, scalars: scalars)
    }

    // MARK: elementwise

    public static func + (a: Tensor, b: Tensor) -> Tensor { a.zip(b, +) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.zip(b, -) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.zip(b, *) }
    public static func * (a: Tensor, b: Float) -> Tensor { a.map { $0 * b } }

    public func map(_ transform: (Float) -> Float) -> Tensor {
        var result = self
        result.scalars.withUnsafeMutableBufferPointer { out in
            for index in out.indices { out[index] = transform(out[index]) }
        }
        return result
    }

    /// Elementwise `a op b`; `b` may also be a row (last dimension) broadcast over `a`'s rows,
    /// or a scalar.
    public func zip(_ other: Tensor, _ operation: (Float, Float) -> Float) -> Tensor {
        var result = self
        let b = other.scalars
        if other.shape == shape {
            result.scalars.withUnsafeMutableBufferPointer { out in
                b.withUnsafeBufferPointer { y in for index in out.indices { out[index] = operation(out[index], y[index]) } }
            }
        } else if other.count == 1 {
            let value = b[0]
            result.scalars.withUnsafeMutableBufferPointer { out in
                for index in out.indices { out[index] = operation(out[index], value) }
            }
        } else {
            precondition(
                rank >= 1 && other.rank == 1 && other.shape[0] == shape[rank - 1], "cannot broadcast \(other.shape) over \(shape)"
            )
            let width = other.count
            result.scalars.withUnsafeMutableBufferPointer { out in
                b.withUnsafeBufferPointer { y in
                    for index in out.indices { out[index] = operation(out[index], y[index % width]) }
                }
            }
        }
        return result
    }

    // MARK: linear algebra

    /// The matrix product of two rank-2 tensors (optionally transposed), through `cblas_sgemm`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul takes rank-2 tensors, not \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        precondition(k == kb, "matmul: inner sizes \(k) and \(kb) differ (\(a.shape) × \(b.shape))")
        var result = Tensor(shape: [m, n])
        guard m > 0, n > 0, k > 0 else { return result }
        a.scalars.withUnsafeBufferPointer { x in
            b.scalars.withUnsafeBufferPointer { y in
                result.scalars.withUnsafeMutableBufferPointer { z in
                    cblas_sgemm(
                        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m),
                        Int32(n),
                        Int32(k), 1, x.baseAddress, Int32(a.shape[1]), y.baseAddress, Int32(b.shape[1]), 0, z.baseAddress,
                        Int32(n))
                }
            }
        }
        return result
    }

    /// A rank-2 tensor's transpose.
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() takes a rank-2 tensor")
        let (rows, columns) = (shape[0], shape[1])
        var result = Tensor(shape: [columns, rows])
        scalars.withUnsafeBufferPointer { x in
            result.scalars.withUnsafeMutableBufferPointer { out in
                for row in 0..<rows { for column in 0..<columns { out[column * rows + row] = x[row * columns + column] } }
            }
        }
        return result
    }

    // MARK: reductions

    public func sum() -> Float { scalars.reduce(0, +) }
    public func mean() -> Float { count == 0 ? .nan : sum() / Float(count) }

    /// Sums over the leading dimension: a `[rows, columns]` tensor's column sums.
    public func sumRows() -> Tensor {
        precondition(rank == 2, "sumRows() takes a rank-2 tensor")
        var result = Tensor(shape: [shape[1]])
        for row in 0..<shape[0] {
            for column in 0..<shape[1] { result.scalars[column] += scalars[row * shape[1] + column] }
        }
        return result
    }

    /// Softmax over the last dimension, computed stably.
    public func softmax() -> Tensor {
        precondition(rank >= 1, "softmax needs a dimension")
        let width = shape[rank - 1]
        var result = self
        result.scalars.withUnsafeMutableBufferPointer { out in
            for start in stride(from: 0, to: count, by: width) {
                var largest = -Float.infinity
                for index in start..<start + width { largest = max(largest, out[index]) }
                var total: Float = 0
                for index in start..<start + width {
                    out[index] = exp(out[index] - largest)
                    total += out[index]
                }
                for index in start..<start + width { out[index] /= total }
            }
        }
        return result
    }
}
