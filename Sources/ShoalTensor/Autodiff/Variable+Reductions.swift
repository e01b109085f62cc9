import CShoalKernels
import Foundation

extension Variable {
    /// The sum of all elements (a scalar).
    public func sum() -> Variable {
        let (shape, index) = (value.shape, self.index)
        return tape.record(Tensor(value.sum()), needsGradient: needsGradient) { g, tape in
            tape.accumulate(index, Tensor(shape: shape, repeating: g.scalars[0]))
        }
    }

    /// The mean of all elements (a scalar).
    public func mean() -> Variable {
        let (shape, index) = (value.shape, self.index)
        let count = Float(value.count)
        return tape.record(Tensor(value.mean()), needsGradient: needsGradient) { g, tape in
            tape.accumulate(index, Tensor(shape: shape, repeating: g.scalars[0] / count))
        }
    }

    /// Sums over the last dimension: `[…, width]` → `[…]`.
    public func sumLast() -> Variable {
        let (shape, index) = (value.shape, self.index)
        return tape.record(value.sumLast(), needsGradient: needsGradient) { g, tape in
            tape.accumulate(index, Tensor(shape: shape, repeating: 0) + g.reshaped(g.shape + [1]))
        }
    }

    /// Means over the last dimension: `[…, width]` → `[…]`.
    public func meanLast() -> Variable { sumLast() * (1 / Float(Swift.max(1, shape.last ?? 1))) }

    /// Sums over the first dimension of a `[rows, columns]` value: `[columns]`.
    public func sumRows() -> Variable {
        let (shape, index) = (value.shape, self.index)
        return tape.record(value.sumRows(), needsGradient: needsGradient) { g, tape in
            tape.accumulate(index, Tensor(shape: shape, repeating: 0) + g)
        }
    }

    /// Softmax over the last dimension.
    public func softmax() -> Variable {
        let y = value.softmax()
        let (width, index) = (y.shape[y.rank - 1], self.index)
        return tape.record(y, needsGradient: needsGradient) { g, tape in
            tape.accumulate(index) { out, beta in
                g.withPointer { gp in
                    y.withPointer { yp in
                        if beta == 0 {
                            shoal_softmax_backward_rows(yp, gp, out, y.count / width, width, 1)
                        } else {
                            let part = Tensor(shape: y.shape) {
                                shoal_softmax_backward_rows(yp, gp, $0, y.count / width, width, 1)
                            }
                            part.withPointer { shoal_add(out, $0, out, y.count) }
                        }
                    }
                }
            }
        }
    }

    /// Log-softmax over the last dimension.
    public func logSoftmax() -> Variable {
        let y = value.logSoftmax()
        let (width, index) = (y.shape[y.rank - 1], self.index)
        return tape.record(y, needsGradient: needsGradient) { g, tape in
            let part = Tensor(shape: y.shape) { out in
                g.withPointer { gp in y.withPointer { shoal_log_softmax_backward_rows($0, gp, out, y.count / width, width) } }
            }
            tape.accumulate(index, part)
        }
    }

    /// One element of each row of the last dimension: `[…, width]` → `[…]`, element
    /// `indices[row]` of row `row` (the log-probability of a chosen action, the value of a
    /// taken action).
    public func gather(_ indices: [Int]) -> Variable {
        let width = shape.last ?? 0
        let rows = width == 0 ? 0 : value.count / width
        precondition(indices.count == rows, "gather: \(indices.count) indices for \(rows) rows of \(shape)")
        precondition(indices.allSatisfy { (0..<width).contains($0) }, "gather: an index outside 0..<\(width)")
        let (fullShape, index) = (value.shape, self.index)
        let out = value.withPointer { x in
            Tensor(shape: Array(fullShape.dropLast()), scalars: indices.enumerated().map { x[$0.offset * width + $0.element] })
        }
        return tape.record(out, needsGradient: needsGradient) { g, tape in
            var gradient = Tensor(shape: fullShape)
            for (row, column) in indices.enumerated() { gradient.scalars[row * width + column] = g.scalars[row] }
            tape.accumulate(index, gradient)
        }
    }

