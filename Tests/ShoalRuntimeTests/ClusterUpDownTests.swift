import Foundation
import Shoal
import ShoalTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `cluster up` and `cluster down` over real ssh, against an sshd of the test's own on
/// loopback (127.0.0.1 for the head, 127.0.0.2 for a second "host").
@Suite(.serialized) struct ClusterUpDownTests {
    /// A private sshd: its own host key, one authorised client key, key logins only.
    final class LoopbackSSHD {
        let folder: String
        let port: Int
        let process: RunningProcess

        init() async throws {
            let sshd = "/usr/sbin/sshd"
            guard FileManager.default.isExecutableFile(atPath: sshd) else {
                throw ClusterError.invalidArgument("\(sshd) is missing: install openssh-server (`make deps` does)")
            }
            folder = NSTemporaryDirectory() + "shoal-sshd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for key in ["host_key", "client_key"] {
                let keygen = try RunningProcess(
                    "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", folder + "/" + key])
                #expect(try await keygen.waitForExit(timeout: .seconds(30)) == 0)
            }
            try FileManager.default.copyItem(atPath: folder + "/client_key.pub", toPath: folder + "/authorized_keys")
            // Privilege separation wants this folder when sshd runs as root.
            try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
            var started: (Int, RunningProcess)?
            for _ in 0..<5 where started == nil {
                let port = Int.random(in: 20000...60000)
                try """
                Port \(port)
                ListenAddress 127.0.0.1
                ListenAddress 127.0.0.2
                HostKey \(folder)/host_key
                AuthorizedKeysFile \(folder)/authorized_keys
                PidFile \(folder)/sshd.pid
                UsePAM no
                StrictModes no
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PermitRootLogin prohibit-password
                LogLevel ERROR
                """.write(toFile: folder + "/sshd_config", atomically: true, encoding: .utf8)
                let process = try RunningProcess(sshd, ["-D", "-e", "-f", folder + "/sshd_config"])
                // Until it listens (a loaded machine can take seconds), or gives up on the port.
                let deadline = ContinuousClock.now + .seconds(15)
                while process.isRunning, !LifetimeTests.accepts("tcp://127.0.0.1:\(port)"), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                if process.isRunning, LifetimeTests.accepts("tcp://127.0.0.1:\(port)") {
                    started = (port, process)
                } else {
                    process.killTree()
                }
            }
            guard let started else { throw ClusterError.connectionFailed("sshd did not start on a free port") }
            (port, process) = started
        }

        /// The `ssh:` section of a cluster file that logs in here.
        var clusterFileSection: String {
            """
            ssh:
              port: \(port)
              identity_file: \(folder)/client_key
              options: [StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null, LogLevel=ERROR]
            """
        }

        func stop() {
            process.signal(SIGTERM)
            try? FileManager.default.removeItem(atPath: folder)
        }
    }

    @Test func upStartsTheHeadAndANodeOnEachHostAndDownStopsThemAll() async throws {
        let sshd = try await LoopbackSSHD()
        defer { sshd.stop() }
        let session = NSTemporaryDirectory() + "shoal-up-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer {
            for entry in Session(directory: session).processes() { ClusterProcesses.killTree(entry.pid) }
            try? FileManager.default.removeItem(atPath: session)
        }
        let file = sshd.folder + "/cluster.yaml"
        try """
        head: {host: 127.0.0.1, port: 0}
        binary: \(binaryPath("cluster"))
        session_dir: \(session)
        storage: state/test.sqlite
        \(sshd.clusterFileSection)
        nodes:
          - {host: 127.0.0.1, cpus: 2, object_store_memory: 64MiB}
          - {host: 127.0.0.2, cpus: 1, resources: {ssd: 1}, object_store_memory: 64MiB}
        """.write(toFile: file, atomically: true, encoding: .utf8)

        let up = try RunningProcess(binaryPath("cluster"), ["up", file])
        #expect(try await up.waitForExit(timeout: .seconds(90)) == 0, "\(up.output)")
        let line = try #require(up.line(startingWith: "Head at tcp://127.0.0.1:"), "\(up.output)")
        let address = String(line.dropFirst("Head at ".count))
        let status = try ControlClient(address: address).status()
        #expect(status.nodes.filter(\.alive).count == 2)
        let second = try #require(status.nodes.first { $0.address.contains("127.0.0.2") }, "\(status.nodes.map(\.address))")
        #expect(second.total[Resources.cpu] == 1)
        #expect(second.total["ssd"] == 1)
        #expect(
            FileManager.default.fileExists(atPath: session + "/state/test.sqlite"), "the head keeps its state where the file says"
        )
        let daemons = Session(directory: session).processes().map(\.pid)
        #expect(daemons.count == 2)

        let down = try RunningProcess(binaryPath("cluster"), ["down", file])
        #expect(try await down.waitForExit(timeout: .seconds(60)) == 0, "\(down.output)")
        for pid in daemons { #expect(!ChildProcess.isAlive(pid), "daemon \(pid) outlived `cluster down`") }

        // A host that cannot be reached is named in the error.
        let broken = sshd.folder + "/broken.yaml"
        try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "port: \(sshd.port)", with: "port: 1")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        let failed = try RunningProcess(binaryPath("cluster"), ["up", broken])
        #expect(try await failed.waitForExit(timeout: .seconds(60)) != 0)
        #expect(failed.output.contains { $0.contains("ssh to 127.0.0.1 failed") }, "\(failed.output)")
    }
}
