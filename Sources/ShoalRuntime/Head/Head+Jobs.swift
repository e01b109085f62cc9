import Foundation
import Logging
import ShoalStorage
import ShoalTransport
import ShoalWire

#if canImport(Glibc)
    import Glibc
#endif

/// The head's submitted jobs: their records (persisted), the drivers it runs for them, and the
/// clients waiting for their output.
final class JobBook {
    struct LogWaiter {
        var peer: [UInt8]
        var requestID: UInt64
        var request: Shoal_V1_ReadJobLogs
        var deadline: ContinuousClock.Instant
    }

    let store: JobStore
    /// `<folder>/<job id>/` holds a job's `stdout`, `stderr` and `working_dir/`.
    let directory: String
    /// Working directory archives, by SHA-256.
    let archiveDirectory: String
    let maxWorkingDirSize: UInt64
    var records: [String: JobInfo] = [:]
    /// Jobs asked to stop, with the time SIGKILL follows SIGTERM.
    var stopping: [String: ContinuousClock.Instant] = [:]
    var logWaiters: [LogWaiter] = []
    var logTimerArmed = false

    init(storage: StorageLocation, directory: String, maxWorkingDirSize: UInt64) throws {
        store = try JobStore(storage)
        self.directory = directory
        archiveDirectory = directory + "/archives"
        self.maxWorkingDirSize = maxWorkingDirSize
        try FileManager.default.createDirectory(atPath: archiveDirectory, withIntermediateDirectories: true)
        for job in try store.all() { records[job.jobID] = job }
    }

    func folder(of id: String) -> String { directory + "/" + id }
    func stdoutPath(of id: String) -> String { folder(of: id) + "/stdout" }
    func stderrPath(of id: String) -> String { folder(of: id) + "/stderr" }
    func archivePath(of sha: String) -> String { archiveDirectory + "/" + sha }
}

extension Head {
    /// How long a stopped job's driver gets between SIGTERM and SIGKILL.
    static let jobStopGrace: Duration = .seconds(3)
    /// The most output one `ReadJobLogs` answer carries per stream.
    static let defaultLogChunk: UInt32 = 1 << 20

    /// Marks the jobs a previous head left running as failed, ending their drivers if still there.
    func recoverJobs() {
        for var job in jobBook.records.values where !job.state.isTerminal {
            var ended = "the driver had already exited"
            if job.driverPid > 0, Self.isDriver(pid: job.driverPid, of: job.jobID) {
                kill(-job.driverPid, SIGKILL)
                ended = "its driver (pid \(job.driverPid)) was ended"
            }
            job.message = "the head restarted while the job was \(JobStore.name(of: job.state).lowercased()); \(ended)"
            job.state = .jobFailed
            job.endedAt = Date().timeIntervalSince1970
            record(job)
        }
    }

    /// Whether `pid` is still the driver the head started for job `id` (and not a reused pid).
    private static func isDriver(pid: Int32, of id: String) -> Bool {
        guard let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
        return environment.split(separator: 0).contains { $0.elementsEqual("SHOAL_JOB_ID=\(id)".utf8) }
    }

    /// Ends every running submitted job, for a head that is stopping.
    public func endSubmittedJobs() {
        for var job in jobBook.records.values where !job.state.isTerminal {
            if job.driverPid > 0 { kill(-job.driverPid, SIGKILL) }
            job.state = .jobFailed
            job.endedAt = Date().timeIntervalSince1970
            job.message = "the head stopped while the job ran"
            record(job)
        }
    }

    func record(_ job: JobInfo) {
        jobBook.records[job.jobID] = job
        do {
            try jobBook.store.save(job)
        } catch {
            logger.error("cannot save the job record", metadata: ["job": "\(job.jobID)", "error": "\(error)"])
        }
    }

