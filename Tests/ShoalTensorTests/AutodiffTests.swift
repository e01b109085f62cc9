import Foundation
import Testing

@testable import ShoalTensor

/// Compares a variable's gradient with central finite differences of `loss` (in Double
/// precision around Float values: tolerance relative to the gradient's size).
func checkGradient(_ name: String, input: Tensor, tolerance: Float = 2e-2, _ loss: (Tape, Variable) -> Variable) {
    let tape = Tape()
    let x = tape.variable(input)
    let output = loss(tape, x)
    tape.backward(from: output)
    guard let analytic = x.gradient else {
        Issue.record("\(name): no gradient")
        return
    }
    let step: Float = 1e-2
    for index in 0..<input.count {
        var plus = input
        plus.scalars[index] += step
        var minus = input
        minus.scalars[index] -= step
        let up = loss(Tape(), Tape().variable(plus)).value.scalars[0]
        let down = loss(Tape(), Tape().variable(minus)).value.scalars[0]
        let numeric = (up - down) / (2 * step)
        let scale = max(1, abs(numeric))
        #expect(
            abs(analytic.scalars[index] - numeric) <= tolerance * scale,
            "\(name)[\(index)]: analytic \(analytic.scalars[index]), numeric \(numeric)")
    }
}

struct AutodiffTests {
    let a = Tensor.randomNormal(shape: [3, 4], seed: 1)
    let b = Tensor.randomNormal(shape: [4, 2], seed: 2)
    let row = Tensor.randomNormal(shape: [4], seed: 3)

