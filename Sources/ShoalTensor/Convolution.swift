import COpenBLAS
import Foundation

extension Tensor {
    /// Swaps the last two dimensions (`[…, a, b]` → `[…, b, a]`), e.g. channels-first to time-major.
    public func transposingLastTwo() -> Tensor {
        precondition(rank >= 2, "transposingLastTwo needs rank ≥ 2")
        let a = shape[rank - 2]
        let b = shape[rank - 1]
        var newShape = shape
        newShape.swapAt(rank - 2, rank - 1)
        var result = Tensor(shape: newShape)
        let block = a * b
        scalars.withUnsafeBufferPointer { x in
            result.scalars.withUnsafeMutableBufferPointer { out in
                for start in stride(from: 0, to: count, by: max(1, block)) {
                    for i in 0..<a { for j in 0..<b { out[start + j * a + i] = x[start + i * b + j] } }
                }
            }
        }
        return result
    }
}

extension Variable {
    /// 1-D convolution in PyTorch's layout: input `[batch, inChannels, length]`, weight
    /// `[outChannels, inChannels, kernel]`, bias `[outChannels]`, stride 1, `padding` zeros on
    /// each side. Each sample is an im2col matrix times the weights through `cblas_sgemm`.
    public func conv1d(weight: Variable, bias: Variable?, padding: Int) -> Variable {
        let x = value
        let w = weight.value
        precondition(x.rank == 3 && w.rank == 3 && w.shape[1] == x.shape[1], "conv1d: input \(x.shape), weight \(w.shape)")
        let (batch, channels, length) = (x.shape[0], x.shape[1], x.shape[2])
        let (outChannels, kernel) = (w.shape[0], w.shape[2])
        let outLength = length + 2 * padding - kernel + 1
        precondition(outLength > 0, "conv1d: the kernel \(kernel) is longer than the padded input \(length + 2 * padding)")
        let rows = channels * kernel
        // im2col for every sample: [batch][rows × outLength].
        var columns = [Float](repeating: 0, count: batch * rows * outLength)
        x.scalars.withUnsafeBufferPointer { input in
            columns.withUnsafeMutableBufferPointer { col in
                for b in 0..<batch {
                    for c in 0..<channels {
                        for k in 0..<kernel {
                            let row = (b * rows + c * kernel + k) * outLength
                            for t in 0..<outLength {
                                let source = t + k - padding
                                if source >= 0 && source < length { col[row + t] = input[(b * channels + c) * length + source] }
                            }
                        }
                    }
                }
            }
        }
        var output = Tensor(shape: [batch, outChannels, outLength])
        w.scalars.withUnsafeBufferPointer { weights in
            columns.withUnsafeBufferPointer { col in
                output.scalars.withUnsafeMutableBufferPointer { out in
                    for b in 0..<batch {
                        cblas_sgemm(
                            CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outChannels), Int32(outLength), Int32(rows), 1,
                            weights.baseAddress, Int32(rows), col.baseAddress! + b * rows * outLength, Int32(outLength), 0,
                            out.baseAddress! + b * outChannels * outLength, Int32(outLength))
                    }
                }
            }
        }
        if let bias {
            let values = bias.value.scalars
            for b in 0..<batch {
                for o in 0..<outChannels {
                    let start = (b * outChannels + o) * outLength
                    for t in 0..<outLength { output.scalars[start + t] += values[o] }
                }
            }
        }
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        return tape.record(output, inputs: inputs) { g in
            var dWeight = Tensor(shape: w.shape)
            var dColumns = [Float](repeating: 0, count: rows * outLength)
            var dInput = Tensor(shape: x.shape)
            var dBias = Tensor(shape: [outChannels])
            g.scalars.withUnsafeBufferPointer { grad in
                columns.withUnsafeBufferPointer { col in
                    w.scalars.withUnsafeBufferPointer { weights in
                        for b in 0..<batch {
                            let gradient = grad.baseAddress! + b * outChannels * outLength
                            // dW += g_b · col_bᵀ
                            dWeight.scalars.withUnsafeMutableBufferPointer { dw in
                                cblas_sgemm(
                                    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(outChannels), Int32(rows), Int32(outLength), 1,
                                    gradient,
                                    Int32(outLength), col.baseAddress! + b * rows * outLength, Int32(outLength), 1,
                                    dw.baseAddress,
                                    Int32(rows))
                            }
                            // dcol = Wᵀ · g_b, then back to the input's positions.
                            dColumns.withUnsafeMutableBufferPointer { dcol in
                                cblas_sgemm(
                                    CblasRowMajor, CblasTrans, CblasNoTrans, Int32(rows), Int32(outLength), Int32(outChannels), 1,
                                    weights.baseAddress, Int32(rows), gradient, Int32(outLength), 0, dcol.baseAddress,
                                    Int32(outLength))
                            }
                            for c in 0..<channels {
                                for k in 0..<kernel {
                                    let row = (c * kernel + k) * outLength
                                    for t in 0..<outLength {
                                        let target = t + k - padding
                                        if target >= 0 && target < length {
                                            dInput.scalars[(b * channels + c) * length + target] += dColumns[row + t]
                                        }
                                    }
                                }
                            }
                            for o in 0..<outChannels {
                                var total: Float = 0
                                for t in 0..<outLength { total += gradient[o * outLength + t] }
                                dBias.scalars[o] += total
                            }
                        }
                    }
                }
            }
            return bias == nil ? [dInput, dWeight] : [dInput, dWeight, dBias]
        }
    }

    /// Joins variables along `axis` (all other dimensions equal).
    public static func concatenate(_ parts: [Variable], axis: Int) -> Variable {
        precondition(!parts.isEmpty, "concatenate needs at least one part")
        let shapes = parts.map(\.shape)
        let rank = shapes[0].count
        precondition(axis >= 0 && axis < rank, "axis \(axis) is outside rank \(rank)")
        for shape in shapes {
            precondition(
                shape.count == rank && shape.enumerated().allSatisfy { $0.offset == axis || $0.element == shapes[0][$0.offset] },
                "concatenate: shapes \(shapes) differ outside axis \(axis)")
        }
        let outer = shapes[0][..<axis].reduce(1, *)
        let inner = shapes[0][(axis + 1)...].reduce(1, *)
        let sizes = shapes.map { $0[axis] }
        let total = sizes.reduce(0, +)
        var newShape = shapes[0]
        newShape[axis] = total
        var result = Tensor(shape: newShape)
        var offset = 0
        for (part, size) in zip(parts, sizes) {
            let values = part.value.scalars
            for o in 0..<outer {
                for i in 0..<(size * inner) { result.scalars[(o * total + offset) * inner + i] = values[o * size * inner + i] }
            }
            offset += size
        }
        return parts[0].tape.record(result, inputs: parts) { g in
            var gradients: [Tensor] = []
            var start = 0
            for (shape, size) in zip(shapes, sizes) {
                var piece = Tensor(shape: shape)
                for o in 0..<outer {
                    for i in 0..<(size * inner) {
                        piece.scalars[o * size * inner + i] = g.scalars[(o * total + start) * inner + i]
                    }
                }
                gradients.append(piece)
                start += size
            }
            return gradients
        }
    }

    /// Swaps the last two dimensions.
    public func transposingLastTwo() -> Variable {
        tape.record(value.transposingLastTwo(), inputs: [self]) { g in [g.transposingLastTwo()] }
    }
}
