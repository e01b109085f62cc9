import COpenBLAS
import Foundation

extension Tensor {
    /// The dimensions reordered: result dimension i is this tensor's dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permuted: \(order) is not a permutation of 0..<\(rank)")
        let newShape = order.map { shape[$0] }
        var strides = [Int](repeating: 1, count: rank)
        for axis in stride(from: rank - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        let sourceStrides = order.map { strides[$0] }
        var result = Tensor(shape: newShape)
        if order.last == rank - 1 && rank >= 2 && count > 0 {
            // The last axis stays: copy whole rows, stepping the index once per row.
            let width = shape[rank - 1]
            let rowShape = Array(newShape.dropLast())
            var index = [Int](repeating: 0, count: rank - 1)
            scalars.withUnsafeBufferPointer { x in
                result.scalars.withUnsafeMutableBufferPointer { out in
                    for row in 0..<(count / width) {
                        var source = 0
                        for axis in 0..<(rank - 1) { source += index[axis] * sourceStrides[axis] }
                        (out.baseAddress! + row * width).update(from: x.baseAddress! + source, count: width)
                        var axis = rank - 2
                        while axis >= 0 {
                            index[axis] += 1
                            if index[axis] < rowShape[axis] { break }
                            index[axis] = 0
                            axis -= 1
                        }
                    }
                }
            }
            return result
        }
        var index = [Int](repeating: 0, count: rank)
        scalars.withUnsafeBufferPointer { x in
            result.scalars.withUnsafeMutableBufferPointer { out in
                for position in 0..<count {
                    var source = 0
                    for axis in 0..<rank { source += index[axis] * sourceStrides[axis] }
                    out[position] = x[source]
                    var axis = rank - 1
                    while axis >= 0 {
                        index[axis] += 1
                        if index[axis] < newShape[axis] { break }
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        return result
    }

    /// Products of matching matrices: `[n, m, k] × [n, k, p]` (or `[n, p, k]` transposed) → `[n, m, p]`.
    public static func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "batchedMatmul: \(a.shape) × \(b.shape)")
        let batch = a.shape[0]
        let m = transposeA ? a.shape[2] : a.shape[1]
        let k = transposeA ? a.shape[1] : a.shape[2]
        let p = transposeB ? b.shape[1] : b.shape[2]
        precondition(k == (transposeB ? b.shape[2] : b.shape[1]), "batchedMatmul: inner sizes differ in \(a.shape) × \(b.shape)")
        var result = Tensor(shape: [batch, m, p])
        guard m > 0, p > 0, k > 0 else { return result }
        let (aSize, bSize) = (a.shape[1] * a.shape[2], b.shape[1] * b.shape[2])
        a.scalars.withUnsafeBufferPointer { x in
            b.scalars.withUnsafeBufferPointer { y in
                result.scalars.withUnsafeMutableBufferPointer { z in
                    for n in 0..<batch {
                        cblas_sgemm(
                            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                            Int32(m), Int32(p),
                            Int32(k), 1, x.baseAddress! + n * aSize, Int32(a.shape[2]), y.baseAddress! + n * bSize,
                            Int32(b.shape[2]), 0,
                            z.baseAddress! + n * m * p, Int32(p))
                    }
                }
            }
        }
        return result
    }
}

extension Variable {
    public func permuted(_ order: [Int]) -> Variable {
        var inverse = [Int](repeating: 0, count: order.count)
        for (position, axis) in order.enumerated() { inverse[axis] = position }
        return tape.record(value.permuted(order), inputs: [self]) { g in [g.permuted(inverse)] }
    }

    public static func batchedMatmul(_ a: Variable, _ b: Variable, transposeB: Bool = false) -> Variable {
        let (x, y) = (a.value, b.value)
        return a.tape.record(Tensor.batchedMatmul(x, y, transposeB: transposeB), inputs: [a, b]) { g in
            if transposeB {
                // out = x · yᵀ: dx = g · y, dy = gᵀ · x
                return [Tensor.batchedMatmul(g, y), Tensor.batchedMatmul(g, x, transposeA: true)]
            }
            return [Tensor.batchedMatmul(g, y, transposeB: true), Tensor.batchedMatmul(x, g, transposeA: true)]
        }
    }

    /// Softmax over the last dimension.
    public func softmax() -> Variable {
        let y = value.softmax()
        let width = y.shape[y.rank - 1]
        return tape.record(y, inputs: [self]) { g in
            var gradient = g
            for start in stride(from: 0, to: y.count, by: width) {
                var dot: Float = 0
                for i in start..<start + width { dot += g.scalars[i] * y.scalars[i] }
                for i in start..<start + width { gradient.scalars[i] = y.scalars[i] * (g.scalars[i] - dot) }
            }
            return [gradient]
        }
    }
}

/// PyTorch's `nn.MultiheadAttention` with `batch_first=True`, named as its `state_dict()`:
/// `in_proj_weight` `[3E, E]`, `in_proj_bias` `[3E]`, `out_proj.weight` `[E, E]`,
/// `out_proj.bias` `[E]`; scaled dot-product attention per head.
public struct MultiheadAttention: Sendable {
    public var embedding: Int
    public var heads: Int
    public var parameters: [String: Tensor]

    /// Initialised as PyTorch does: Xavier-uniform projections, zero biases.
    public init(embedding: Int, heads: Int, seed: UInt64) {
        precondition(
            embedding > 0 && heads > 0 && embedding % heads == 0, "the embedding \(embedding) must split into \(heads) heads")
        self.embedding = embedding
        self.heads = heads
        let inBound = (6 / Float(embedding + 3 * embedding)).squareRoot()
        let outBound = 1 / Float(embedding).squareRoot()
        parameters = [
            "in_proj_weight": .randomUniform(shape: [3 * embedding, embedding], bound: inBound, seed: seed),
            "in_proj_bias": Tensor(shape: [3 * embedding]),
            "out_proj.weight": .randomUniform(shape: [embedding, embedding], bound: outBound, seed: seed &+ 1),
            "out_proj.bias": Tensor(shape: [embedding]),
        ]
    }

    public func variables(on tape: Tape) -> [String: Variable] { parameters.mapValues { tape.variable($0) } }

    /// Attention of `query` `[batch, Tq, E]` over `key`/`value` `[batch, Tk, E]`.
    public func callAsFunction(query: Variable, key: Variable, value: Variable, variables: [String: Variable]) -> Variable {
        let e = embedding
        let (batch, tq, tk) = (query.shape[0], query.shape[1], key.shape[1])
        precondition(
            query.shape[2] == e && key.shape[2] == e && value.shape == key.shape, "attention: shapes \(query.shape), \(key.shape)"
        )
        guard let inWeight = variables["in_proj_weight"], let inBias = variables["in_proj_bias"],
            let outWeight = variables["out_proj.weight"], let outBias = variables["out_proj.bias"]
        else { preconditionFailure("attention variables lack a parameter: pass variables(on:)") }
        let d = e / heads
        func project(_ x: Variable, _ part: Int, _ steps: Int) -> Variable {
            // The part's rows of the packed projection (contiguous), applied to every step, split into heads.
            let weight = inWeight.reshaped([1, 3 * e * e]).sliceLast(part * e * e..<(part + 1) * e * e).reshaped([e, e])
            let bias = inBias.reshaped([1, 3 * e]).sliceLast(part * e..<(part + 1) * e).reshaped([e])
            let projected = Variable.linear(x.reshaped([batch * steps, e]), weight: weight, bias: bias)
            return projected.reshaped([batch, steps, heads, d]).permuted([0, 2, 1, 3]).reshaped([batch * heads, steps, d])
        }
        let q = project(query, 0, tq) * (1 / Float(d).squareRoot())
        let k = project(key, 1, tk)
        let v = project(value, 2, tk)
        let weights = Variable.batchedMatmul(q, k, transposeB: true).softmax()
        let attended = Variable.batchedMatmul(weights, v).reshaped([batch, heads, tq, d]).permuted([0, 2, 1, 3]).reshaped([
            batch * tq, e,
        ])
        return Variable.linear(attended, weight: outWeight, bias: outBias).reshaped([batch, tq, e])
    }
}