    @Test func matmulAgreesWithALoopAndHasGradients() {
        let product = Tensor.matmul(a, b)
        for i in 0..<3 {
            for j in 0..<2 {
                let expected = (0..<4).reduce(Float(0)) { $0 + a.scalars[i * 4 + $1] * b.scalars[$1 * 2 + j] }
                #expect(abs(product.scalars[i * 2 + j] - expected) < 1e-5)
            }
        }
        #expect(Tensor.matmul(a, a, transposeB: true).shape == [3, 3])
        #expect(Tensor.matmul(a, a, transposeA: true) == Tensor.matmul(a.transposed(), a))
        let (left, right) = (a, b)
        checkGradient("matmul left", input: left) { tape, x in Variable.matmul(x, tape.variable(right)).sum() }
        checkGradient("matmul right", input: right) { tape, x in
            (Variable.matmul(tape.variable(left), x) * tape.variable(Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6]))).sum()
        }
    }

    @Test func productsWithOneRowOrColumnAgreeWithALoop() {
        // These go through matrix-vector products, with every transposition.
        func expected(_ a: Tensor, _ b: Tensor, _ m: Int, _ n: Int, _ k: Int, _ ta: Bool, _ tb: Bool) -> [Float] {
            (0..<m * n).map { index in
                let (i, j) = (index / n, index % n)
                return (0..<k).reduce(Float(0)) { total, l in
                    total + a.scalars[ta ? l * m + i : i * k + l] * b.scalars[tb ? j * k + l : l * n + j]
                }
            }
        }
        for (m, n, k) in [(1, 5, 4), (3, 1, 4), (1, 1, 3)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = Tensor.randomNormal(shape: ta ? [k, m] : [m, k], seed: UInt64(m * 10 + k))
                let b = Tensor.randomNormal(shape: tb ? [n, k] : [k, n], seed: UInt64(n * 10 + k))
                let product = Tensor.matmul(a, b, transposeA: ta, transposeB: tb)
                let reference = expected(a, b, m, n, k, ta, tb)
                #expect(
                    zip(product.scalars, reference).allSatisfy { abs($0 - $1) < 1e-5 },
                    "\(m)×\(n)×\(k), transposed \(ta), \(tb): \(product.scalars) vs \(reference)")
            }
        }
    }

    @Test func elementwiseAndBroadcastGradients() {
        let row = self.row
        let a = self.a
        checkGradient("add broadcast row", input: row) { tape, x in ((tape.variable(a) + x) * (tape.variable(a) + x)).sum() }
        checkGradient("sub", input: a) { tape, x in ((x - tape.variable(row)) * (x - tape.variable(row))).mean() }
        checkGradient("mul", input: a) { tape, x in (x * x * x).sum() }
        checkGradient("scale", input: a) { _, x in (x * 3).sum() }
        checkGradient("tanh", input: a) { _, x in x.tanh().sum() }
        checkGradient("sigmoid", input: a) { _, x in x.sigmoid().sum() }
        // ReLU away from its kink.
        let away = a.map { abs($0) < 0.05 ? 0.5 : $0 }
        checkGradient("relu", input: away) { _, x in (x.relu() * x).sum() }
    }

    @Test func lossGradients() {
        let target = Tensor.randomNormal(shape: [3, 4], seed: 9)
        checkGradient("mse", input: a) { _, x in x.meanSquaredError(target) }
        checkGradient("cross-entropy", input: a) { _, x in x.crossEntropy(labels: [0, 3, 2]) }
        let weight = Tensor.randomNormal(shape: [5, 4], seed: 4)
        let bias = Tensor.randomNormal(shape: [5], seed: 5)
        let a = self.a
        checkGradient("linear input", input: a) { tape, x in
            Variable.linear(x, weight: tape.variable(weight), bias: tape.variable(bias)).tanh().sum()
        }
        checkGradient("linear weight", input: weight) { tape, w in
            Variable.linear(tape.variable(a), weight: w, bias: tape.variable(bias)).tanh().sum()
        }
        checkGradient("linear bias", input: bias) { tape, c in
            Variable.linear(tape.variable(a), weight: tape.variable(weight), bias: c).tanh().sum()
        }
        // Softmax rows sum to 1, and huge logits do not overflow.
        let probabilities = Tensor(shape: [2, 3], scalars: [1000, 1001, 1002, -5, 0, 5]).softmax()
        #expect(abs(probabilities.scalars[0..<3].reduce(0, +) - 1) < 1e-6)
        #expect(probabilities.scalars.allSatisfy { $0.isFinite })
    }

    @Test func aTwoLayerNetworkLearnsXORWithAdam() {
        let inputs = Tensor(shape: [4, 2], scalars: [0, 0, 0, 1, 1, 0, 1, 1])
        let labels = [0, 1, 1, 0]
        let first = Linear(inputs: 2, outputs: 16, seed: 11)
        let second = Linear(inputs: 16, outputs: 2, seed: 12)
        var parameters = [first.weight, first.bias, second.weight, second.bias]
        var optimiser = Adam(learningRate: 0.05)
        var loss: Float = .infinity
        var accuracy = 0
        for _ in 0..<300 {
            let tape = Tape()
            let p = parameters.map { tape.variable($0) }
            let hidden = Variable.linear(tape.variable(inputs), weight: p[0], bias: p[1]).tanh()
            let logits = Variable.linear(hidden, weight: p[2], bias: p[3])
            let output = logits.crossEntropy(labels: labels)
            tape.backward(from: output)
            loss = output.value.scalars[0]
            accuracy =
                (0..<4).filter { row in
                    let scores = logits.value.scalars[(row * 2)..<(row * 2 + 2)]
                    return (scores.first ?? 0 > scores.last ?? 0 ? 0 : 1) == labels[row]
                }.count
            optimiser.update(&parameters, gradients: p.map { $0.gradient ?? Tensor(shape: $0.shape) })
        }
        #expect(accuracy == 4, "XOR learned")
        #expect(loss < 0.05, "loss \(loss)")
    }

    @Test func blasRunsTheKernelsThisProcessorWants() throws {
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        if info.contains(" avx512f ") && info.contains(" avx512bw ") && info.contains(" avx512vl ") {
            #expect(BLAS.preferredCoreType == "SKYLAKEX")
        }
        #expect(!BLAS.coreName.isEmpty)
        // When the environment names a core type, OpenBLAS (loaded after it was set) runs it.
        if let wanted = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            #expect(BLAS.coreName.lowercased() == wanted.lowercased(), "OpenBLAS runs \(BLAS.coreName), not \(wanted)")
        }
    }
}

