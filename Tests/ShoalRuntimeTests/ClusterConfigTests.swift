import Foundation
import Testing

@testable import ShoalRuntime

@Suite struct ClusterConfigTests {
    func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "cluster-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func theRepositorysClusterFileLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let config = try ClusterConfig.load(path: root.appendingPathComponent("cluster.yaml").path)
        #expect(config.head.port == 6390)
        #expect(config.nodes.first?.memory?.bytes == 8 << 30)
        #expect(config.nodes.first?.objectStoreMemory?.bytes == 2 << 30)
    }

    @Test func sizesTakeUnits() {
        #expect(ByteSize.parse("512MiB") == 512 << 20)
        #expect(ByteSize.parse("1.5GB") == 1_500_000_000)
        #expect(ByteSize.parse("4096") == 4096)
        #expect(ByteSize.parse("lots") == nil)
        #expect(ByteSize.parse("-1GiB") == nil)
    }

    @Test func nodesAreChosenByHost() throws {
        let path = try write(
            """
            head: {host: 10.0.0.1, port: 7000}
            nodes:
              - {host: 10.0.0.1, cpus: 8}
              - {host: 10.0.0.2, cpus: 4, gpus: 1, resources: {ssd: 1}}
            """)
        let config = try ClusterConfig.load(path: path)
        #expect(config.node(for: "10.0.0.2")?.cpus == 4)
        #expect(config.node(for: "10.0.0.2")?.resources == ["ssd": 1])
        #expect(config.node(for: "elsewhere")?.host == "10.0.0.1")
    }

    @Test func badFilesNameTheFieldThatIsWrong() throws {
        let cases: [(String, String)] = [
            ("head: {host: a, port: 99999}\nnodes: [{host: a}]", "head.port 99999"),
            ("head: {host: a, port: 1}\nnodes: []", "nodes lists no node"),
            ("head: {host: a, port: 1}\nnodes: [{host: a, cpus: -2}]", "nodes[0].cpus"),
            ("head: {host: a, port: 1}\nnodes: [{host: a, memory: lots}]", "'lots' is not a size"),
            ("nodes: [{host: a}]", "head"),
            ("head: {host: a, port: 1}\nnodes: [{host: a}, {host: a}]", "nodes[1].host a is listed twice"),
            ("head: {host: a, port: 1}\nssh: {port: 0}\nnodes: [{host: a}]", "ssh.port 0"),
            (
                "head: {host: a, port: 1}\nstorage: mysql://db/shoal\nnodes: [{host: a}]",
                "storage: 'mysql://db/shoal' is not a store"
            ),
        ]
        for (text, expected) in cases {
            let path = try write(text)
            do {
                _ = try ClusterConfig.load(path: path)
                Issue.record("\(text) should not load")
            } catch let error as ClusterError {
                #expect(error.message.contains(expected), "\(error.message)")
                #expect(error.message.contains(path))
            }
        }
        #expect(throws: ClusterError.self) { try ClusterConfig.load(path: "/no/such/cluster.yaml") }
    }
}
