import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Whole-file reads and writes with plain system calls (Foundation's writer syncs every file
/// to disk, which costs milliseconds a file here).
enum Files {
    /// A file operation that failed, with the path and the system's reason.
    struct Failure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The most one `write` call is given. The kernel sizes a new file's page-cache folios by
    /// the write: one 2 MB call takes a 2 MB folio, and on a VM whose host takes back freed
    /// memory (free page reporting) those high-order blocks are the ones it took back, so the
    /// copy stalls on the host. A new 2 MB file written whole took 7.8 ms here, in 256 KiB
    /// calls 1.3 ms (median of 150 each, interleaved).
    static let writePiece = 256 << 10

    /// Writes `bytes` into a new file at `path` (it must not exist).
    static func create(_ bytes: [UInt8], at path: String, mode: mode_t = 0o644) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let written = write(descriptor, raw.baseAddress! + done, min(raw.count - done, writePiece))
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else {
                    let reason = String(cString: strerror(errno))
                    unlink(path)
                    throw Failure(message: "cannot write \(path): \(reason)")
                }
                done += written
            }
        }
    }

    /// Writes `bytes` to a temporary file beside `path` and renames it into place, so that
    /// readers see the old file or the whole new one.
    static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o644) throws {
        let temporary = path + ".partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try create(bytes, at: temporary, mode: mode)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Failure(message: "cannot move \(temporary) to \(path): \(reason)")
        }
    }

    /// The whole file, or nil when it cannot be read.
    /// - Parameter each: given each piece (at most `chunk` bytes) as soon as it is read, while it
    ///   is still in cache (to hash the file as it is read).
    static func read(_ path: String, chunk: Int = .max, each: (UnsafeRawBufferPointer) -> Void = { _ in }) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        let size = Int(info.st_size)
        var complete = true
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var done = 0
            while done < size {
                let got = Glibc.read(descriptor, buffer.baseAddress! + done, min(chunk, size - done))
                if got < 0 && errno == EINTR { continue }
                guard got > 0 else { break }
                each(UnsafeRawBufferPointer(start: buffer.baseAddress! + done, count: got))
                done += got
            }
            complete = done == size
            count = done
        }
        return complete ? bytes : nil
    }
}
