import Foundation
import ShoalTransport
import ShoalWire

/// A submitted job's state.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case pending = "PENDING"
    case running = "RUNNING"
    case succeeded = "SUCCEEDED"
    case failed = "FAILED"
    case stopped = "STOPPED"

    /// Whether the job has ended.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .stopped }
}

/// A submitted job, as the head's job table records it.
public struct Job: Sendable, Equatable {
    public var id: String
    public var state: JobState
    public var entrypoint: [String]
    public var submittedAt: Date
    public var startedAt: Date?
    public var endedAt: Date?
    /// The driver's exit code; 128 + the signal when a signal ended it.
    public var exitCode: Int32?
    /// Why it ended; for a failure, with the end of its stderr.
    public var message: String
    public var workingDirSHA256: String
    public var driverPID: Int32

    init(_ info: Shoal_V1_JobInfo) {
        id = info.jobID
        state = JobState(rawValue: JobStore.name(of: info.state)) ?? .failed
        entrypoint = info.entrypoint
        submittedAt = Date(timeIntervalSince1970: info.submittedAt)
        startedAt = info.startedAt > 0 ? Date(timeIntervalSince1970: info.startedAt) : nil
        endedAt = info.endedAt > 0 ? Date(timeIntervalSince1970: info.endedAt) : nil
        exitCode = info.hasExitCode_p ? info.exitCode : nil
        message = info.message
        workingDirSHA256 = info.workingDirSha256
        driverPID = info.driverPid
    }
}

/// Output of a job read from the head: new bytes of each stream and where to read on.
public struct JobOutput: Sendable {
    public var job: Job
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var stdoutOffset: UInt64
    public var stderrOffset: UInt64
}

/// Submits and manages jobs on a head (`cluster submit`, `cluster job …`). One user at a time:
/// it owns a socket.
public final class JobClient {
    /// The head's address, `tcp://host:port`.
    public let address: String
    private let channel: RequestChannel
    private let timeout: Duration

    /// Connects to the head at `address` (`host:port` or `tcp://host:port`).
    public init(address: String, timeout: Duration = .seconds(10)) throws {
        self.address = address.hasPrefix("tcp://") ? address : "tcp://" + address
        self.timeout = timeout
        channel = try RequestChannel(address: self.address, peer: "head")
    }

    /// Packs and uploads a working directory, unless the head has it already.
    /// - Returns: the archive's SHA-256, its size, and whether it had to be uploaded.
    /// - Throws: `ClusterError.invalidArgument` when the folder is missing or over the limit
    ///   (the smaller of `maxSize` and the head's).
    public func uploadWorkingDirectory(
        _ path: String, maxSize: UInt64 = WorkingDirectoryArchive.defaultMaxSize
    ) throws -> (
        sha256: String, bytes: Int, files: Int, uploaded: Bool
    ) {
        var check = Shoal_V1_CheckWorkingDir()
        check.sha256 = String(repeating: "0", count: 64)
        guard case .workingDirState(let limits) = try request(.checkWorkingDir(check)).body else {
            throw ClusterError.peerError("the head answered a working directory check with something else")
        }
        let limit = limits.maxSize > 0 ? min(maxSize, limits.maxSize) : maxSize
        let archive = try WorkingDirectoryArchive.pack(directory: path, maxSize: limit)
        check.sha256 = archive.sha256
        check.size = UInt64(archive.bytes.count)
        guard case .workingDirState(let state) = try request(.checkWorkingDir(check)).body else {
            throw ClusterError.peerError("the head answered a working directory check with something else")
        }
        if state.present { return (archive.sha256, archive.bytes.count, archive.fileCount, false) }
        var upload = Shoal_V1_UploadWorkingDir()
        upload.sha256 = archive.sha256
        _ = try request(.uploadWorkingDir(upload), payloads: [archive.bytes], timeout: max(timeout, .seconds(120)))
        return (archive.sha256, archive.bytes.count, archive.fileCount, true)
    }

