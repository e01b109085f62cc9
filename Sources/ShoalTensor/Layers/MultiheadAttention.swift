import CShoalKernels

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

    /// Attention of `query` `[batch, Tq, E]` over `key`/`value` `[batch, Tk, E]` (key and value
    /// must be the same variable: self-attention, or cross-attention to one other sequence).
    public func callAsFunction(query: Variable, key: Variable, value: Variable, variables: [String: Variable]) -> Variable {
        Self.forward(query: query, key: key, value: value, variables: variables, heads: heads)
    }

    /// Attention from its parameters alone, found in `variables` under `prefix` + their
    /// `state_dict()` names (a model's variables, say, with the prefix `"attention_cnn."`).
    public static func forward(
        query: Variable, key: Variable, value: Variable, variables: [String: Variable], prefix: String = "", heads: Int
    ) -> Variable {
        guard let inWeight = variables[prefix + "in_proj_weight"], let inBias = variables[prefix + "in_proj_bias"],
            let outWeight = variables[prefix + "out_proj.weight"], let outBias = variables[prefix + "out_proj.bias"]
        else { preconditionFailure("attention variables lack a parameter under '\(prefix)': pass variables(on:)") }
        precondition(
            key.index == value.index && key.value == value.value,
            "attention: key and value must be the same sequence (as every use in Shoal has them)")
        return Variable.multiheadAttention(
            query: query, memory: key, heads: heads, inWeight: inWeight, inBias: inBias, outWeight: outWeight,
            outBias: outBias)
    }
}

