import CShoalKernels
import Foundation

/// Gradient clipping by global norm (PyTorch's `clip_grad_norm_`): when the gradients' joint
/// L2 norm passes `maxNorm`, all are scaled by maxNorm / (norm + 1e-6).
/// - Returns: the norm before clipping.
@discardableResult
public func clipGradients(_ gradients: inout [Tensor], maxNorm: Float) -> Float {
    let squares = gradients.reduce(Double(0)) { total, gradient in
        total + gradient.withPointer { shoal_dot($0, $0, gradient.count) }
    }
    let norm = Float(squares.squareRoot())
    if norm > maxNorm {
        let scale = maxNorm / (norm + 1e-6)
        for index in gradients.indices { gradients[index] = gradients[index] * scale }
    }
    return norm
}

/// Gradient clipping by global norm over gradients laid end to end in one buffer (see
/// `clipGradients(_:maxNorm:)`); the norm is summed in double precision.
/// - Returns: the norm before clipping.
@discardableResult
public func clipGradients(flat gradients: UnsafeMutableBufferPointer<Float>, maxNorm: Float) -> Float {
    guard let base = gradients.baseAddress else { return 0 }
    let norm = Float(shoal_dot(base, base, gradients.count).squareRoot())
    if norm > maxNorm {
        let scale = maxNorm / (norm + 1e-6)
        for index in gradients.indices { gradients[index] *= scale }
    }
    return norm
}
