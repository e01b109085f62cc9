import CShoalKernels

/// How tensor memory is allocated.
///
/// glibc's malloc serves large blocks with fresh `mmap`s, or from per-thread arenas whose heaps
/// are unmapped when empty, so a training loop that allocates the same activations every step
/// pays for zeroed pages every step (a third of a training step's time, measured). The C
/// kernels' library therefore sets malloc up when the program loads, before any thread starts:
/// one arena, and freed blocks kept for reuse, so the process keeps its peak instead
/// (`SHOAL_MALLOC=default` leaves malloc as it is). `configured` repeats the thresholds for a
/// program that loaded the library some other way.
enum Memory {
    static let configured: Void = { shoal_keep_freed_memory() }()
}