    /// Submits `entrypoint` as a new job.
    /// - Parameters:
    ///   - jobID: the job's id; nil lets the head pick one.
    ///   - environment: variables added to the driver's environment.
    ///   - workingDirSHA256: a working directory uploaded with `uploadWorkingDirectory`.
    public func submit(
        entrypoint: [String], jobID: String? = nil, environment: [String: String] = [:], workingDirSHA256: String? = nil
    ) throws -> Job {
        var submit = Shoal_V1_SubmitJob()
        submit.entrypoint = entrypoint
        submit.jobID = jobID ?? ""
        submit.env = environment
        submit.workingDirSha256 = workingDirSHA256 ?? ""
        return try job(from: request(.submitJob(submit)))
    }

    /// Every job in the head's table, oldest first.
    public func list() throws -> [Job] {
        guard case .jobList(let list) = try request(.listJobs(Shoal_V1_ListJobs())).body else {
            throw ClusterError.peerError("the head answered a job list request with something else")
        }
        return list.jobs.map(Job.init)
    }

    /// One job's record.
    /// - Throws: `ClusterError.peerError` naming the id when there is no such job.
    public func status(_ id: String) throws -> Job {
        var get = Shoal_V1_GetJob()
        get.jobID = id
        return try job(from: request(.getJob(get)))
    }

    /// Asks the head to stop a job: SIGTERM to its driver, SIGKILL after a grace period; its
    /// executors and job-scoped actors end at once.
    /// - Returns: the job's record when the request was taken (it ends shortly after).
    public func stop(_ id: String) throws -> Job {
        var stop = Shoal_V1_StopJob()
        stop.jobID = id
        return try job(from: request(.stopJob(stop)))
    }

    /// Reads a job's output from the given offsets.
    /// - Parameter wait: how long the head may hold the request for new output.
    public func readOutput(
        _ id: String, stdoutOffset: UInt64 = 0, stderrOffset: UInt64 = 0, wait: Duration = .zero
    ) throws
        -> JobOutput
    {
        var read = Shoal_V1_ReadJobLogs()
        read.jobID = id
        read.stdoutOffset = stdoutOffset
        read.stderrOffset = stderrOffset
        read.waitMs = UInt32(clamping: wait.milliseconds)
        let reply = try channel.request(.readJobLogs(read), timeout: timeout + wait)
        guard case .jobLogs(let logs) = reply.envelope.body else {
            throw ClusterError.peerError("the head answered a log read with something else")
        }
        return JobOutput(
            job: Job(logs.job), stdout: (try? reply.payload(1)) ?? [], stderr: (try? reply.payload(2)) ?? [],
            stdoutOffset: logs.stdoutOffset, stderrOffset: logs.stderrOffset)
    }

    /// Follows a job's output until it ends, handing each piece to `output`.
    /// - Parameter shouldStop: polled between reads; when it turns true the job is stopped once
    ///   and following goes on until it has ended.
    /// - Returns: the ended job.
    public func follow(
        _ id: String, shouldStop: () -> Bool = { false }, output: (_ stdout: [UInt8], _ stderr: [UInt8]) -> Void
    ) throws -> Job {
        var stdoutOffset: UInt64 = 0
        var stderrOffset: UInt64 = 0
        var stopSent = false
        while true {
            if !stopSent && shouldStop() {
                stopSent = true
                _ = try stop(id)
            }
            let piece = try readOutput(id, stdoutOffset: stdoutOffset, stderrOffset: stderrOffset, wait: .milliseconds(250))
            if !piece.stdout.isEmpty || !piece.stderr.isEmpty { output(piece.stdout, piece.stderr) }
            let drained = piece.stdoutOffset == stdoutOffset && piece.stderrOffset == stderrOffset
            stdoutOffset = piece.stdoutOffset
            stderrOffset = piece.stderrOffset
            if piece.job.state.isTerminal && drained { return piece.job }
        }
    }

    private func job(from envelope: Envelope) throws -> Job {
        guard case .jobReply(let reply) = envelope.body else {
            throw ClusterError.peerError("the head answered a job request with something else")
        }
        return Job(reply.job)
    }

    private func request(_ body: Envelope.OneOf_Body, payloads: [[UInt8]] = [], timeout: Duration? = nil) throws -> Envelope {
        try channel.request(body, payloads: payloads, timeout: timeout ?? self.timeout).envelope
    }
}
