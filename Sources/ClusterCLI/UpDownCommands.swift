import ArgumentParser
import Foundation
import Shoal

/// Runs commands on the hosts of a cluster file over ssh.
struct RemoteHosts {
    let config: ClusterConfig
    let binary: String

    init(config: ClusterConfig) {
        self.config = config
        binary = config.binary ?? ChildProcess.currentExecutable
    }

    /// `'text'`, safe inside a POSIX shell command line.
    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// The ssh arguments that run `command` on `host`.
    func sshArguments(host: String, command: [String]) -> [String] {
        var arguments = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if let port = config.ssh?.port { arguments += ["-p", String(port)] }
        if let identity = config.ssh?.identityFile {
            arguments += ["-i", (identity as NSString).expandingTildeInPath]
        }
        for option in config.ssh?.options ?? [] { arguments += ["-o", option] }
        let target = config.ssh?.user.map { "\($0)@\(host)" } ?? host
        var remote = ["env"]
        if let session = config.sessionDir { remote.append("SHOAL_SESSION_DIR=" + session) }
        remote += [binary] + command
        return arguments + [target, "--", remote.map(Self.quote).joined(separator: " ")]
    }

    /// Runs `command` on `host` and returns its output.
    /// - Throws: `ValidationError` with the remote output when ssh or the command fails.
    func run(host: String, _ command: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh")
        process.arguments = sshArguments(host: host, command: command)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw ValidationError("cannot run ssh (install openssh-client): \(error.localizedDescription)")
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let what =
                process.terminationStatus == 255 ? "ssh to \(host) failed" : "`cluster \(command.first ?? "")` on \(host) failed"
            throw ValidationError(
                "\(what) (status \(process.terminationStatus)):\n\(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return output
    }

    /// `cluster start` flags for a node's resources.
    static func resourceFlags(_ node: ClusterConfig.NodeConfig?) -> [String] {
        guard let node else { return [] }
        var flags: [String] = []
        if let cpus = node.cpus { flags += ["--num-cpus", String(cpus)] }
        if let gpus = node.gpus { flags += ["--num-gpus", String(gpus)] }
        if let memory = node.memory { flags += ["--memory", String(memory.bytes)] }
        if let store = node.objectStoreMemory { flags += ["--object-store-memory", String(store.bytes)] }
        if let resources = node.resources, !resources.isEmpty,
            let json = try? JSONEncoder().encode(resources)
        {
            flags += ["--resources", String(decoding: json, as: UTF8.self)]
        }
        return flags
    }
}

func loadClusterFile(_ path: String) throws -> ClusterConfig {
    do {
        return try ClusterConfig.load(path: path)
    } catch let error as ClusterError {
        throw ValidationError(error.message)
    }
}

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start the cluster a cluster file describes: the head, then a node daemon on every other host, over ssh.",
        discussion: """
            Every host needs the `cluster` executable at the same path (the file's `binary`, \
            default this one's) and key-based ssh (`ssh:` in the file: user, port, identity_file, \
            options). With head.port 0 the head picks a free port and the nodes join it there.
            """
    )

    @Argument(help: "The cluster file (cluster.yaml).")
    var file: String = "cluster.yaml"

    func run() async throws {
        let config = try loadClusterFile(file)
        let hosts = RemoteHosts(config: config)
        var headFlags = ["start", "--head", "--port", String(config.head.port), "--node-ip-address", config.head.host]
        headFlags += RemoteHosts.resourceFlags(config.nodes.first { $0.host == config.head.host })
        if let storage = config.storage { headFlags += ["--storage", storage] }
        print("Starting the head on \(config.head.host)…")
        let output = try hosts.run(host: config.head.host, headFlags)
        guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix("Shoal head started at ") }),
            let address = line.split(separator: " ").last.map(String.init)
        else {
            throw ValidationError("the head on \(config.head.host) did not say where it listens:\n\(output)")
        }
        print("Head at \(address)")
        let joinAddress = address.replacingOccurrences(of: "tcp://", with: "")
        for node in config.nodes where node.host != config.head.host {
            print("Starting a node daemon on \(node.host)…")
            do {
                _ = try hosts.run(
                    host: node.host,
                    ["start", "--address", joinAddress, "--node-ip-address", node.host] + RemoteHosts.resourceFlags(node))
            } catch {
                print("Stopping what was started, since \(node.host) failed.")
                try? await DownCommand.stop(config: config)
                throw error
            }
        }
        let status = try ControlClient(address: address).status(timeout: .seconds(10))
        print(status.rendered)
        print("Cluster up: \(status.nodes.filter(\.alive).count) nodes. Drivers connect with SHOAL_ADDRESS=\(address).")
    }
}

struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop every daemon of the cluster a cluster file describes, over ssh: node hosts first, then the head's."
    )

    @Argument(help: "The cluster file (cluster.yaml).")
    var file: String = "cluster.yaml"

    func run() async throws {
        try await Self.stop(config: try loadClusterFile(file))
    }

    static func stop(config: ClusterConfig) async throws {
        let hosts = RemoteHosts(config: config)
        var failures: [String] = []
        let order = config.nodes.map(\.host).filter { $0 != config.head.host } + [config.head.host]
        for host in order {
            do {
                let output = try hosts.run(host: host, ["stop"])
                for line in output.split(separator: "\n") { print("\(host): \(line)") }
            } catch {
                failures.append("\(error)")
            }
        }
        guard failures.isEmpty else { throw ValidationError(failures.joined(separator: "\n")) }
    }
}
