import CShoalKernels

extension Variable {
    /// The same values under another shape.
    public func reshaped(_ newShape: [Int]) -> Variable {
        let (original, index) = (shape, self.index)
        return tape.record(value.reshaped(newShape), needsGradient: needsGradient) { g, tape in
            tape.accumulate(index, g.reshaped(original))
        }
    }

    /// Columns `range` of the last dimension.
    public func sliceLast(_ range: Range<Int>) -> Variable {
        let x = value
        let width = x.shape[x.rank - 1]
        precondition(range.lowerBound >= 0 && range.upperBound <= width, "sliceLast: \(range) outside 0..<\(width)")
        let rows = width == 0 ? 0 : x.count / width
        var newShape = x.shape
        newShape[newShape.count - 1] = range.count
        let result = Tensor(shape: newShape) { out in
            x.withPointer { input in
                for row in 0..<rows {
                    (out + row * range.count).update(from: input + row * width + range.lowerBound, count: range.count)
                }
            }
        }
        let index = self.index
        return tape.record(result, needsGradient: needsGradient) { g, tape in
            tape.accumulate(index) { gradient, beta in
                g.withPointer { upstream in
                    for row in 0..<rows {
                        let target = gradient + row * width
                        if beta == 0 {
                            target.initialize(repeating: 0, count: width)
                            (target + range.lowerBound).update(from: upstream + row * range.count, count: range.count)
                        } else {
                            shoal_add(
                                target + range.lowerBound, upstream + row * range.count, target + range.lowerBound, range.count)
                        }
                    }
                }
            }
        }
    }

    /// Step `t` of a `[batch, time, features]` sequence: `[batch, features]`.
    public func timeStep(_ t: Int) -> Variable {
        precondition(shape.count == 3 && (0..<shape[1]).contains(t), "timeStep: \(t) of \(shape)")
        let (batch, steps, features) = (shape[0], shape[1], shape[2])
        return reshaped([batch, steps * features]).sliceLast(t * features..<(t + 1) * features)
    }

    /// `[batch, features]` steps stacked into `[batch, time, features]`.
    public static func stackTime(_ steps: [Variable]) -> Variable {
        precondition(!steps.isEmpty, "stackTime needs at least one step")
        let shape = steps[0].shape
        return concatenate(steps.map { $0.reshaped([shape[0], 1, shape[1]]) }, axis: 1)
    }

    public func permuted(_ order: [Int]) -> Variable {
        var inverse = [Int](repeating: 0, count: order.count)
        for (position, axis) in order.enumerated() { inverse[axis] = position }
        let index = self.index
        return tape.record(value.permuted(order), needsGradient: needsGradient) { g, tape in
            tape.accumulate(index, g.permuted(inverse))
        }
    }

    /// Swaps the last two dimensions.
    public func transposingLastTwo() -> Variable {
        let index = self.index
        return tape.record(value.transposingLastTwo(), needsGradient: needsGradient) { g, tape in
            tape.accumulate(index, g.transposingLastTwo())
        }
    }

    /// Joins variables along `axis` (all other dimensions equal).
    public static func concatenate(_ parts: [Variable], axis: Int) -> Variable {
        let result = Tensor.concatenate(parts.map(\.value), axis: axis)
        let shapes = parts.map(\.shape)
        let indices = parts.map(\.index)
        let outer = shapes[0][..<axis].reduce(1, *)
        let inner = shapes[0][(axis + 1)...].reduce(1, *)
        let total = result.shape[axis]
        return parts[0].tape.record(result, needsGradient: indices.contains { $0 >= 0 }) { g, tape in
            var offset = 0
            for (shape, index) in zip(shapes, indices) {
                let size = shape[axis] * inner
                defer { offset += size }
                guard index >= 0 else { continue }
                let piece = Tensor(shape: shape) { out in
                    g.withPointer { x in
                        for o in 0..<outer { (out + o * size).update(from: x + o * total * inner + offset, count: size) }
                    }
                }
                tape.accumulate(index, piece)
            }
        }
    }
}