    /// The mean over the middle dimension: `[batch, n, width]` → `[batch, width]` (a dueling
    /// head's mean advantage over actions).
    public func meanMiddle() -> Variable {
        precondition(shape.count == 3 && shape[1] > 0, "meanMiddle takes [batch, n, width], not \(shape)")
        let (batch, slices, width) = (shape[0], shape[1], shape[2])
        let scale = 1 / Float(slices)
        let out = Tensor(shape: [batch, width]) { out in
            value.withPointer { x in
                for b in 0..<batch {
                    let row = out + b * width
                    row.initialize(repeating: 0, count: width)
                    for slice in 0..<slices { shoal_axpy(scale, x + (b * slices + slice) * width, row, width) }
                }
            }
        }
        let (fullShape, index) = (value.shape, self.index)
        return tape.record(out, needsGradient: needsGradient) { g, tape in
            let gradient = Tensor(shape: fullShape) { dx in
                g.withPointer { gp in
                    for b in 0..<batch {
                        for slice in 0..<slices { shoal_affine(gp + b * width, scale, 0, dx + (b * slices + slice) * width, width) }
                    }
                }
            }
            tape.accumulate(index, gradient)
        }
    }

    /// One slice along the middle dimension per batch item: `[batch, n, width]` → `[batch,
    /// width]`, slice `indices[b]` of item b (the return distribution of a taken action).
    public func selecting(_ indices: [Int]) -> Variable {
        precondition(shape.count == 3 && indices.count == shape[0], "selecting: \(indices.count) indices for \(shape)")
        let (batch, slices, width) = (shape[0], shape[1], shape[2])
        precondition(indices.allSatisfy { (0..<slices).contains($0) }, "selecting: an index outside 0..<\(slices)")
        let out = Tensor(shape: [batch, width]) { out in
            value.withPointer { x in
                for (b, slice) in indices.enumerated() { (out + b * width).update(from: x + (b * slices + slice) * width, count: width) }
            }
        }
        let (fullShape, index) = (value.shape, self.index)
        return tape.record(out, needsGradient: needsGradient) { g, tape in
            var gradient = Tensor(shape: fullShape)
            gradient.withMutablePointer { dx in
                g.withPointer { gp in
                    for (b, slice) in indices.enumerated() { (dx + (b * slices + slice) * width).update(from: gp + b * width, count: width) }
                }
            }
            tape.accumulate(index, gradient)
        }
    }

    // MARK: losses

    /// Mean squared error against a target (a scalar).
    public func meanSquaredError(_ target: Tensor) -> Variable {
        precondition(target.count == value.count, "meanSquaredError: target \(target.shape) for \(shape)")
        let difference = value - target.reshaped(shape)
        let count = Float(value.count)
        let loss = difference.withPointer { Float(shoal_dot($0, $0, difference.count)) } / count
        let index = self.index
        return tape.record(Tensor(loss), needsGradient: needsGradient) { g, tape in
            tape.accumulate(index, difference * (2 * g.scalars[0] / count))
        }
    }

    /// Mean Huber loss against a target (PyTorch's `HuberLoss`, `delta` 1 being `SmoothL1Loss`):
    /// ½d² where |d| ≤ delta, delta · (|d| − ½delta) beyond.
    public func huberLoss(_ target: Tensor, delta: Float = 1) -> Variable {
        precondition(target.count == value.count, "huberLoss: target \(target.shape) for \(shape)")
        precondition(delta > 0, "huberLoss: delta must be positive")
        let difference = value - target.reshaped(shape)
        let count = Float(value.count)
        let total = difference.scalars.reduce(Double(0)) { sum, d in
            let size = Swift.abs(d)
            return sum + Double(size <= delta ? 0.5 * d * d : delta * (size - 0.5 * delta))
        }
        let index = self.index
        return tape.record(Tensor(Float(total) / count), needsGradient: needsGradient) { g, tape in
            let scale = g.scalars[0] / count
            tape.accumulate(index, difference.map { Swift.min(Swift.max($0, -delta), delta) * scale })
        }
    }

    /// Mean cross-entropy of `[batch, classes]` logits against class indices (a scalar),
    /// through a stable log-softmax.
    public func crossEntropy(labels: [Int]) -> Variable {
        let x = value
        precondition(x.rank == 2 && x.shape[0] == labels.count, "crossEntropy: logits \(x.shape) for \(labels.count) labels")
        let classes = x.shape[1]
        let logProbabilities = x.logSoftmax()
        var loss: Double = 0
        for (row, label) in labels.enumerated() {
            precondition((0..<classes).contains(label), "label \(label) is not a class of \(classes)")
            loss -= Double(logProbabilities.scalars[row * classes + label])
        }
        let batch = Float(labels.count)
        let index = self.index
        return tape.record(Tensor(Float(loss) / Float(batch)), needsGradient: needsGradient) { g, tape in
            var gradient = logProbabilities.exp()
            for (row, label) in labels.enumerated() { gradient.scalars[row * classes + label] -= 1 }
            tape.accumulate(index, gradient * (g.scalars[0] / batch))
        }
    }
}
