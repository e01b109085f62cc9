import ArgumentParser
import Foundation
import Shoal

#if canImport(Glibc)
    import Glibc
#endif

struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop every Shoal daemon started on this machine, and their executors."
    )

    @Option(help: "Seconds to wait for a clean exit before SIGKILL.")
    var grace: Double = 5

    func run() async throws {
        let session = Session()
        let processes = session.processes()
        guard !processes.isEmpty else {
            print("No Shoal daemons are running from \(session.directory).")
            session.clearHeadAddress()
            return
        }
        // Only a process that is still the one recorded (same start time and executable) is
        // signalled: a pid reused by an unrelated process is reported and its record dropped.
        var ours: [Session.ProcessRecord] = []
        for process in processes {
            let (running, reason) = process.verify()
            if running {
                ours.append(process)
            } else {
                print("Stale record of \(process.role) (pid \(process.pid)): \(reason); removed, nothing signalled.")
                session.forget(pid: process.pid)
            }
        }
        for process in ours {
            kill(process.pid, SIGTERM)
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(grace * 1000))
        for process in ours {
            while ChildProcess.isAlive(process.pid) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            if ChildProcess.isAlive(process.pid) {
                kill(process.pid, SIGKILL)
                print("Killed \(process.role) (pid \(process.pid)) after \(grace) s.")
            } else {
                print("Stopped \(process.role) (pid \(process.pid)).")
            }
            session.forget(pid: process.pid)
        }
        session.clearHeadAddress()
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show nodes (alive or dead), resources in use, jobs and their queued and running tasks."
    )

    @Option(help: "The head, HOST:PORT (default: SHOAL_ADDRESS or this machine's session).")
    var address: String?

    func run() async throws {
        print(try ControlClient(address: try headAddress(address)).status().rendered)
    }
}
