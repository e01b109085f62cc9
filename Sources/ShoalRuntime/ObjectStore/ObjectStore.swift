import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One node's object store: large objects as files in shared memory (`/dev/shm`), which every
/// process on the node maps without a copy, under a capacity; least recently used objects are
/// spilled to disk when it is full and restored when read again.
///
/// Only the node daemon changes it; readers find objects through it.
struct ObjectStore {
    struct Entry {
        var size: UInt64
        var jobID: String
        var sealed = false
        var spilled = false
        var lastUse: UInt64 = 0
    }

    let memoryDirectory: String
    let spillDirectory: String
    let capacity: UInt64
    private(set) var entries: [String: Entry] = [:]
    /// Bytes held in shared memory.
    private(set) var used: UInt64 = 0
    private(set) var spilledBytes: UInt64 = 0
    private(set) var spills = 0
    private(set) var restores = 0
    private var clock: UInt64 = 0
    /// Files of freed objects kept for reuse by the same job: a new object of the same size takes
    /// one over with its pages already allocated, instead of faulting in and zeroing fresh ones.
    private var recycled: [(path: String, size: UInt64, jobID: String)] = []
    private var recycledBytes: UInt64 = 0
    private var nextRecycled = 0

    init(memoryDirectory: String, spillDirectory: String, capacity: UInt64) throws {
        self.memoryDirectory = memoryDirectory
        self.spillDirectory = spillDirectory
        self.capacity = capacity
        Self.removeAbandonedStores()
        for directory in [memoryDirectory, spillDirectory] {
            try? FileManager.default.removeItem(atPath: directory)
            // 0700: objects are the jobs' data, for this user's processes only.
            try Session.makePrivate(directory)
        }
    }

