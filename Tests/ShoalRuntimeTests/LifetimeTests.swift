import Foundation
import Shoal
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Handles let go of without `shutdown()`.
@Suite(.serialized) struct LifetimeTests {
    @Test func anEmbeddedClusterLetGoOfWithoutShutdownStopsItsLoops() async throws {
        var address = ""
        do {
            let cluster = try await Cluster.connect(localCPUs: 1)
            address = cluster.address
            #expect(Self.accepts(address), "the head listens while its handle lives")
        }
        // Several heartbeats and liveness checks later: had the head's, node's or driver's loop
        // kept running with its owner gone, a timer would have reached freed memory by now.
        try await Task.sleep(for: .seconds(2))
        #expect(!Self.accepts(address), "the head's socket closed with its loop")
    }

    /// Whether a TCP connection to `tcp://host:port` is accepted.
    static func accepts(_ address: String) -> Bool {
        guard let port = address.split(separator: ":").last.flatMap({ UInt16($0) }) else { return false }
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &target) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
