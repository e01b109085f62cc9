import Foundation
import ShoalStorage
import Yams

/// A cluster's description, as `cluster.yaml` gives it: the head's address and each node's
/// resources.
public struct ClusterConfig: Codable, Sendable, Equatable {
    public struct HeadConfig: Codable, Sendable, Equatable {
        public var host: String
        public var port: Int
    }

    public struct NodeConfig: Codable, Sendable, Equatable {
        public var host: String
        public var cpus: Double?
        public var gpus: Double?
        public var memory: ByteSize?
        public var objectStoreMemory: ByteSize?
        public var resources: [String: Double]?

        enum CodingKeys: String, CodingKey {
            case host, cpus, gpus, memory
            case objectStoreMemory = "object_store_memory"
            case resources
        }
    }

    /// How `cluster up` and `cluster down` reach the hosts.
    public struct SSHConfig: Codable, Sendable, Equatable {
        /// The remote user (default: ssh's own choice).
        public var user: String?
        public var port: Int?
        /// A private key file.
        public var identityFile: String?
        /// Extra `-o` options, such as `StrictHostKeyChecking=accept-new`.
        public var options: [String]?

        enum CodingKeys: String, CodingKey {
            case user, port
            case identityFile = "identity_file"
            case options
        }
    }

    public var head: HeadConfig
    public var nodes: [NodeConfig]
    public var ssh: SSHConfig?
    /// The `cluster` executable's path on every host (default: this one's path).
    public var binary: String?
    /// The session folder on every host (default: SHOAL_SESSION_DIR there, else /tmp/shoal).
    public var sessionDir: String?

    enum CodingKeys: String, CodingKey {
        case head, nodes, ssh, binary, storage
        case sessionDir = "session_dir"
    }
    /// Where the head keeps its state (the job table, the model registry): a SQLite file path
    /// (`sqlite:PATH` also), relative paths taken from the session folder, or a
    /// `postgres://user@host:port/database` URL.
    public var storage: String?

    /// Reads and checks a cluster file.
    /// - Throws: `ClusterError.invalidArgument` naming the file and the field that is wrong.
    public static func load(path: String) throws -> ClusterConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ClusterError.invalidArgument("cannot read cluster file \(path)")
        }
        let config: ClusterConfig
        do {
            config = try YAMLDecoder().decode(ClusterConfig.self, from: text)
        } catch let error as DecodingError {
            throw ClusterError.invalidArgument("\(path): \(Self.describe(error))")
        } catch {
            throw ClusterError.invalidArgument("\(path): \(error)")
        }
        try config.validate(path: path)
        return config
    }

    func validate(path: String) throws {
        guard (0...65535).contains(head.port) else {
            throw ClusterError.invalidArgument("\(path): head.port \(head.port) is not a TCP port")
        }
        guard !head.host.isEmpty else { throw ClusterError.invalidArgument("\(path): head.host is empty") }
        guard !nodes.isEmpty else { throw ClusterError.invalidArgument("\(path): nodes lists no node") }
        if let storage {
            do {
                _ = try StorageLocation(parsing: storage)
            } catch let error as StorageError {
                throw ClusterError.invalidArgument("\(path): storage: \(error.message)")
            }
        }
        if let port = ssh?.port, !(1...65535).contains(port) {
            throw ClusterError.invalidArgument("\(path): ssh.port \(port) is not a TCP port")
        }
        var seen: Set<String> = []
        for (index, node) in nodes.enumerated() {
            guard !node.host.isEmpty else { throw ClusterError.invalidArgument("\(path): nodes[\(index)].host is empty") }
            guard seen.insert(node.host).inserted else {
                throw ClusterError.invalidArgument(
                    "\(path): nodes[\(index)].host \(node.host) is listed twice (one node daemon per host)")
            }
        }
        for (index, node) in nodes.enumerated() {
            for (name, value) in [("cpus", node.cpus), ("gpus", node.gpus)] {
                if let value, !(value >= 0 && value.isFinite) {
                    throw ClusterError.invalidArgument("\(path): nodes[\(index)].\(name) must be a number >= 0, not \(value)")
                }
            }
            for (name, amount) in node.resources ?? [:] where !(amount >= 0 && amount.isFinite) {
                throw ClusterError.invalidArgument("\(path): nodes[\(index)].resources.\(name) must be >= 0, not \(amount)")
            }
        }
    }

    /// The node listed for `host`, else the first.
    public func node(for host: String) -> NodeConfig? {
        nodes.first { $0.host == host } ?? nodes.first
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: ["."]
            )
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context)).\(key.stringValue) is missing".trimmingCharacters(in: ["."])
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// A number of bytes, written as a number or with a unit: `512MiB`, `2GiB`, `1.5GB`.
public struct ByteSize: Codable, Sendable, Equatable {
    public var bytes: UInt64

    public init(bytes: UInt64) { self.bytes = bytes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(UInt64.self) {
            bytes = number
            return
        }
        let text = try container.decode(String.self).trimmingCharacters(in: .whitespaces)
        guard let parsed = Self.parse(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a size (examples: 1048576, 512MiB, 2GiB, 1.5GB)")
        }
        bytes = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(bytes)
    }

    /// Parses `512MiB`, `2GiB`, `1.5GB` or a plain number of bytes.
    public static func parse(_ text: String) -> UInt64? {
        let units: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1_048_576), ("GiB", 1_073_741_824), ("TiB", 1_099_511_627_776), ("KB", 1e3), ("MB", 1e6),
            ("GB", 1e9),
            ("TB", 1e12), ("B", 1),
        ]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let value = Double(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value >= 0, value.isFinite
            else {
                return nil
            }
            return UInt64(value * scale)
        }
        return UInt64(text)
    }
}