    func handleJobMessage(_ incoming: Incoming) throws -> Bool {
        let peer = incoming.sender
        let requestID = incoming.envelope.requestID
        switch incoming.envelope.body {
        case .checkWorkingDir(let check):
            var state = Shoal_V1_WorkingDirState()
            state.sha256 = check.sha256
            state.present =
                SHA256.isHexDigest(check.sha256) && FileManager.default.fileExists(atPath: jobBook.archivePath(of: check.sha256))
            state.maxSize = jobBook.maxWorkingDirSize
            try send(Envelope(requestID, .workingDirState(state)), to: peer)
        case .uploadWorkingDir(let upload):
            try storeWorkingDir(upload.sha256, bytes: incoming.payload(1), peer: peer, requestID: requestID)
        case .submitJob(let submit): try submitJob(submit, peer: peer, requestID: requestID)
        case .listJobs:
            var list = Shoal_V1_JobList()
            list.jobs = jobBook.records.values.sorted { ($0.submittedAt, $0.jobID) < ($1.submittedAt, $1.jobID) }
            try send(Envelope(requestID, .jobList(list)), to: peer)
        case .getJob(let get):
            guard let job = jobBook.records[get.jobID] else { throw unknownJob(get.jobID) }
            try reply(job, requestID: requestID, to: peer)
        case .stopJob(let stop): try stopJob(stop.jobID, peer: peer, requestID: requestID)
        case .readJobLogs(let read):
            guard jobBook.records[read.jobID] != nil else { throw unknownJob(read.jobID) }
            if !answerLogs(read, requestID: requestID, to: peer, final: read.waitMs == 0) {
                let deadline = ContinuousClock.now + .milliseconds(Int(min(read.waitMs, 60_000)))
                jobBook.logWaiters.append(.init(peer: peer, requestID: requestID, request: read, deadline: deadline))
                armLogTimer()
            }
        default: return false
        }
        return true
    }

    private func unknownJob(_ id: String) -> JobRequestError {
        JobRequestError(code: .notFound, message: "no job '\(id.prefix(100))' (see `cluster job list`)")
    }

    private func reply(_ job: JobInfo, requestID: UInt64, to peer: [UInt8]) throws {
        var reply = Shoal_V1_JobReply()
        reply.job = job
        try send(Envelope(requestID, .jobReply(reply)), to: peer)
    }

    private func storeWorkingDir(_ sha: String, bytes: [UInt8], peer: [UInt8], requestID: UInt64) throws {
        guard SHA256.isHexDigest(sha) else {
            throw JobRequestError(code: .invalidArgument, message: "'\(sha.prefix(80))' is not a SHA-256 hex digest")
        }
        guard UInt64(bytes.count) <= jobBook.maxWorkingDirSize else {
            throw JobRequestError(
                code: .invalidArgument,
                message:
                    "the working directory archive is \(formatBytes(UInt64(bytes.count))), over the head's limit of \(formatBytes(jobBook.maxWorkingDirSize))"
            )
        }
        let actual = SHA256.hexDigest(of: bytes)
        guard actual == sha else {
            throw JobRequestError(
                code: .invalidArgument, message: "the working directory archive hashes to \(actual), not \(sha)")
        }
        do {
            try Files.replace(jobBook.archivePath(of: sha), with: bytes)
        } catch {
            throw JobRequestError(
                code: .unavailable, message: "cannot write the working directory store at \(jobBook.archiveDirectory): \(error)")
        }
        var state = Shoal_V1_WorkingDirState()
        state.sha256 = sha
        state.present = true
        state.maxSize = jobBook.maxWorkingDirSize
        try send(Envelope(requestID, .workingDirState(state)), to: peer)
    }

    private static let jobIDCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