struct NormalizationTests {
    @Test func layerNormMatchesItsDefinitionAndHasGradients() {
        let x = Tensor.randomNormal(shape: [3, 5], standardDeviation: 2, seed: 21)
        let weight = Tensor.randomNormal(shape: [5], seed: 22)
        let bias = Tensor.randomNormal(shape: [5], seed: 23)
        let tape = Tape()
        let y = tape.variable(x).layerNorm(
            weight: tape.variable(Tensor(shape: [5], repeating: 1)), bias: tape.variable(Tensor(shape: [5])))
        for row in 0..<3 {
            let values = y.value.scalars[(row * 5)..<(row * 5 + 5)]
            let mean = values.reduce(0, +) / 5
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 5
            #expect(abs(mean) < 1e-5 && abs(variance - 1) < 1e-3, "row \(row): mean \(mean), variance \(variance)")
        }
        let target = Tensor.randomNormal(shape: [3, 5], seed: 24)
        checkGradient("layerNorm input", input: x) { tape, v in
            v.layerNorm(weight: tape.variable(weight), bias: tape.variable(bias)).meanSquaredError(target)
        }
        checkGradient("layerNorm weight", input: weight) { tape, w in
            tape.variable(x).layerNorm(weight: w, bias: tape.variable(bias)).meanSquaredError(target)
        }
        checkGradient("layerNorm bias", input: bias) { tape, b in
            tape.variable(x).layerNorm(weight: tape.variable(weight), bias: b).meanSquaredError(target)
        }
    }

    @Test func geluAndDropout() {
        let x = Tensor.randomNormal(shape: [2, 6], seed: 31)
        checkGradient("gelu", input: x) { _, v in (v.gelu() * v).sum() }
        let tape = Tape()
        #expect(abs(tape.variable(Tensor(1)).gelu().value.scalars[0] - 0.841_344_7) < 1e-5, "GELU(1) = Φ(1)")

        let ones = Tensor(shape: [1000], repeating: 1)
        let dropped = Tape().variable(ones).dropout(0.3, training: true, seed: 5).value
        let zeros = dropped.scalars.filter { $0 == 0 }.count
        #expect(zeros > 230 && zeros < 370, "about 30% dropped: \(zeros)")
        #expect(dropped.scalars.allSatisfy { $0 == 0 || abs($0 - 1 / 0.7) < 1e-5 }, "the rest scaled by 1/(1 − p)")
        #expect(Tape().variable(ones).dropout(0.3, training: false, seed: 5).value == ones, "identity outside training")
        #expect(Tape().variable(ones).dropout(0.3, training: true, seed: 5).value == dropped, "seeded")
        checkGradient("dropout", input: x) { _, v in (v.dropout(0.5, training: true, seed: 9) * v).sum() }
    }
}

struct ConvolutionTests {
    @Test func conv1dMatchesADirectSumAndHasGradients() {
        let x = Tensor.randomNormal(shape: [2, 3, 7], seed: 41)
        let w = Tensor.randomNormal(shape: [4, 3, 3], seed: 42)
        let bias = Tensor.randomNormal(shape: [4], seed: 43)
        let tape = Tape()
        let y = tape.variable(x).conv1d(weight: tape.variable(w), bias: tape.variable(bias), padding: 1).value
        #expect(y.shape == [2, 4, 7], "padding k/2 keeps the length")
        for (b, o, t) in [(0, 0, 0), (1, 3, 6), (1, 2, 3)] {
            var expected = bias.scalars[o]
            for c in 0..<3 {
                for k in 0..<3 where (0..<7).contains(t + k - 1) {
                    expected += w.scalars[(o * 3 + c) * 3 + k] * x.scalars[(b * 3 + c) * 7 + t + k - 1]
                }
            }
            #expect(abs(y.scalars[(b * 4 + o) * 7 + t] - expected) < 1e-5, "y[\(b),\(o),\(t)]")
        }
        let target = Tensor.randomNormal(shape: [2, 4, 7], seed: 44)
        checkGradient("conv1d input", input: x) { tape, v in
            v.conv1d(weight: tape.variable(w), bias: tape.variable(bias), padding: 1).meanSquaredError(target)
        }
        checkGradient("conv1d weight", input: w) { tape, v in
            tape.variable(x).conv1d(weight: v, bias: tape.variable(bias), padding: 1).meanSquaredError(target)
        }
        checkGradient("conv1d bias", input: bias) { tape, v in
            tape.variable(x).conv1d(weight: tape.variable(w), bias: v, padding: 1).meanSquaredError(target)
        }
        let wide = Tensor.randomNormal(shape: [2, 3, 5], seed: 45)
        checkGradient("conv1d kernel 5", input: x) { tape, v in
            (v.conv1d(weight: tape.variable(wide), bias: nil, padding: 2) * 0.5).sum()
        }
    }

