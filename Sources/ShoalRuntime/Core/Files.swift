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

    /// Writes all of `bytes` at the descriptor's position, `writePiece` a call.
    /// - Returns: 0, or the errno that stopped it (EIO for a write that took nothing).
    static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> Int32 {
        var done = 0
        while done < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + done, min(bytes.count - done, writePiece))
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return written == 0 ? EIO : errno }
            done += written
        }
        return 0
    }

    /// Reads up to `count` bytes at `offset` into a new array (fewer at the end of the file).
    /// - Returns: the bytes, and 0 or the errno that stopped the read.
    static func read(_ descriptor: Int32, count: Int, at offset: Int) -> (bytes: [UInt8], error: Int32) {
        var error: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let got = pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if got < 0 && errno == EINTR { continue }
                if got < 0 { error = errno }
                guard got > 0 else { break }
                done += got
            }
            initialized = done
        }
        return (bytes, error)
    }

    /// Reads exactly `count` bytes at `offset` of the open file `path` (a source read in pieces).
    /// - Throws: `Failure` naming the file and the byte when it cannot, or the file ends first.
    static func read(_ descriptor: Int32, exactly count: Int, at offset: Int, of path: String) throws -> [UInt8] {
        let (bytes, error) = read(descriptor, count: count, at: offset)
        guard error == 0, bytes.count == count else {
            let reason = error != 0 ? String(cString: strerror(error)) : "the file ended early (did it change?)"
            throw Failure(message: "cannot read \(path) at byte \(offset): \(reason)")
        }
        return bytes
    }

    /// Throws when the open file `path` holds more than the `size` bytes read from it (it grew
    /// meanwhile, so what was read is not all of it).
    static func checkEnds(_ descriptor: Int32, at size: Int, of path: String) throws {
        guard read(descriptor, count: 1, at: size).bytes.isEmpty else {
            throw Failure(message: "\(path) grew while it was read; register it once it is complete")
        }
    }

    /// Writes `bytes` into a new file at `path` (it must not exist).
    static func create(_ bytes: [UInt8], at path: String, mode: mode_t = 0o644) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let failure = bytes.withUnsafeBytes { write($0, to: descriptor) }
        guard failure == 0 else {
            unlink(path)
            throw Failure(message: "cannot write \(path): \(String(cString: strerror(failure)))")
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
