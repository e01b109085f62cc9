import ArgumentParser
import Foundation
import Shoal

#if canImport(Glibc)
    import Glibc
#endif

/// The head to talk to: `--address`, else SHOAL_ADDRESS, else this machine's session.
func headAddress(_ given: String?) throws -> String {
    guard let found = Session().headAddress(given: given) else {
        throw ValidationError("no cluster found: pass --address, set SHOAL_ADDRESS, or run `cluster start --head`")
    }
    return found
}

/// Writes bytes to a file descriptor, all of them.
func write(_ bytes: [UInt8], to descriptor: Int32) {
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let written = Glibc.write(descriptor, raw.baseAddress! + done, raw.count - done)
            if written <= 0 { return }
            done += written
        }
    }
}

func printError(_ text: String) {
    write(Array((text + "\n").utf8), to: 2)
}

struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Run a program on the head node as a job's driver, streaming its output.",
        discussion: """
            The working directory is packed (leaving out .build/, .git/ and .swiftpm/), uploaded \
            once by its SHA-256, and unpacked for the job; the entrypoint runs there with \
            SHOAL_ADDRESS and SHOAL_JOB_ID set. Without --no-wait the command follows the job's \
            stdout and stderr and exits with its exit code; Ctrl-C stops the job.

            Example: cluster submit --working-dir . -- ./train --epochs 3
            """
    )

    @Option(help: "The head, HOST:PORT (default: SHOAL_ADDRESS or this machine's session).")
    var address: String?

    @Option(name: .customLong("job-id"), help: "The job's id (default: one the head picks).")
    var jobID: String?

    @Option(name: .customLong("working-dir"), help: "A folder to ship to the job and run it in.")
    var workingDir: String?

    @Option(
        name: .customLong("max-working-dir-size"),
        help: "The largest working directory to ship, in bytes or with a unit (512MiB).")
    var maxWorkingDirSize: String = "512MiB"

    @Option(name: .customLong("env"), help: "K=V added to the job's environment (repeatable).")
    var environment: [String] = []

    @Flag(name: .customLong("no-wait"), help: "Print the job id and return at once.")
    var noWait = false

    @Argument(parsing: .postTerminator, help: "The program to run and its arguments, after --.")
    var entrypoint: [String] = []

    func validate() throws {
        guard !entrypoint.isEmpty else {
            throw ValidationError("give the program to run after --, e.g. cluster submit -- ./train")
        }
        _ = try parsedEnvironment()
        _ = try sizeLimit()
    }

    func parsedEnvironment() throws -> [String: String] {
        var parsed: [String: String] = [:]
        for entry in environment {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw ValidationError("--env '\(entry)' is not KEY=VALUE")
            }
            parsed[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        return parsed
    }

    func sizeLimit() throws -> UInt64 {
        guard let bytes = ByteSize.parse(maxWorkingDirSize.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("--max-working-dir-size '\(maxWorkingDirSize)' is not a size (examples: 100MiB, 1GiB)")
        }
        return bytes
    }

    func run() async throws {
        installStopSignalHandlers()
        let client = try JobClient(address: try headAddress(address))
        var sha: String?
        if let workingDir {
            let started = ContinuousClock.now
            let shipped = try client.uploadWorkingDirectory(workingDir, maxSize: try sizeLimit())
            sha = shipped.sha256
            let size = ByteCountFormatter.string(fromByteCount: Int64(shipped.bytes), countStyle: .binary)
            printError(
                shipped.uploaded
                    ? "Uploaded working directory \(workingDir) (\(shipped.files) files, \(size)) in \(format(ContinuousClock.now - started))."
                    : "Working directory \(workingDir) (\(shipped.files) files, \(size)) is already on the head.")
        }
        let job = try client.submit(
            entrypoint: entrypoint, jobID: jobID, environment: try parsedEnvironment(), workingDirSHA256: sha)
        if noWait {
            print(job.id)
            printError("Job \(job.id) submitted. Follow it with: cluster job logs \(job.id) --follow")
            return
        }
        printError("Job \(job.id) submitted; following its output (Ctrl-C stops it).")
        let ended = try client.follow(job.id, shouldStop: { isStopRequested }) { out, err in
            write(out, to: 1)
            write(err, to: 2)
        }
        printError(
            "Job \(ended.id) \(ended.state.rawValue)"
                + (ended.message.isEmpty || ended.state == .failed ? "." : ": \(ended.message)"))
        if ended.state != .succeeded {
            throw ExitCode(ended.exitCode.map { $0 == 0 ? 1 : $0 } ?? 1)
        }
    }
}

struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job",
        abstract: "List, inspect, read the logs of, and stop submitted jobs.",
        subcommands: [List.self, Status.self, Logs.self, Stop.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every submitted job, oldest first.")
        @Option(help: "The head, HOST:PORT.") var address: String?

        func run() async throws {
            let jobs = try JobClient(address: try headAddress(address)).list()
            guard !jobs.isEmpty else {
                print("No jobs.")
                return
            }
            var rows = [["JOB ID", "STATE", "SUBMITTED", "DURATION", "EXIT", "ENTRYPOINT"]]
            for job in jobs {
                rows.append([
                    job.id, job.state.rawValue, timestamp(job.submittedAt), duration(of: job),
                    job.exitCode.map(String.init) ?? "-", String(job.entrypoint.joined(separator: " ").prefix(60)),
                ])
            }
            print(table(rows))
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One job's state, times, exit code and message.")
        @Option(help: "The head, HOST:PORT.") var address: String?
        @Argument(help: "The job's id.") var id: String

        func run() async throws {
            let job = try JobClient(address: try headAddress(address)).status(id)
            print("Job:         \(job.id)")
            print("State:       \(job.state.rawValue)")
            print("Entrypoint:  \(job.entrypoint.joined(separator: " "))")
            print("Submitted:   \(timestamp(job.submittedAt))")
            print("Started:     \(job.startedAt.map(timestamp) ?? "-")")
            print("Ended:       \(job.endedAt.map(timestamp) ?? "-")")
            print("Duration:    \(duration(of: job))")
            print("Exit code:   \(job.exitCode.map(String.init) ?? "-")")
            if job.driverPID > 0 { print("Driver pid:  \(job.driverPID)") }
            if !job.workingDirSHA256.isEmpty { print("Working dir: sha256 \(job.workingDirSHA256)") }
            if !job.message.isEmpty { print("Message:     \(job.message)") }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A job's stdout and stderr, from the start.")
        @Option(help: "The head, HOST:PORT.") var address: String?
        @Flag(help: "Keep printing new output until the job ends.") var follow = false
        @Argument(help: "The job's id.") var id: String

        func run() async throws {
            let client = try JobClient(address: try headAddress(address))
            if follow {
                // Ctrl-C ends the following, not the job.
                _ = try client.follow(id) { out, err in
                    write(out, to: 1)
                    write(err, to: 2)
                }
                return
            }
            var stdoutOffset: UInt64 = 0
            var stderrOffset: UInt64 = 0
            while true {
                let piece = try client.readOutput(id, stdoutOffset: stdoutOffset, stderrOffset: stderrOffset)
                write(piece.stdout, to: 1)
                write(piece.stderr, to: 2)
                if piece.stdoutOffset == stdoutOffset && piece.stderrOffset == stderrOffset { return }
                stdoutOffset = piece.stdoutOffset
                stderrOffset = piece.stderrOffset
            }
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a job: SIGTERM to its driver, SIGKILL 3 s later.")
        @Option(help: "The head, HOST:PORT.") var address: String?
        @Option(help: "Seconds to wait for the job to end.") var wait: Double = 10
        @Argument(help: "The job's id.") var id: String

        func run() async throws {
            let client = try JobClient(address: try headAddress(address))
            let before = try client.stop(id)
            if before.state.isTerminal {
                print("Job \(id) had already ended: \(before.state.rawValue).")
                return
            }
            let deadline = ContinuousClock.now + .milliseconds(Int(wait * 1000))
            while ContinuousClock.now < deadline {
                let job = try client.status(id)
                if job.state.isTerminal {
                    print("Job \(id) \(job.state.rawValue).")
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw CommandFailure("job \(id) had not ended \(wait) s after the stop request")
        }
    }
}

private func timestamp(_ date: Date) -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return formatter.string(from: date)
}

private func duration(of job: Job) -> String {
    guard let started = job.startedAt else { return "-" }
    let seconds = (job.endedAt ?? Date()).timeIntervalSince(started)
    return seconds < 60 ? String(format: "%.1fs", seconds) : String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60)
}

private func format(_ duration: Duration) -> String {
    String(format: "%.2f s", duration.seconds)
}

/// Left-aligned columns, two spaces apart.
func table(_ rows: [[String]]) -> String {
    let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
            .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }.joined(separator: "\n")
}