    @Test func aMultiKernelConvolutionIsTheConvolutionsSideBySide() {
        let x = Tensor.randomNormal(shape: [2, 3, 7], seed: 46)
        let weights = [3, 1, 5].enumerated().map {
            Tensor.randomNormal(shape: [2 + $0.offset, 3, $0.element], seed: 47 + UInt64($0.offset))
        }
        let biases = weights.enumerated().map { Tensor.randomNormal(shape: [$0.element.shape[0]], seed: 57 + UInt64($0.offset)) }
        let tape = Tape()
        let input = tape.constant(x)
        let separate = Variable.concatenate(
            zip(weights, biases).map {
                input.conv1dTimeMajor(weight: tape.constant($0), bias: tape.constant($1), padding: $0.shape[2] / 2)
            },
            axis: 2
        ).value
        let joined = Variable.multiKernelConv1d(
            input, weights: weights.map { tape.constant($0) }, biases: biases.map { tape.constant($0) }
        ).value
        #expect(joined.shape == [2, 7, 9])
        #expect(zip(joined.scalars, separate.scalars).allSatisfy { abs($0 - $1) < 1e-5 })
        let target = Tensor.randomNormal(shape: [2, 7, 9], seed: 60)
        func loss(_ tape: Tape, _ x: Variable, _ w: [Variable], _ b: [Variable]) -> Variable {
            Variable.multiKernelConv1d(x, weights: w, biases: b).meanSquaredError(target)
        }
        checkGradient("multi-kernel input", input: x) { t, v in
            loss(t, v, weights.map { t.variable($0) }, biases.map { t.variable($0) })
        }
        checkGradient("multi-kernel short weight", input: weights[1]) { t, v in
            loss(t, t.constant(x), [t.variable(weights[0]), v, t.variable(weights[2])], biases.map { t.variable($0) })
        }
        checkGradient("multi-kernel long weight", input: weights[2]) { t, v in
            loss(t, t.constant(x), [t.variable(weights[0]), t.variable(weights[1]), v], biases.map { t.variable($0) })
        }
        checkGradient("multi-kernel bias", input: biases[0]) { t, v in
            loss(t, t.constant(x), weights.map { t.variable($0) }, [v, t.variable(biases[1]), t.variable(biases[2])])
        }
    }

    @Test func concatenationAndTransposition() {
        let a = Tensor.randomNormal(shape: [2, 3, 4], seed: 51)
        let b = Tensor.randomNormal(shape: [2, 1, 4], seed: 52)
        let tape = Tape()
        let joined = Variable.concatenate([tape.variable(a), tape.variable(b)], axis: 1).value
        #expect(joined.shape == [2, 4, 4])
        #expect(Array(joined.scalars[12..<16]) == Array(b.scalars[0..<4]), "sample 0's last channel is b's")
        #expect(Array(joined.scalars[16..<28]) == Array(a.scalars[12..<24]))
        let time = a.transposingLastTwo()
        #expect(time.shape == [2, 4, 3] && time.scalars[1 * 12 + 2 * 3 + 1] == a.scalars[1 * 12 + 1 * 4 + 2])
        #expect(time.transposingLastTwo() == a)
        let weights = Tensor.randomNormal(shape: [2, 4, 4], seed: 53)
        checkGradient("concatenate", input: a) { tape, v in
            (Variable.concatenate([v, tape.variable(b)], axis: 1) * tape.variable(weights)).sum()
        }
        let pattern = Tensor.randomNormal(shape: [2, 4, 3], seed: 54)
        checkGradient("transpose", input: a) { tape, v in (v.transposingLastTwo() * tape.variable(pattern)).sum() }
    }
}