    private func submitJob(_ submit: Shoal_V1_SubmitJob, peer: [UInt8], requestID: UInt64) throws {
        var id = submit.jobID
        if id.isEmpty {
            repeat {
                id = "job-" + String((0..<10).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement() ?? "0" })
            } while jobBook.records[id] != nil
        } else {
            guard (1...64).contains(id.count), id.allSatisfy(Self.jobIDCharacters.contains), id.first != "." else {
                throw JobRequestError(
                    code: .invalidArgument, message: "job id '\(id.prefix(80))' must be 1 to 64 letters, digits, '.', '_' or '-'")
            }
            guard jobBook.records[id] == nil, !jobs.values.contains(where: { $0.id == id && $0.alive }) else {
                throw JobRequestError(
                    code: .invalidArgument, message: "job id '\(id)' is taken; pick another or leave --job-id out")
            }
        }
        guard let program = submit.entrypoint.first, !program.isEmpty else {
            throw JobRequestError(code: .invalidArgument, message: "the entrypoint is empty: give a command after --")
        }
        for key in submit.env.keys where key.isEmpty || key.contains("=") || key.utf8.contains(0) {
            throw JobRequestError(code: .invalidArgument, message: "environment variable name '\(key.prefix(80))' is not valid")
        }
        if !submit.workingDirSha256.isEmpty {
            guard SHA256.isHexDigest(submit.workingDirSha256),
                FileManager.default.fileExists(atPath: jobBook.archivePath(of: submit.workingDirSha256))
            else {
                throw JobRequestError(
                    code: .notFound, message: "working directory \(submit.workingDirSha256.prefix(80)) was not uploaded")
            }
        }
        var job = JobInfo()
        job.jobID = id
        job.state = .jobPending
        job.entrypoint = submit.entrypoint
        job.workingDirSha256 = submit.workingDirSha256
        job.submittedAt = Date().timeIntervalSince1970
        record(job)
        try reply(job, requestID: requestID, to: peer)
        logger.info("job submitted", metadata: ["job": "\(id)", "entrypoint": "\(submit.entrypoint.joined(separator: " "))"])

