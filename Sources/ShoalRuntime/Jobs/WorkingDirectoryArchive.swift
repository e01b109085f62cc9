import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A job's working directory packed into one deterministic archive, so that the same tree
/// always hashes to the same SHA-256 and is uploaded once.
///
/// Layout: the magic `SHOALWD1`, then per entry (sorted by path): kind (1 byte: 0 file,
/// 1 folder, 2 symbolic link), mode (UInt32), path length (UInt32) and path, content length
/// (UInt64) and content (a file's bytes, a link's target). Little-endian. Times and owners are
/// left out on purpose.
public struct WorkingDirectoryArchive: Sendable {
    /// The folders never packed: build outputs and version control.
    public static let excludedNames: Set<String> = [".build", ".git", ".swiftpm"]
    /// The largest archive accepted by default (Ray's working_dir limit is of the same order).
    public static let defaultMaxSize: UInt64 = 512 << 20

    static let magic: [UInt8] = Array("SHOALWD1".utf8)

    enum Kind: UInt8 {
        case file = 0
        case folder = 1
        case link = 2
    }

    /// The archive's bytes.
    public let bytes: [UInt8]
    /// Their SHA-256, lowercase hex.
    public let sha256: String
    /// Files packed.
    public let fileCount: Int

    /// Packs the folder at `path`, leaving out `excludedNames` at any depth.
    /// - Throws: `ClusterError.invalidArgument` when the folder is missing, or when its files
    ///   add up to more than `maxSize` bytes: the message names the biggest entries.
    public static func pack(directory path: String, maxSize: UInt64 = defaultMaxSize) throws -> WorkingDirectoryArchive {
        let root = URL(fileURLWithPath: path).standardizedFileURL.path
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isFolder), isFolder.boolValue else {
            throw ClusterError.invalidArgument("working directory \(path) does not exist or is not a folder")
        }
        var entries: [(relative: String, kind: Kind, mode: UInt32, size: UInt64)] = []
        var sizes: [String: UInt64] = [:]
        var total: UInt64 = 0
        try walk(root: root, relative: "", into: &entries)
        for entry in entries where entry.kind == .file {
            total += entry.size
            let top = String(entry.relative.split(separator: "/").first ?? "")
            sizes[top, default: 0] += entry.size
        }
        guard total <= maxSize else {
            let biggest = sizes.sorted { $0.value > $1.value }.prefix(5)
                .map { "\($0.key) (\(formatBytes($0.value)))" }.joined(separator: ", ")
            throw ClusterError.invalidArgument(
                "working directory \(path) holds \(formatBytes(total)) of files after leaving out "
                    + "\(excludedNames.sorted().joined(separator: ", ")), over the limit of \(formatBytes(maxSize)); "
                    + "biggest entries: \(biggest). Leave large data out of the working directory "
                    + "(put it in the object store or on shared storage) or raise --max-working-dir-size.")
        }
        var bytes = magic
        bytes.reserveCapacity(Int(total) + entries.count * 64 + 8)
        var files = 0
        for entry in entries {
            let full = root + "/" + entry.relative
            let content: [UInt8]
            switch entry.kind {
            case .file:
                guard let data = FileManager.default.contents(atPath: full) else {
                    throw ClusterError.invalidArgument("cannot read \(full) in the working directory")
                }
                content = [UInt8](data)
                files += 1
            case .folder: content = []
            case .link:
                content = Array(((try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "").utf8)
            }
            bytes.append(entry.kind.rawValue)
            append(entry.mode, to: &bytes)
            let pathBytes = Array(entry.relative.utf8)
            append(UInt32(pathBytes.count), to: &bytes)
            bytes += pathBytes
            append(UInt64(content.count), to: &bytes)
            bytes += content
        }
        return WorkingDirectoryArchive(bytes: bytes, sha256: SHA256.hexDigest(of: bytes), fileCount: files)
    }

