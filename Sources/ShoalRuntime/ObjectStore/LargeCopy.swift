import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Copies of large objects between arrays and the store's shared memory, spread over the
/// machine's cores.
///
/// Why: one core's copy stops well short of the memory system's bandwidth (on the 2-vCPU
/// development VM one thread copies 100 MiB at about 9 GB/s, two at about 14), and a get into a
/// new array also waits for the kernel to zero its pages, which two threads do side by side too.
/// The copy goes in 8 MiB pieces that whichever thread is free takes next, so a core busy with
/// other work slows the copy by its share only: the calling thread copies every piece no other
/// thread took. Small copies stay on the calling thread: below `parallelThreshold` the hand-off
/// costs more than it saves.
public enum LargeCopy {
    public static let parallelThreshold = 16 << 20
    /// A multiple of the 2 MiB huge page, so that where the target is aligned to one no two threads
    /// fault the same page (elsewhere neighbouring pieces share their edge pages).
    private static let piece = 8 << 20
    private static let parallel = ProcessInfo.processInfo.activeProcessorCount > 1

    /// Copies `source` into `target`, which must be at least as long.
    public static func copy(_ source: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer) {
        precondition(target.count >= source.count, "a copy target shorter than its source")
        let count = source.count
        guard count >= parallelThreshold, parallel, let from = source.baseAddress, let to = target.baseAddress else {
            if count > 0, let from = source.baseAddress, let to = target.baseAddress { memcpy(to, from, count) }
            return
        }
        // Addresses as integers: the pointers are not `Sendable`, and every piece is its own range.
        let fromAddress = Int(bitPattern: from)
        let toAddress = Int(bitPattern: to)
        DispatchQueue.concurrentPerform(iterations: (count + piece - 1) / piece) { index in
            let start = index * piece
            let length = min(piece, count - start)
            guard let into = UnsafeMutableRawPointer(bitPattern: toAddress + start),
                let out = UnsafeRawPointer(bitPattern: fromAddress + start)
            else { return }
            memcpy(into, out, length)
        }
    }
}

extension LargeCopy {
    /// A new array holding `source`'s elements: its pages asked for as huge pages, the copy
    /// spread over the cores. What a get of a stored array costs beyond the mapping.
    public static func array<Element: BitwiseCopyable>(copying source: UnsafeBufferPointer<Element>) -> [Element] {
        Array(unsafeUninitializedCapacity: source.count) { target, initialized in
            let bytes = UnsafeMutableRawBufferPointer(target)
            adviseHugePages(bytes)
            copy(UnsafeRawBufferPointer(source), into: bytes)
            initialized = source.count
        }
    }
}

/// Asks the kernel to back the 2 MiB-aligned part of a large, freshly allocated buffer with huge
/// pages, so that filling it takes one fault per 2 MiB instead of one per 4 KiB page (a 100 MiB
/// copy into new memory: 45 ms with small pages, 11 ms with huge ones, on the development VM).
/// Advice only: where the kernel has transparent huge pages off, nothing changes.
func adviseHugePages(_ buffer: UnsafeMutableRawBufferPointer) {
    let huge = 2 << 20
    guard let start = buffer.baseAddress, buffer.count >= 4 * huge else { return }
    let first = (Int(bitPattern: start) + huge - 1) & ~(huge - 1)
    let end = (Int(bitPattern: start) + buffer.count) & ~(huge - 1)
    guard end > first, let aligned = UnsafeMutableRawPointer(bitPattern: first) else { return }
    _ = madvise(aligned, end - first, MADV_HUGEPAGE)
}
