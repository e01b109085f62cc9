import COpenBLAS
import CShoalKernels

/// Row-major matrix products through `cblas_sgemm`, on pointers with leading dimensions, so
/// that views into wider buffers (one head of a packed projection, one time step of a batch)
/// multiply without being copied out first.
enum GEMM {
    /// `C = alpha · op(A) · op(B) + beta · C`, `op(A)` `m × k`, `op(B)` `k × n`, `C` `m × n`.
    /// With `beta` 0, C's previous contents are not read (they may be uninitialised).
    @inline(__always)
    static func multiply(
        _ a: UnsafePointer<Float>, _ lda: Int, transposeA: Bool = false,
        _ b: UnsafePointer<Float>, _ ldb: Int, transposeB: Bool = false,
        into c: UnsafeMutablePointer<Float>, _ ldc: Int,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            // An empty sum: C = beta · C.
            for row in 0..<m {
                if beta == 0 {
                    (c + row * ldc).initialize(repeating: 0, count: n)
                } else {
                    shoal_affine(c + row * ldc, beta, 0, c + row * ldc, n)
                }
            }
            return
        }
        // A single row or column: a matrix-vector product, which OpenBLAS does without packing.
        if m == 1 {
            // Cᵀ = op(B)ᵀ · aᵀ, a's elements `transposeA ? lda : 1` apart.
            cblas_sgemv(
                CblasRowMajor, transposeB ? CblasNoTrans : CblasTrans, Int32(transposeB ? n : k), Int32(transposeB ? k : n),
                alpha, b, Int32(ldb), a, Int32(transposeA ? lda : 1), beta, c, 1)
            return
        }
        if n == 1 {
            // C = op(A) · b, b's elements `transposeB ? 1 : ldb` apart, C's `ldc` apart.
            cblas_sgemv(
                CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, Int32(transposeA ? k : m), Int32(transposeA ? m : k),
                alpha, a, Int32(lda), b, Int32(transposeB ? 1 : ldb), beta, c, Int32(ldc))
            return
        }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension Tensor {
    /// The matrix product of two rank-2 tensors (optionally transposed), through `cblas_sgemm`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul takes rank-2 tensors, not \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        precondition(k == kb, "matmul: inner sizes \(k) and \(kb) differ (\(a.shape) × \(b.shape))")
        return Tensor(shape: [m, n]) { out in
            a.withPointer { x in
                b.withPointer { y in
                    GEMM.multiply(
                        x, a.shape[1], transposeA: transposeA, y, b.shape[1], transposeB: transposeB, into: out, n,
                        m: m, n: n, k: k)
                }
            }
        }
    }

    /// Products of matching matrices: `[n, m, k] × [n, k, p]` (either transposed) → `[n, m, p]`.
    public static func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0], "batchedMatmul: \(a.shape) × \(b.shape)")
        let batch = a.shape[0]
        let m = transposeA ? a.shape[2] : a.shape[1]
        let k = transposeA ? a.shape[1] : a.shape[2]
        let p = transposeB ? b.shape[1] : b.shape[2]
        precondition(k == (transposeB ? b.shape[2] : b.shape[1]), "batchedMatmul: inner sizes differ in \(a.shape) × \(b.shape)")
        let (aSize, bSize) = (a.shape[1] * a.shape[2], b.shape[1] * b.shape[2])
        return Tensor(shape: [batch, m, p]) { out in
            a.withPointer { x in
                b.withPointer { y in
                    for item in 0..<batch {
                        GEMM.multiply(
                            x + item * aSize, a.shape[2], transposeA: transposeA, y + item * bSize, b.shape[2],
                            transposeB: transposeB, into: out + item * m * p, p, m: m, n: p, k: k)
                    }
                }
            }
        }
    }

    /// A rank-2 tensor's transpose.
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() takes a rank-2 tensor")
        return transposingLastTwo()
    }

    /// Swaps the last two dimensions (`[…, a, b]` → `[…, b, a]`), e.g. channels-first to time-major.
    public func transposingLastTwo() -> Tensor {
        precondition(rank >= 2, "transposingLastTwo needs rank ≥ 2")
        let (a, b) = (shape[rank - 2], shape[rank - 1])
        var newShape = shape
        newShape.swapAt(rank - 2, rank - 1)
        let block = a * b
        return Tensor(shape: newShape) { out in
            withPointer { x in
                guard block > 0 else { return }
                for start in stride(from: 0, to: count, by: block) {
                    Self.transpose(x + start, rows: a, columns: b, into: out + start)
                }
            }
        }
    }

    /// `out[j, i] = x[i, j]` for a `rows × columns` block, in tiles that stay in cache.
    static func transpose(_ x: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
        let tile = 32
        for rowStart in stride(from: 0, to: rows, by: tile) {
            for columnStart in stride(from: 0, to: columns, by: tile) {
                for i in rowStart..<Swift.min(rowStart + tile, rows) {
                    for j in columnStart..<Swift.min(columnStart + tile, columns) { out[j * rows + i] = x[i * columns + j] }
                }
            }
        }
    }

    /// The dimensions reordered: result dimension i is this tensor's dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permuted: \(order) is not a permutation of 0..<\(rank)")
        let newShape = order.map { shape[$0] }
        var strides = [Int](repeating: 1, count: rank)
        for axis in stride(from: rank - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        let sourceStrides = order.map { strides[$0] }
        return Tensor(shape: newShape) { out in
            withPointer { x in
                guard count > 0 else { return }
                // Copy runs along the last axis when it stays last, else one value at a time.
                let run = order.last == rank - 1 ? shape[rank - 1] : 1
                let outerRank = run > 1 ? rank - 1 : rank
                var index = [Int](repeating: 0, count: outerRank)
                for position in stride(from: 0, to: count, by: run) {
                    var source = 0
                    for axis in 0..<outerRank { source += index[axis] * sourceStrides[axis] }
                    if run > 1 { (out + position).update(from: x + source, count: run) } else { out[position] = x[source] }
                    var axis = outerRank - 1
                    while axis >= 0 {
                        index[axis] += 1
                        if index[axis] < newShape[axis] { break }
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
    }

    /// Tensors joined along `axis` (all other dimensions equal).
    public static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
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
        let total = shapes.reduce(0) { $0 + $1[axis] }
        var newShape = shapes[0]
        newShape[axis] = total
        return Tensor(shape: newShape) { out in
            var offset = 0
            for part in parts {
                let size = part.shape[axis] * inner
                part.withPointer { x in
                    for o in 0..<outer { (out + o * total * inner + offset).update(from: x + o * size, count: size) }
                }
                offset += size
            }
        }
    }
}
