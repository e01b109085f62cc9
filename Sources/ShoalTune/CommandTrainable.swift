import Dispatch
import Foundation
import Shoal

#if canImport(Glibc)
    import Glibc
#endif

/// Any program as a trainable: started with `/bin/sh -c` in the trial's own folder, with the
/// trial's configuration as one JSON object in `SHOAL_TUNE_CONFIG` (and `SHOAL_TUNE_TRIAL_ID`,
/// `SHOAL_TUNE_CHECKPOINT_DIR`). Every line it prints on stdout that is a JSON object is a
/// report; other lines go to the trial's `stdout.log`, stderr to its `stderr.log`. A step
/// waits for the next report; the program's clean exit ends the trial with its last report.
/// Stopping it sends SIGTERM to its process group, then SIGKILL after a grace period. A
/// checkpoint is the checkpoint folder's contents, packed while the program is paused
/// (SIGSTOP): a program writes its state there before printing the report it belongs to, each
/// file whole (written aside, then renamed).
public actor CommandTrainable: Trainable {
    let context: TrialContext
    let pid: pid_t
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var ended = false
    private let log: FileHandle?
    /// Time a stopped program has between SIGTERM and SIGKILL.
    static let grace = Duration.seconds(2)

    /// Runs the command (`$2`) in the trial's process group beside a watchdog that ends the whole
    /// group once the worker (`$1`) is gone: a worker killed with SIGKILL leaves no program
    /// behind. The command's exit status is the group leader's.
    static let supervisor = #"""
        worker=$1
        /bin/sh -c "$2" &
        child=$!
        (while kill -0 "$worker" 2>/dev/null; do sleep 1; done; kill -KILL 0) &
        watch=$!
        wait "$child"
        status=$?
        kill "$watch" 2>/dev/null
        exit "$status"
        """#

    /// Starts the program, after `checkpoint` (another trial's) is unpacked into the
    /// checkpoint folder.
    /// - Throws: `TuneError` when the folders cannot be made or the program cannot start.
    public init(command: String, context: TrialContext, checkpoint: [UInt8]? = nil) throws {
        self.context = context
        let files = FileManager.default
        do {
            try files.createDirectory(atPath: context.directory, withIntermediateDirectories: true)
            if files.fileExists(atPath: context.checkpointDirectory) { try files.removeItem(atPath: context.checkpointDirectory) }
            try files.createDirectory(atPath: context.checkpointDirectory, withIntermediateDirectories: true)
            if let checkpoint { try WorkingDirectoryArchive.unpack(checkpoint, into: context.checkpointDirectory) }
        } catch {
            throw TuneError("trial \(context.trial): cannot prepare \(context.directory): \(error)")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["SHOAL_TUNE_CONFIG"] = context.config.json
        environment["SHOAL_TUNE_TRIAL_ID"] = String(context.trial)
        environment["SHOAL_TUNE_CHECKPOINT_DIR"] = context.checkpointDirectory
        let (read, write) = try ChildProcess.pipe()
        do {
            pid = try ChildProcess.spawn(
                "/bin/sh", arguments: ["-c", Self.supervisor, "shoal-trial", String(getpid()), command], environment: environment,
                errorPath: context.directory + "/stderr.log", workingDirectory: context.directory, newSession: true,
                outputDescriptor: write)
        } catch {
            close(read)
            close(write)
            throw TuneError("trial \(context.trial): cannot start '\(command)': \(error)")
        }
        close(write)
        descriptor = read
        let logPath = context.directory + "/stdout.log"
        _ = files.createFile(atPath: logPath, contents: nil)
        log = FileHandle(forWritingAtPath: logPath)
    }

    deinit {
        // A trainable dropped without `stop` leaves no program behind.
        if !ended {
            kill(-pid, SIGKILL)
            _ = ChildProcess.waitForExit(of: pid)
        }
        try? log?.close()
        close(descriptor)
    }

    public func step() async throws -> TrialReport {
        while true {
            guard let line = try await nextLine() else {
                let exit = ChildProcess.waitForExit(of: pid)
                ended = true
                guard exit.code == 0 else {
                    throw TuneError("trial \(context.trial): the command \(exit.reason)\(stderrTail())")
                }
                return TrialReport(metrics: [:], done: true, ended: true)
            }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("{") else {
                log?.write(Data((line + "\n").utf8))
                continue
            }
            return TrialReport(metrics: try parse(trimmed))
        }
    }

    /// A report line's numbers.
    func parse(_ line: String) throws -> [String: Double] {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            stop()
            throw TuneError("trial \(context.trial): the command printed a line that is not a JSON object: \(line.prefix(120))")
        }
        var metrics: [String: Double] = [:]
        for (key, value) in object {
            if let number = value as? NSNumber { metrics[key] = number.doubleValue }
        }
        guard let value = metrics[context.metric], value.isFinite else {
            stop()
            throw TuneError("trial \(context.trial): the report \(line.prefix(120)) has no finite '\(context.metric)'")
        }
        return metrics
    }

    /// The next line of stdout, or nil at its end; waits no later than the deadline.
    private func nextLine() async throws -> String? {
        if let line = takeLine() { return line }
        let (descriptor, deadline) = (self.descriptor, context.deadline)
        while true {
            let chunk: [UInt8]? = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(with: Result { try Self.read(descriptor, until: deadline) })
                }
            }
            guard let chunk else {
                guard !buffer.isEmpty else { return nil }
                defer { buffer.removeAll() }
                return String(decoding: buffer, as: UTF8.self)
            }
            if chunk.isEmpty {
                stop()
                throw TuneError("trial \(context.trial): ran past its time limit (--trial-timeout) and was stopped")
            }
            buffer += chunk
            if let line = takeLine() { return line }
        }
    }

    private func takeLine() -> String? {
        guard let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = String(decoding: buffer[..<newline], as: UTF8.self)
        buffer.removeSubrange(...newline)
        return line
    }

    /// Bytes from the pipe: nil at its end, empty when the deadline passed first.
    private static func read(_ descriptor: Int32, until deadline: ContinuousClock.Instant?) throws -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            var timeout: Int32 = -1
            if let deadline {
                let left = deadline - ContinuousClock.now
                if left <= .zero { return [] }
                timeout = Int32(min(left.seconds * 1000 + 1, 60_000))
            }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, timeout)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return nil }
            return Array(chunk[0..<count])
        }
    }

    private func stderrTail() -> String {
        guard let data = FileManager.default.contents(atPath: context.directory + "/stderr.log"), !data.isEmpty else { return "" }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(3)
        return "; its stderr ends: " + lines.joined(separator: " | ")
    }

    public func save() throws -> [UInt8] {
        if !ended { kill(-pid, SIGSTOP) }
        defer { if !ended { kill(-pid, SIGCONT) } }
        return try WorkingDirectoryArchive.pack(directory: context.checkpointDirectory).bytes
    }

    public func restore(_ checkpoint: [UInt8]) throws {
        try WorkingDirectoryArchive.unpack(checkpoint, into: context.checkpointDirectory)
    }

    /// SIGTERM, then SIGKILL once the grace period has passed; the process is reaped.
    public func stop() {
        guard !ended else { return }
        ended = true
        // The whole group: the shell and whatever it started.
        kill(-pid, SIGTERM)
        kill(-pid, SIGCONT)
        if ChildProcess.wait(for: pid, timeout: Self.grace) == nil {
            kill(-pid, SIGKILL)
            _ = ChildProcess.waitForExit(of: pid)
        }
        // Whatever is left in the group once its leader is gone (a process the SIGTERM met
        // mid-fork, or one that ignores it) goes too.
        kill(-pid, SIGKILL)
        try? log?.close()
    }
}