struct RecurrentTests {
    @Test func oneLSTMStepMatchesTheGateEquations() {
        let lstm = LSTM(inputSize: 2, hiddenSize: 3, seed: 61)
        let x = Tensor.randomNormal(shape: [1, 1, 2], seed: 62)
        let tape = Tape()
        let h = lstm(tape.variable(x), variables: lstm.variables(on: tape), training: false).value
        // By hand: h0 = c0 = 0, so gates = W_ih x + b_ih + b_hh.
        let p = lstm.parameters
        func gate(_ row: Int) -> Float {
            var total = (p["bias_ih_l0"]?.scalars[row] ?? 0) + (p["bias_hh_l0"]?.scalars[row] ?? 0)
            for k in 0..<2 { total += (p["weight_ih_l0"]?.scalars[row * 2 + k] ?? 0) * x.scalars[k] }
            return total
        }
        func sigmoid(_ v: Float) -> Float { 1 / (1 + exp(-v)) }
        for unit in 0..<3 {
            let c = sigmoid(gate(unit)) * Foundation.tanh(gate(6 + unit))
            let expected = sigmoid(gate(9 + unit)) * Foundation.tanh(c)
            #expect(abs(h.scalars[unit] - expected) < 1e-6, "unit \(unit): \(h.scalars[unit]) vs \(expected)")
        }
        #expect(LSTM.parameterNames(layers: 2, bidirectional: true).count == 16)
        #expect(lstm.parameters["weight_hh_l0"]?.shape == [12, 3])
    }

    @Test func aStackedBidirectionalLSTMHasGradients() {
        let lstm = LSTM(inputSize: 3, hiddenSize: 2, layers: 2, bidirectional: true, dropout: 0.3, seed: 71)
        #expect(lstm.parameters["weight_ih_l1_reverse"]?.shape == [8, 4], "layer 2 reads both directions")
        let x = Tensor.randomNormal(shape: [2, 4, 3], seed: 72)
        let target = Tensor.randomNormal(shape: [2, 4, 4], seed: 73)
        let eval = Tape()
        #expect(lstm(eval.variable(x), variables: lstm.variables(on: eval), training: false).shape == [2, 4, 4])
        checkGradient("lstm input", input: x, tolerance: 3e-2) { tape, v in
            lstm(v, variables: lstm.variables(on: tape), training: true, seed: 5).meanSquaredError(target)
        }
        let name = "weight_hh_l0_reverse"
        if let weight = lstm.parameters[name] {
            checkGradient("lstm \(name)", input: weight, tolerance: 3e-2) { tape, w in
                var variables = lstm.variables(on: tape)
                variables[name] = w
                return lstm(tape.variable(x), variables: variables, training: false).meanSquaredError(target)
            }
        }
    }
}

struct AttentionTests {
    @Test func permutationsAndBatchedProducts() {
        let x = Tensor.randomNormal(shape: [2, 3, 4], seed: 81)
        let p = x.permuted([2, 0, 1])
        #expect(p.shape == [4, 2, 3] && p.scalars[(3 * 2 + 1) * 3 + 2] == x.scalars[(1 * 3 + 2) * 4 + 3])
        #expect(p.permuted([1, 2, 0]) == x)
        let y = Tensor.randomNormal(shape: [2, 4, 5], seed: 82)
        let product = Tensor.batchedMatmul(x, y)
        for n in 0..<2 {
            let a = Tensor(shape: [3, 4], scalars: Array(x.scalars[(n * 12)..<(n * 12 + 12)]))
            let b = Tensor(shape: [4, 5], scalars: Array(y.scalars[(n * 20)..<(n * 20 + 20)]))
            #expect(Array(product.scalars[(n * 15)..<(n * 15 + 15)]) == Tensor.matmul(a, b).scalars)
        }
        let weights = Tensor.randomNormal(shape: [2, 3, 3], seed: 83)
        checkGradient("batched matmul with transpose", input: x) { tape, v in
            (Variable.batchedMatmul(v, tape.variable(x), transposeB: true) * tape.variable(weights)).sum()
        }
        checkGradient("softmax", input: x) { tape, v in (v.softmax() * tape.variable(x)).sum() }
        checkGradient("permute", input: x) { tape, v in (v.permuted([2, 0, 1]) * tape.variable(p)).sum() }
    }