    private static func walk(
        root: String, relative: String, into entries: inout [(relative: String, kind: Kind, mode: UInt32, size: UInt64)]
    ) throws {
        let folder = relative.isEmpty ? root : root + "/" + relative
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        } catch {
            throw ClusterError.invalidArgument("cannot list \(folder) in the working directory: \(error.localizedDescription)")
        }
        for name in names where !excludedNames.contains(name) {
            let child = relative.isEmpty ? name : relative + "/" + name
            var info = stat()
            guard lstat(root + "/" + child, &info) == 0 else {
                throw ClusterError.invalidArgument("cannot read \(root)/\(child): \(String(cString: strerror(errno)))")
            }
            let mode = UInt32(info.st_mode) & 0o7777
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                entries.append((child, .folder, mode, 0))
                try walk(root: root, relative: child, into: &entries)
            case S_IFREG: entries.append((child, .file, mode, UInt64(info.st_size)))
            case S_IFLNK: entries.append((child, .link, mode, 0))
            default: continue  // sockets, fifos and devices do not travel
            }
        }
    }

    /// Unpacks `bytes` into `destination` (created; must not exist yet).
    /// - Throws: `ClusterError.invalidArgument` for a damaged archive, or one whose paths would
    ///   leave the destination (absolute paths, `..`, or writing through a link).
    public static func unpack(_ bytes: [UInt8], into destination: String) throws {
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw ClusterError.invalidArgument("the working directory archive does not start with SHOALWD1")
        }
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        var offset = magic.count
        var links: [(path: String, target: String)] = []
        var linkPaths: Set<String> = []
        func take(_ count: Int) throws -> ArraySlice<UInt8> {
            guard count >= 0, bytes.count - offset >= count else {
                throw ClusterError.invalidArgument("the working directory archive is truncated at byte \(offset)")
            }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }
        func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let slice = try take(MemoryLayout<T>.size)
            return slice.reversed().reduce(T(0)) { $0 << 8 | T($1) }
        }
        while offset < bytes.count {
            guard let kind = Kind(rawValue: try take(1).first ?? 255) else {
                throw ClusterError.invalidArgument(
                    "the working directory archive has an unknown entry kind at byte \(offset - 1)")
            }
            // Permissions only: set-user-id, set-group-id and sticky bits do not survive unpacking.
            let mode = try integer(UInt32.self) & 0o777
            let pathLength = try integer(UInt32.self)
            guard pathLength <= 4096, let path = String(validating: try take(Int(pathLength)), as: UTF8.self) else {
                throw ClusterError.invalidArgument("the working directory archive has a bad path at byte \(offset)")
            }
            let components = path.split(separator: "/", omittingEmptySubsequences: false)
            guard !path.isEmpty, !path.hasPrefix("/"), !components.contains(where: { $0.isEmpty || $0 == ".." || $0 == "." }),
                !path.utf8.contains(0)
            else {
                throw ClusterError.invalidArgument("the working directory archive holds an unsafe path '\(path)'")
            }
            for end in components.indices.dropLast() where linkPaths.contains(components[...end].joined(separator: "/")) {
                throw ClusterError.invalidArgument("the working directory archive writes '\(path)' through a link")
            }
            let length = try integer(UInt64.self)
            guard length <= UInt64(bytes.count - offset) else {
                throw ClusterError.invalidArgument("the working directory archive is truncated in '\(path)'")
            }
            let content = try take(Int(length))
            let full = destination + "/" + path
            switch kind {
            case .folder:
                try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
                chmod(full, mode_t(mode | 0o700))
            case .file:
                let descriptor = open(full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(mode | 0o600))
                guard descriptor >= 0 else {
                    throw ClusterError.invalidArgument("cannot write \(full): \(String(cString: strerror(errno)))")
                }
                defer { close(descriptor) }
                try content.withUnsafeBytes { raw in
                    var written = 0
                    while written < raw.count {
                        let result = write(descriptor, raw.baseAddress! + written, raw.count - written)
                        guard result > 0 else {
                            throw ClusterError.invalidArgument("cannot write \(full): \(String(cString: strerror(errno)))")
                        }
                        written += result
                    }
                }
            case .link:
                links.append((path, String(decoding: content, as: UTF8.self)))
                linkPaths.insert(path)
            }
        }
        // Links last, so that no file is ever written through one.
        for link in links {
            guard symlink(link.target, destination + "/" + link.path) == 0 else {
                throw ClusterError.invalidArgument("cannot create the link \(link.path): \(String(cString: strerror(errno)))")
            }
        }
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}

/// `1.5 MiB`-style sizes for messages.
func formatBytes(_ count: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(count)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
}
