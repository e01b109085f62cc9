import Foundation
import Testing

@testable import ShoalRuntime

struct WorkingDirectoryArchiveTests {
    func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "shoal-archive-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Set-user-id, set-group-id and sticky bits are packed (the archive is the tree) but not
    /// unpacked: a job's files never run with another user's rights.
    @Test func unpackingDropsSetIDBits() throws {
        let source = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: source) }
        try "#!/bin/sh".write(toFile: source + "/tool", atomically: true, encoding: .utf8)
        #expect(chmod(source + "/tool", 0o6755) == 0)
        try FileManager.default.createDirectory(atPath: source + "/shared", withIntermediateDirectories: true)
        #expect(chmod(source + "/shared", 0o1777) == 0)
        let archive = try WorkingDirectoryArchive.pack(directory: source)
        let target = try temporaryFolder() + "/out"
        defer { try? FileManager.default.removeItem(atPath: (target as NSString).deletingLastPathComponent) }
        try WorkingDirectoryArchive.unpack(archive.bytes, into: target)
        var info = stat()
        #expect(stat(target + "/tool", &info) == 0)
        #expect(info.st_mode & 0o7000 == 0 && info.st_mode & 0o100 != 0, "mode \(String(info.st_mode & 0o7777, radix: 8))")
        #expect(stat(target + "/shared", &info) == 0 && info.st_mode & 0o7000 == 0)
    }

    @Test func packingIsDeterministicAndUnpackingRestoresTheTree() throws {
        let source = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: source) }
        try FileManager.default.createDirectory(atPath: source + "/lib/deep", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: source + "/.git", withIntermediateDirectories: true)
        try "print".write(toFile: source + "/main.sh", atomically: true, encoding: .utf8)
        chmod(source + "/main.sh", 0o755)
        try Data([0, 1, 2, 255]).write(to: URL(fileURLWithPath: source + "/lib/deep/blob.bin"))
        try "secret".write(toFile: source + "/.git/config", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: source + "/link", withDestinationPath: "lib/deep/blob.bin")

        let first = try WorkingDirectoryArchive.pack(directory: source)
        let second = try WorkingDirectoryArchive.pack(directory: source)
        #expect(first.sha256 == second.sha256)
        #expect(first.fileCount == 2)

        let target = try temporaryFolder() + "/out"
        defer { try? FileManager.default.removeItem(atPath: (target as NSString).deletingLastPathComponent) }
        try WorkingDirectoryArchive.unpack(first.bytes, into: target)
        #expect(FileManager.default.contents(atPath: target + "/main.sh") == Data("print".utf8))
        #expect(FileManager.default.isExecutableFile(atPath: target + "/main.sh"))
        #expect(FileManager.default.contents(atPath: target + "/lib/deep/blob.bin") == Data([0, 1, 2, 255]))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/link") == "lib/deep/blob.bin")
        #expect(!FileManager.default.fileExists(atPath: target + "/.git"))

        // Changing one byte changes the hash.
        try Data([0, 1, 2, 254]).write(to: URL(fileURLWithPath: source + "/lib/deep/blob.bin"))
        #expect(try WorkingDirectoryArchive.pack(directory: source).sha256 != first.sha256)
    }

    /// An archive with one entry, built by hand.
    func archive(kind: UInt8, path: String, content: [UInt8]) -> [UInt8] {
        var bytes = Array("SHOALWD1".utf8) + [kind]
        withUnsafeBytes(of: UInt32(0o644).littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt32(path.utf8.count).littleEndian) { bytes += $0 }
        bytes += Array(path.utf8)
        withUnsafeBytes(of: UInt64(content.count).littleEndian) { bytes += $0 }
        return bytes + content
    }

    @Test func archivesThatWouldEscapeOrAreDamagedAreRefused() throws {
        let target = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: target) }
        for path in ["../escape", "/etc/passwd", "a/../../b", "a//b", "./x"] {
            #expect(throws: ClusterError.self) {
                try WorkingDirectoryArchive.unpack(
                    archive(kind: 0, path: path, content: [1]), into: target + "/t-\(path.hashValue)")
            }
        }
        var throughLink = archive(kind: 2, path: "out", content: Array("/tmp".utf8))
        throughLink += archive(kind: 0, path: "out/file", content: [1]).dropFirst(8)
        #expect(throws: ClusterError.self) { try WorkingDirectoryArchive.unpack(throughLink, into: target + "/link") }
        let whole = archive(kind: 0, path: "file", content: [1, 2, 3, 4])
        #expect(throws: ClusterError.self) { try WorkingDirectoryArchive.unpack(Array(whole.dropLast(2)), into: target + "/cut") }
        #expect(throws: ClusterError.self) { try WorkingDirectoryArchive.unpack(Array("garbage".utf8), into: target + "/junk") }
        #expect(throws: ClusterError.self) { try WorkingDirectoryArchive.pack(directory: target + "/missing") }
    }
}
