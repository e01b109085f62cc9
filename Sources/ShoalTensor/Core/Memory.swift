import CShoalKernels

/// How tensor memory is allocated.
///
/// glibc's malloc serves large blocks with fresh `mmap`s and hands them back on `free`, so a
/// training loop that allocates the same activations every step pays for zeroed pages every
/// step (a third of a training step's time, measured). ShoalTensor raises the thresholds once,
/// before its first tape, so freed blocks are kept and reused: the process keeps its peak.
enum Memory {
    static let configured: Void = { shoal_keep_freed_memory() }()
}