    /// Removes the shared-memory folders of node daemons that died without cleaning up
    /// (`/dev/shm/shoal-<node>-<pid>` whose pid is gone), so a crash does not hold memory for ever.
    static func removeAbandonedStores(in directory: String = "/dev/shm") {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("shoal-") {
            guard let pid = name.split(separator: "-").last.flatMap({ Int32($0) }), pid > 0, !ChildProcess.isAlive(pid) else {
                continue
            }
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// Keys come from other processes: letters, digits and `-_.:` only, so no key names a path.
    static func validate(_ key: String) throws {
        let allowed = key.utf8.allSatisfy { byte in
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45 || byte == 95
                || byte == 58 || byte == 46
        }
        guard allowed, !key.isEmpty, key.utf8.count <= 200, !key.hasPrefix(".") else {
            throw ClusterError.invalidArgument("'\(key.prefix(60))' is not a valid object key")
        }
    }

    func memoryPath(_ key: String) -> String { memoryDirectory + "/" + key }
    func spillPath(_ key: String) -> String { spillDirectory + "/" + key }

    func contains(_ key: String) -> Bool { entries[key] != nil }
    func isSealed(_ key: String) -> Bool { entries[key]?.sealed == true }

    /// Reserves room for an object and creates its file.
    /// - Returns: the file's path, to be written and then sealed.
    mutating func create(_ key: String, size: UInt64, jobID: String) throws -> String {
        try Self.validate(key)
        guard entries[key] == nil else { throw ClusterError.invalidArgument("object \(key) already exists") }
        guard size <= capacity else {
            throw ClusterError.invalidArgument("an object of \(size) bytes is larger than the object store (\(capacity) bytes)")
        }
        let path = memoryPath(key)
        if let index = recycled.firstIndex(where: { $0.size == size && $0.jobID == jobID }) {
            let file = recycled.remove(at: index)
            recycledBytes -= file.size
            used -= file.size
            if rename(file.path, path) == 0 {
                try makeRoom(for: size)
                clock += 1
                entries[key] = Entry(size: size, jobID: jobID, lastUse: clock)
                used += size
                return path
            }
            unlink(file.path)
        }
        try makeRoom(for: size)
        let descriptor = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ClusterError.peerError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard ftruncate(descriptor, off_t(size)) == 0 else {
            unlink(path)
            throw ClusterError.peerError("cannot size \(path) to \(size) bytes: \(String(cString: strerror(errno)))")
        }
        clock += 1
        entries[key] = Entry(size: size, jobID: jobID, lastUse: clock)
        used += size
        return path
    }

    mutating func seal(_ key: String) {
        entries[key]?.sealed = true
    }

    /// The path to map a sealed object from, restoring it from disk first if it was spilled.
    mutating func locate(_ key: String) throws -> String? {
        guard var entry = entries[key], entry.sealed else { return nil }
        if entry.spilled {
            try makeRoom(for: entry.size, sparing: key)
            try Self.copy(from: spillPath(key), to: memoryPath(key))
            unlink(spillPath(key))
            entry.spilled = false
            used += entry.size
            spilledBytes -= entry.size
            restores += 1
        }
        clock += 1
        entry.lastUse = clock
        entries[key] = entry
        return memoryPath(key)
    }

    /// Where the object's bytes are now, in memory or on disk, without restoring it.
    func currentPath(_ key: String) -> String? {
        guard let entry = entries[key], entry.sealed else { return nil }
        return entry.spilled ? spillPath(key) : memoryPath(key)
    }

    mutating func free(_ key: String) {
        guard let entry = entries.removeValue(forKey: key) else { return }
        if entry.spilled {
            unlink(spillPath(key))
            spilledBytes -= entry.size
        } else if entry.sealed && entry.size >= 1 << 20 && recycledBytes + entry.size <= capacity / 4 {
            let path = memoryDirectory + "/.recycled-\(nextRecycled)"
            nextRecycled += 1
            if rename(memoryPath(key), path) == 0 {
                recycled.append((path, entry.size, entry.jobID))
                recycledBytes += entry.size
            } else {
                unlink(memoryPath(key))
                used -= entry.size
            }
        } else {
            unlink(memoryPath(key))
            used -= entry.size
        }
    }

    /// Drops kept files until `size` more bytes fit, or none are left.
    private mutating func dropRecycled(toFit size: UInt64) {
        while used + size > capacity, !recycled.isEmpty {
            let file = recycled.removeFirst()
            unlink(file.path)
            recycledBytes -= file.size
            used -= file.size
        }
    }

    mutating func free(jobID: String) {
        for (key, entry) in entries where entry.jobID == jobID { free(key) }
        for file in recycled where file.jobID == jobID {
            unlink(file.path)
            recycledBytes -= file.size
            used -= file.size
        }
        recycled.removeAll { $0.jobID == jobID }
    }

    mutating func removeAll() {
        for key in Array(entries.keys) { free(key) }
        dropRecycled(toFit: .max / 2)
        try? FileManager.default.removeItem(atPath: memoryDirectory)
        try? FileManager.default.removeItem(atPath: spillDirectory)
    }

    /// Spills least recently used sealed objects until `size` more bytes fit. Processes that
    /// mapped a spilled object keep their mapping: unlinking a file leaves mappings intact.
    private mutating func makeRoom(for size: UInt64, sparing spared: String? = nil) throws {
        dropRecycled(toFit: size)
        guard used + size > capacity else { return }
        let candidates = entries.filter { $0.value.sealed && !$0.value.spilled && $0.key != spared }
            .sorted { $0.value.lastUse < $1.value.lastUse }
        for (key, entry) in candidates where used + size > capacity {
            try Self.copy(from: memoryPath(key), to: spillPath(key))
            unlink(memoryPath(key))
            entries[key]?.spilled = true
            used -= entry.size
            spilledBytes += entry.size
            spills += 1
        }
        guard used + size <= capacity else {
            throw ClusterError.peerError("the object store is full (\(used) of \(capacity) bytes in objects still being written)")
        }
    }

    /// Copies a file in 8 MiB pieces.
    static func copy(from source: String, to target: String) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw ClusterError.peerError("cannot open \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = open(target, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw ClusterError.peerError("cannot create \(target): \(String(cString: strerror(errno)))") }
        defer { close(output) }
        let chunk = 8 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let count = read(input, buffer, chunk)
            if count == 0 { return }
            guard count > 0 else { throw ClusterError.peerError("reading \(source): \(String(cString: strerror(errno)))") }
            var written = 0
            while written < count {
                let result = write(output, buffer + written, count - written)
                guard result > 0 else { throw ClusterError.peerError("writing \(target): \(String(cString: strerror(errno)))") }
                written += result
            }
        }
    }
}