    @Test func attentionMatchesOneHeadByHandAndHasGradients() {
        let attention = MultiheadAttention(embedding: 4, heads: 2, seed: 91)
        #expect(attention.parameters["in_proj_weight"]?.shape == [12, 4])
        let x = Tensor.randomNormal(shape: [1, 3, 4], seed: 92)
        let tape = Tape()
        let variable = tape.variable(x)
        let out = attention(query: variable, key: variable, value: variable, variables: attention.variables(on: tape)).value
        #expect(out.shape == [1, 3, 4])
        // By hand, for query step 0: per head h (dims 2h..<2h+2), softmax(q·kᵀ/√2)·v, then out_proj.
        let w = attention.parameters["in_proj_weight"]?.scalars ?? []
        func project(_ part: Int, _ t: Int) -> [Float] {
            (0..<4).map { row in (0..<4).reduce(Float(0)) { $0 + w[(part * 4 + row) * 4 + $1] * x.scalars[t * 4 + $1] } }
        }
        var concatenated = [Float](repeating: 0, count: 4)
        for head in 0..<2 {
            let q = project(0, 0)[(head * 2)..<(head * 2 + 2)]
            let scores = (0..<3).map { t in
                zip(q, project(1, t)[(head * 2)..<(head * 2 + 2)]).reduce(Float(0)) { $0 + $1.0 * $1.1 } / Float(2).squareRoot()
            }
            let largest = scores.max() ?? 0
            let exps = scores.map { exp($0 - largest) }
            let total = exps.reduce(0, +)
            for t in 0..<3 {
                let v = project(2, t)
                for dim in 0..<2 { concatenated[head * 2 + dim] += exps[t] / total * v[head * 2 + dim] }
            }
        }
        let ow = attention.parameters["out_proj.weight"]?.scalars ?? []
        for unit in 0..<4 {
            let expected = (0..<4).reduce(Float(0)) { $0 + ow[unit * 4 + $1] * concatenated[$1] }
            #expect(abs(out.scalars[unit] - expected) < 1e-5, "unit \(unit): \(out.scalars[unit]) vs \(expected)")
        }
        let target = Tensor.randomNormal(shape: [1, 3, 4], seed: 93)
        checkGradient("attention input", input: x) { tape, v in
            attention(query: v, key: v, value: v, variables: attention.variables(on: tape)).meanSquaredError(target)
        }
        if let weight = attention.parameters["in_proj_weight"] {
            checkGradient("attention in_proj_weight", input: weight) { tape, wv in
                var variables = attention.variables(on: tape)
                variables["in_proj_weight"] = wv
                let input = tape.variable(x)
                return attention(query: input, key: input, value: input, variables: variables).meanSquaredError(target)
            }
        }
    }
}

struct LSTMCellTests {
    @Test func theFusedCellHasGradientsForEveryInput() {
        let projection = Tensor.randomNormal(shape: [2, 12], seed: 101)
        let hidden = Tensor.randomNormal(shape: [2, 3], seed: 102)
        let cell = Tensor.randomNormal(shape: [2, 3], seed: 103)
        let weight = Tensor.randomNormal(shape: [12, 3], seed: 104)
        let bias = Tensor.randomNormal(shape: [12], seed: 105)
        let mix = Tensor.randomNormal(shape: [2, 6], seed: 106)
        func loss(_ tape: Tape, _ p: Variable, _ h: Variable, _ c: Variable, _ w: Variable, _ b: Variable) -> Variable {
            (Variable.lstmCell(input: p, hidden: h, cell: c, weight: w, bias: b) * tape.variable(mix)).sum()
        }
        checkGradient("cell input", input: projection) { t, v in
            loss(t, v, t.variable(hidden), t.variable(cell), t.variable(weight), t.variable(bias))
        }
        checkGradient("cell hidden", input: hidden) { t, v in
            loss(t, t.variable(projection), v, t.variable(cell), t.variable(weight), t.variable(bias))
        }
        checkGradient("cell state", input: cell) { t, v in
            loss(t, t.variable(projection), t.variable(hidden), v, t.variable(weight), t.variable(bias))
        }
        checkGradient("cell weight", input: weight) { t, v in
            loss(t, t.variable(projection), t.variable(hidden), t.variable(cell), v, t.variable(bias))
        }
        checkGradient("cell bias", input: bias) { t, v in
            loss(t, t.variable(projection), t.variable(hidden), t.variable(cell), t.variable(weight), v)
        }
    }
}
