import Foundation
import ShoalStorage
import ShoalWire

/// A submitted job's record.
typealias JobInfo = Shoal_V1_JobInfo

/// The head's table of submitted jobs, in its SQLite store, so that a restarted head still
/// knows them.
final class JobStore {
    private let database: any SQLDatabase

    /// The schema, one script per version.
    static let migrations = [
        Migration(
            """
            CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                entrypoint TEXT NOT NULL,
                working_dir_sha256 TEXT NOT NULL,
                submitted_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION NOT NULL DEFAULT 0,
                ended_at DOUBLE PRECISION NOT NULL DEFAULT 0,
                exit_code INTEGER,
                message TEXT NOT NULL DEFAULT '',
                driver_pid INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX jobs_by_submission ON jobs (submitted_at);
            """)
    ]

    /// Opens the store at `location`.
    init(_ location: StorageLocation) throws {
        database = try location.open()
        try database.migrate(Self.migrations, component: "jobs")
    }

    /// Writes a job's record, replacing the one with its id.
    func save(_ job: JobInfo) throws {
        let entrypoint = String(decoding: try JSONEncoder().encode(job.entrypoint), as: UTF8.self)
        try database.run(
            """
            INSERT INTO jobs (id, state, entrypoint, working_dir_sha256, submitted_at, started_at, ended_at,
                              exit_code, message, driver_pid)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (id) DO UPDATE SET state = $2, started_at = $6, ended_at = $7, exit_code = $8,
                                           message = $9, driver_pid = $10
            """,
            [
                .text(job.jobID), .text(Self.name(of: job.state)), .text(entrypoint), .text(job.workingDirSha256),
                .real(job.submittedAt), .real(job.startedAt), .real(job.endedAt),
                job.hasExitCode_p ? .integer(Int64(job.exitCode)) : .null, .text(job.message),
                .integer(Int64(job.driverPid)),
            ])
    }

    /// Every job, oldest first.
    func all() throws -> [JobInfo] {
        try database.query("SELECT * FROM jobs ORDER BY submitted_at, id").map(Self.job(from:))
    }

    private static func job(from row: SQLRow) -> JobInfo {
        var job = JobInfo()
        job.jobID = row["id"].text ?? ""
        job.state = state(named: row["state"].text ?? "")
        job.entrypoint = (try? JSONDecoder().decode([String].self, from: Data((row["entrypoint"].text ?? "[]").utf8))) ?? []
        job.workingDirSha256 = row["working_dir_sha256"].text ?? ""
        job.submittedAt = row["submitted_at"].real ?? 0
        job.startedAt = row["started_at"].real ?? 0
        job.endedAt = row["ended_at"].real ?? 0
        if let code = row["exit_code"].integer {
            job.hasExitCode_p = true
            job.exitCode = Int32(truncatingIfNeeded: code)
        }
        job.message = row["message"].text ?? ""
        job.driverPid = Int32(truncatingIfNeeded: row["driver_pid"].integer ?? 0)
        return job
    }

    static func name(of state: Shoal_V1_JobState) -> String {
        switch state {
        case .jobPending: "PENDING"
        case .jobRunning: "RUNNING"
        case .jobSucceeded: "SUCCEEDED"
        case .jobFailed: "FAILED"
        case .jobStopped: "STOPPED"
        case .UNRECOGNIZED(let value): "UNKNOWN(\(value))"
        }
    }

    static func state(named name: String) -> Shoal_V1_JobState {
        switch name {
        case "PENDING": .jobPending
        case "RUNNING": .jobRunning
        case "SUCCEEDED": .jobSucceeded
        case "STOPPED": .jobStopped
        default: .jobFailed
        }
    }
}

extension Shoal_V1_JobState {
    /// Whether the job has ended.
    var isTerminal: Bool { self == .jobSucceeded || self == .jobFailed || self == .jobStopped }
}