extension Variable {
    /// Multi-head scaled dot-product attention of `query` `[batch, Tq, E]` over `memory`
    /// `[batch, Tk, E]` (the keys and values), with PyTorch's packed input projection, as one
    /// taped operation.
    ///
    /// Heads are never copied out: each head's queries, keys and values are strided views into
    /// the projections, and every per-head product is a `cblas_sgemm` on those views, the
    /// heads' outputs landing side by side in place. Backward runs the same way, with the
    /// softmax's gradient in place. Batch items run on separate threads when
    /// `Compute.threads` allows.
    public static func multiheadAttention(
        query: Variable, memory: Variable, heads: Int, inWeight: Variable, inBias: Variable, outWeight: Variable,
        outBias: Variable
    ) -> Variable {
        let (q, kv) = (query.value, memory.value)
        let e = q.shape[2]
        let (batch, tq, tk) = (q.shape[0], q.shape[1], kv.shape[1])
        precondition(
            q.rank == 3 && kv.rank == 3 && kv.shape[0] == batch && kv.shape[2] == e && e % heads == 0,
            "attention: query \(q.shape), memory \(kv.shape), \(heads) heads")
        precondition(
            inWeight.shape == [3 * e, e] && inBias.shape == [3 * e] && outWeight.shape == [e, e] && outBias.shape == [e])
        let d = e / heads
        let scale = 1 / Float(d).squareRoot()
        let selfAttention = query.index == memory.index && q == kv
        let (w, bias) = (inWeight.value, inBias.value)
        // Projections: with self-attention one product gives queries, keys and values,
        // [B·T, 3E]; else queries [B·Tq, E] and keys and values [B·Tk, 2E].
        func project(_ x: Tensor, rows: Int, from part: Int, parts: Int) -> Tensor {
            Tensor(shape: [rows, parts * e]) { out in
                bias.withPointer { bp in
                    for row in 0..<rows { (out + row * parts * e).update(from: bp + part * e, count: parts * e) }
                }
                x.withPointer { xp in
                    w.withPointer { wp in
                        GEMM.multiply(
                            xp, e, wp + part * e * e, e, transposeB: true, into: out, parts * e, m: rows, n: parts * e, k: e,
                            beta: 1)
                    }
                }
            }
        }
        let queries =
            selfAttention ? project(q, rows: batch * tq, from: 0, parts: 3) : project(q, rows: batch * tq, from: 0, parts: 1)
        let keysValues = selfAttention ? queries : project(kv, rows: batch * tk, from: 1, parts: 2)
        // Strides and offsets of the queries, keys and values inside their buffers.
        let qStride = selfAttention ? 3 * e : e
        let kvStride = selfAttention ? 3 * e : 2 * e
        let keyOffset = selfAttention ? e : 0
        let valueOffset = keyOffset + e

        var weights = Tensor(shape: [batch, heads, tq, tk]) { _ in }
        var attended = Tensor(shape: [batch * tq, e]) { _ in }
        queries.withPointer { qp in
            keysValues.withPointer { kvp in
                weights.withMutablePointer { pp in
                    attended.withMutablePointer { op in
                        Compute.parallelFor(batch, cost: heads * tq * tk * d * 4) { b in
                            for h in 0..<heads {
                                let scores = pp + (b * heads + h) * tq * tk
                                GEMM.multiply(
                                    qp + b * tq * qStride + h * d, qStride, kvp + b * tk * kvStride + keyOffset + h * d, kvStride,
                                    transposeB: true, into: scores, tk, m: tq, n: tk, k: d, alpha: scale)
                                shoal_softmax_rows(scores, scores, tq, tk)
                                GEMM.multiply(
                                    scores, tk, kvp + b * tk * kvStride + valueOffset + h * d, kvStride,
                                    into: op + b * tq * e + h * d, e, m: tq, n: d, k: tk)
                            }
                        }
                    }
                }
            }
        }
        let projectedOut = Variable.linear(
            query.tape.constant(attended), weight: outWeight.detached(), bias: outBias.detached()
        ).value.reshaped([batch, tq, e])

        let probabilities = weights
        let heads_ = attended
        let (qi, mi, wi, bi, owi, obi) = (query.index, memory.index, inWeight.index, inBias.index, outWeight.index, outBias.index)
        let outW = outWeight.value
        let needs =
            query.needsGradient || memory.needsGradient || inWeight.needsGradient || inBias.needsGradient
            || outWeight.needsGradient || outBias.needsGradient
        return query.tape.record(projectedOut, needsGradient: needs) { g, tape in
            let rowsQ = batch * tq
            let rowsK = batch * tk
            // Output projection.
            g.withPointer { gp in
                tape.accumulate(owi) { out, beta in
                    heads_.withPointer {
                        GEMM.multiply(gp, e, transposeA: true, $0, e, into: out, e, m: e, n: e, k: rowsQ, beta: beta)
                    }
                }
                tape.accumulate(obi) { out, beta in shoal_column_sums(gp, rowsQ, e, out, beta == 0 ? 0 : 1) }
            }
            let dAttended = Tensor(shape: [rowsQ, e]) { out in
                g.withPointer { gp in outW.withPointer { GEMM.multiply(gp, e, $0, e, into: out, e, m: rowsQ, n: e, k: e) } }
            }
            // Per head: dP = dO · Vᵀ, dV = Pᵀ · dO, dS = softmax'(dP) · scale, dQ = dS · K, dK = dSᵀ · Q.
            var dQueries = Tensor(shape: [rowsQ, qStride], repeating: 0)
            var dKeysValues = selfAttention ? Tensor(shape: [0]) : Tensor(shape: [rowsK, kvStride], repeating: 0)
            var scratch = Tensor(shape: [batch, tq, tk]) { _ in }
            queries.withPointer { qp in
                keysValues.withPointer { kvp in
                    probabilities.withPointer { pp in
                        dAttended.withPointer { dop in
                            scratch.withMutablePointer { sp in
                                dQueries.withMutablePointer { dqp in
                                    dKeysValues.withMutablePointer { separate in
                                        let dkvp = selfAttention ? dqp : separate
                                        Compute.parallelFor(batch, cost: heads * tq * tk * d * 8) { b in
                                            let dScores = sp + b * tq * tk
                                            for h in 0..<heads {
                                                let p = pp + (b * heads + h) * tq * tk
                                                let dO = dop + b * tq * e + h * d
                                                let queryBlock = b * tq * qStride + h * d
                                                let keyBlock = b * tk * kvStride + keyOffset + h * d
                                                let valueBlock = b * tk * kvStride + valueOffset + h * d
                                                GEMM.multiply(
                                                    dO, e, kvp + valueBlock, kvStride, transposeB: true, into: dScores, tk, m: tq,
                                                    n: tk, k: d)
                                                GEMM.multiply(
                                                    p, tk, transposeA: true, dO, e, into: dkvp + valueBlock, kvStride, m: tk,
                                                    n: d,
                                                    k: tq, beta: 1)
                                                shoal_softmax_backward_rows(p, dScores, dScores, tq, tk, scale)
                                                GEMM.multiply(
                                                    dScores, tk, kvp + keyBlock, kvStride, into: dqp + queryBlock, qStride, m: tq,
                                                    n: d, k: tk, beta: 1)
                                                GEMM.multiply(
                                                    dScores, tk, transposeA: true, qp + queryBlock, qStride,
                                                    into: dkvp + keyBlock, kvStride, m: tk, n: d, k: tq, beta: 1)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            // Input projections: weight rows of each part from its inputs, biases, and the inputs.
            func backProject(_ gradient: Tensor, _ x: Tensor, rows: Int, from part: Int, parts: Int, into xIndex: Int) {
                let width = parts * e
                gradient.withPointer { gp in
                    tape.accumulate(wi) { out, beta in
                        // Only this call's rows of the packed weight; the other rows keep their sum.
                        x.withPointer {
                            GEMM.multiply(
                                gp, width, transposeA: true, $0, e, into: out + part * e * e, e, m: width, n: e, k: rows,
                                beta: beta)
                        }
                        if beta == 0 && !selfAttention {
                            // A new gradient buffer: the rows the other call writes start at zero.
                            let others = part == 0 ? (e * e)..<(3 * e * e) : 0..<(e * e)
                            (out + others.lowerBound).initialize(repeating: 0, count: others.count)
                        }
                    }
                    tape.accumulate(bi) { out, beta in
                        if beta == 0 { out.initialize(repeating: 0, count: 3 * e) }
                        // The keys' bias adds the same q·b to every score of a query, which the
                        // softmax ignores: its gradient is exactly zero. Summed, it would be
                        // rounding noise, which Adam turns into steps the size of the learning
                        // rate (and which differs with the order of the sums, e.g. across
                        // data-parallel workers). So the keys' columns are left out.
                        let keys = (part == 0 ? e : 0)..<(part == 0 ? 2 * e : e)
                        let sums = Tensor(shape: [width]) { shoal_column_sums(gp, rows, width, $0, 0) }
                        sums.withPointer { sp in
                            for column in 0..<width where !keys.contains(column) { out[part * e + column] += sp[column] }
                        }
                    }
                    tape.accumulate(xIndex) { out, beta in
                        w.withPointer {
                            GEMM.multiply(gp, width, $0 + part * e * e, e, into: out, e, m: rows, n: e, k: width, beta: beta)
                        }
                    }
                }
            }
            if selfAttention {
                backProject(dQueries, q, rows: rowsQ, from: 0, parts: 3, into: qi)
            } else {
                backProject(dQueries, q, rows: rowsQ, from: 0, parts: 1, into: qi)
                backProject(dKeysValues, kv, rows: rowsK, from: 1, parts: 2, into: mi)
            }
        }
    }
}