        // Unpacking a large working directory must not hold up the head's loop.
        let folder = jobBook.folder(of: id)
        let archive = submit.workingDirSha256.isEmpty ? nil : jobBook.archivePath(of: submit.workingDirSha256)
        var environment = ProcessInfo.processInfo.environment
        environment.merge(submit.env) { $1 }
        environment["SHOAL_ADDRESS"] = address
        environment["SHOAL_JOB_ID"] = id
        environment["SHOAL_ROLE"] = nil
        let stdoutPath = jobBook.stdoutPath(of: id)
        let stderrPath = jobBook.stderrPath(of: id)
        let arguments = Array(submit.entrypoint.dropFirst())
        let loop = self.loop
        let jobID = id
        Thread.detachNewThread { [weak self, environment] in
            var environment = environment
            let started = Result { () throws -> pid_t in
                let workingDirectory = folder + "/working_dir"
                try? FileManager.default.removeItem(atPath: folder)
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                guard FileManager.default.createFile(atPath: stdoutPath, contents: nil),
                    FileManager.default.createFile(atPath: stderrPath, contents: nil)
                else { throw Files.Failure(message: "cannot create the job's log files in \(folder)") }
                if let archive {
                    guard let bytes = Files.read(archive) else {
                        throw ClusterError.invalidArgument("the working directory archive \(archive) cannot be read")
                    }
                    try WorkingDirectoryArchive.unpack(bytes, into: workingDirectory)
                } else {
                    try FileManager.default.createDirectory(atPath: workingDirectory, withIntermediateDirectories: true)
                }
                let executable = try Self.resolve(program, in: workingDirectory, path: environment["PATH"] ?? "/usr/bin:/bin")
                environment["SHOAL_WORKING_DIR"] = workingDirectory
                return try ChildProcess.spawn(
                    executable, arguments: arguments, environment: environment, logPath: stdoutPath, errorPath: stderrPath,
                    workingDirectory: workingDirectory, newSession: true)
            }
            loop.execute { [weak self] in
                self?.assumeIsolated { $0.driverStarted(jobID, started) }
            }
            guard case .success(let pid) = started else { return }
            let (code, reason) = ChildProcess.waitForExit(of: pid)
            loop.execute { [weak self] in
                self?.assumeIsolated { $0.driverExited(jobID, pid: pid, code: code, reason: reason) }
            }
        }
    }

    /// The entrypoint's executable: a path (relative to the working directory), or a name
    /// looked up on PATH.
    private static func resolve(_ program: String, in workingDirectory: String, path: String) throws -> String {
        if program.contains("/") {
            let full = program.hasPrefix("/") ? program : workingDirectory + "/" + program
            guard access(full, X_OK) == 0 else {
                throw ClusterError.invalidArgument(
                    "entrypoint '\(program)' is not an executable file (\(String(cString: strerror(errno)))) in the working directory"
                )
            }
            return full
        }
        for folder in path.split(separator: ":") {
            let full = folder.hasPrefix("/") ? "\(folder)/\(program)" : "\(workingDirectory)/\(folder)/\(program)"
            if access(full, X_OK) == 0 { return full }
        }
        throw ClusterError.invalidArgument(
            "entrypoint '\(program)' was not found on PATH (\(path)); give a path, such as ./\(program) for a file in the working directory"
        )
    }

    private func driverStarted(_ id: String, _ result: Result<pid_t, any Error>) {
        guard var job = jobBook.records[id] else { return }
        switch result {
        case .success(let pid):
            job.state = .jobRunning
            job.driverPid = pid
            job.startedAt = Date().timeIntervalSince1970
            record(job)
            logger.info("job started", metadata: ["job": "\(id)", "pid": "\(pid)"])
            if jobBook.stopping[id] != nil { signalDriver(of: id) }
        case .failure(let error):
            let reason = (error as? ClusterError)?.message ?? "\(error)"
            job.state = jobBook.stopping[id] != nil ? .jobStopped : .jobFailed
            job.endedAt = Date().timeIntervalSince1970
            job.message = "the job could not start: \(reason)"
            // The reason also goes where its output would have: `job logs` shows it.
            if let handle = FileHandle(forWritingAtPath: jobBook.stderrPath(of: id)) {
                handle.seekToEndOfFile()
                handle.write(Data("cluster: \(job.message)\n".utf8))
                try? handle.close()
            }
            jobBook.stopping[id] = nil
            record(job)
            logger.warning("job could not start", metadata: ["job": "\(id)", "reason": "\(reason)"])
            wakeLogWaiters()
        }
    }

    private func driverExited(_ id: String, pid: pid_t, code: Int32, reason: String) {
        // Whatever the driver left behind in its process group ends with it.
        kill(-pid, SIGKILL)
        // A job already marked ended (the head is stopping) keeps the reason it was given.
        guard var job = jobBook.records[id], !job.state.isTerminal else { return }
        let stopped = jobBook.stopping.removeValue(forKey: id) != nil
        job.hasExitCode_p = true
        job.exitCode = code
        job.endedAt = Date().timeIntervalSince1970
        if stopped {
            job.state = .jobStopped
            job.message = "stopped by request; the driver \(reason)"
        } else if code == 0 {
            job.state = .jobSucceeded
            job.message = ""
        } else {
            job.state = .jobFailed
            let tail = Self.tail(of: jobBook.stderrPath(of: id), bytes: 2048)
            job.message =
                "the entrypoint \(reason)" + (tail.isEmpty ? "; it wrote nothing to stderr" : "; the end of its stderr:\n\(tail)")
        }
        record(job)
        endJob(id: id, reason: "its driver \(reason)")
        logger.info("job ended", metadata: ["job": "\(id)", "state": "\(JobStore.name(of: job.state))", "code": "\(code)"])
        wakeLogWaiters()
    }

    private static func tail(of path: String, bytes count: Int) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = handle.seekToEndOfFile()
        handle.seek(toFileOffset: size > UInt64(count) ? size - UInt64(count) : 0)
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func stopJob(_ id: String, peer: [UInt8], requestID: UInt64) throws {
        guard let job = jobBook.records[id] else { throw unknownJob(id) }
        if !job.state.isTerminal, jobBook.stopping[id] == nil {
            jobBook.stopping[id] = .now + Self.jobStopGrace
            logger.info("stopping job", metadata: ["job": "\(id)"])
            if job.state == .jobRunning { signalDriver(of: id) }
            // Its executors and actors end now, whatever the driver does with SIGTERM.
            endJob(id: id, reason: "stopped by request")
        }
        try reply(job, requestID: requestID, to: peer)
    }

    /// SIGTERM to the driver's process group now, SIGKILL after the grace period.
    private func signalDriver(of id: String) {
        guard let pid = jobBook.records[id]?.driverPid, pid > 0 else { return }
        kill(-pid, SIGTERM)
        loop.schedule(after: Self.jobStopGrace) { [weak self] in
            self?.assumeIsolated { head in
                guard let job = head.jobBook.records[id], !job.state.isTerminal, job.driverPid == pid else { return }
                head.logger.warning("job driver ignored SIGTERM; killing it", metadata: ["job": "\(id)"])
                kill(-pid, SIGKILL)
            }
        }
    }

    // MARK: logs

    /// Answers a log read if there is something to say.
    /// - Parameter final: answer even with nothing new.
    /// - Returns: whether it answered.
    private func answerLogs(_ read: Shoal_V1_ReadJobLogs, requestID: UInt64, to peer: [UInt8], final: Bool) -> Bool {
        guard let job = jobBook.records[read.jobID] else { return true }
        let limit = Int(read.maxBytes == 0 ? Self.defaultLogChunk : min(read.maxBytes, 16 << 20))
        let out = Self.read(jobBook.stdoutPath(of: read.jobID), from: read.stdoutOffset, limit: limit)
        let err = Self.read(jobBook.stderrPath(of: read.jobID), from: read.stderrOffset, limit: limit)
        guard final || !out.isEmpty || !err.isEmpty || job.state.isTerminal else { return false }
        var logs = Shoal_V1_JobLogs()
        logs.job = job
        logs.stdoutOffset = read.stdoutOffset + UInt64(out.count)
        logs.stderrOffset = read.stderrOffset + UInt64(err.count)
        try? send(Envelope(requestID, .jobLogs(logs)), payloads: [out, err], to: peer)
        return true
    }

    private static func read(_ path: String, from offset: UInt64, limit: Int) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return [] }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, UInt64(info.st_size) > offset else { return [] }
        let count = min(limit, Int(UInt64(info.st_size) - offset))
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, count, off_t(offset)) }
        if got < count { bytes.removeSubrange(max(0, got)...) }
        return bytes
    }

    private func armLogTimer() {
        guard !jobBook.logTimerArmed else { return }
        jobBook.logTimerArmed = true
        loop.schedule(after: .milliseconds(5)) { [weak self] in
            self?.assumeIsolated { head in
                head.jobBook.logTimerArmed = false
                head.wakeLogWaiters()
            }
        }
    }

    /// Answers the waiting log reads that have news or whose time is up; re-arms for the rest.
    private func wakeLogWaiters() {
        let now = ContinuousClock.now
        jobBook.logWaiters.removeAll { waiter in
            answerLogs(waiter.request, requestID: waiter.requestID, to: waiter.peer, final: now >= waiter.deadline)
        }
        if !jobBook.logWaiters.isEmpty { armLogTimer() }
    }
}

/// A job request the head refuses, with the code it answers.
struct JobRequestError: Error, CustomStringConvertible {
    var code: Shoal_V1_ErrorReply.Code
    var message: String
    var description: String { message }
}
