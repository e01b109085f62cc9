import Foundation
import Shoal
import ShoalTestSupport
import ShoalTransport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A frame announcing 2 GiB is dropped at its header (security issue, item 5): the peer is
/// disconnected before the head buffers its body, the head's memory does not grow, and it goes on.
@Suite(.serialized) struct FrameLimitTests {
    /// The head's resident memory in bytes, from /proc.
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return line.split(separator: " ").compactMap { Int($0) }.first.map { $0 * 1024 }
    }

    /// Connects to `target` over raw TCP and speaks ZMTP 3.0 (NULL mechanism): the greeting, a
    /// READY command, then a message frame whose long header announces 2 GiB, and its body a MiB
    /// at a time until the peer hangs up (or 300 MiB went). Returns the body bytes it took.
    static func sendTwoGigabyteFrame(to target: String) throws -> Int {
        let parts = target.dropFirst("tcp://".count).split(separator: ":")
        let port = try #require(UInt16(parts.last ?? ""))
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(descriptor >= 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr(String(parts.first ?? "127.0.0.1"))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        var greeting: [UInt8] = [0xFF] + [UInt8](repeating: 0, count: 8) + [0x7F, 3, 0]
        greeting += Array("NULL".utf8) + [UInt8](repeating: 0, count: 16) + [0] + [UInt8](repeating: 0, count: 31)
        let property = [UInt8(11)] + Array("Socket-Type".utf8) + [0, 0, 0, 6] + Array("DEALER".utf8)
        let ready = [UInt8(5)] + Array("READY".utf8) + property
        var stream = greeting + [0x04, UInt8(ready.count)] + ready
        stream += [0x02] + withUnsafeBytes(of: UInt64(2 << 30).bigEndian) { Array($0) }
        func sendAll(_ bytes: [UInt8]) -> Bool {
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return false }
                offset += sent
            }
            return true
        }
        #expect(sendAll(stream))
        let chunk = [UInt8](repeating: 0xAB, count: 1 << 20)
        var accepted = 0
        while accepted < 300 << 20, sendAll(chunk) { accepted += chunk.count }
        return accepted
    }

    @Test func aTwoGigabyteFrameIsDroppedAtItsHeader() async throws {
        let cluster = try await ClusterProcesses(cpus: 1)
        defer { cluster.stop() }
        let before = try #require(Self.residentBytes(cluster.head.pid))
        // The head's port and its node daemon's (in the same process).
        let targets = [cluster.address] + (try cluster.status()).nodes.map(\.address)
        #expect(targets.count >= 2)
        for target in targets {
            let accepted = try Self.sendTwoGigabyteFrame(to: target)
            #expect(accepted < 100 << 20, "\(target) took \(accepted >> 20) MiB of a frame it should have refused at its header")
        }
        let after = try #require(Self.residentBytes(cluster.head.pid))
        #expect(after - before < 100 << 20, "the head grew from \(before >> 20) to \(after >> 20) MiB")
        // And it serves on.
        let status = try cluster.status()
        #expect(status.nodes.contains { $0.alive })
    }
}
