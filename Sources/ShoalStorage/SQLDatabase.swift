import Foundation

/// The SQL databases Shoal stores state in.
public enum StorageBackend: String, Sendable {
    case sqlite
    case postgres
}

/// One connection to a SQL database, embedded SQLite or PostgreSQL. Statements are written once
/// for both, with `$1`, `$2`… parameters; where the dialects differ, `Migration` carries both.
///
/// A connection is not thread-safe: one owner (an actor, a thread, or a pool's borrower) uses
/// it at a time.
public protocol SQLDatabase: AnyObject {
    var backend: StorageBackend { get }
    /// Runs statements that take no parameters and return no rows.
    func execute(_ sql: String) throws
    /// Runs one statement. Returns the number of rows it changed.
    @discardableResult func run(_ sql: String, _ parameters: [SQLValue]) throws -> Int
    /// Runs a query and returns its rows.
    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow]
    /// Runs `body` in one transaction that takes the write lock at once: committed when it
    /// returns, rolled back when it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T
}

/// A schema change, in each backend's dialect.
public struct Migration: Sendable {
    public let sqlite: String
    public let postgres: String

    /// The same SQL for both backends.
    public init(_ sql: String) {
        sqlite = sql
        postgres = sql
    }

    public init(sqlite: String, postgres: String) {
        self.sqlite = sqlite
        self.postgres = postgres
    }
}

extension SQLDatabase {
    @discardableResult public func run(_ sql: String) throws -> Int { try run(sql, []) }
    public func query(_ sql: String) throws -> [SQLRow] { try query(sql, []) }

    /// Applies the migrations not applied yet, in order, each in its own transaction, and
    /// records them in `schema_migrations`. Safe when several processes start at once.
    /// - Parameter migrations: the first is version 1.
    public func migrate(_ migrations: [Migration], component: String) throws {
        try execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL, "
                + "applied_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (component, version))")
        for (index, migration) in migrations.enumerated() {
            let version = Int64(index + 1)
            try transaction {
                if backend == .postgres {
                    // One migrating process at a time, per component.
                    try query("SELECT pg_advisory_xact_lock(hashtext($1))", [.text(component)])
                }
                let applied = try query(
                    "SELECT 1 AS found FROM schema_migrations WHERE component = $1 AND version = $2",
                    [.text(component), .integer(version)])
                guard applied.isEmpty else { return }
                try execute(backend == .sqlite ? migration.sqlite : migration.postgres)
                try run(
                    "INSERT INTO schema_migrations (component, version, applied_at) VALUES ($1, $2, $3)",
                    [.text(component), .integer(version), .real(Date().timeIntervalSince1970)])
            }
        }
        let newest = try query("SELECT MAX(version) AS version FROM schema_migrations WHERE component = $1", [.text(component)])
        if let version = newest.first?["version"].integer, version > migrations.count {
            throw StorageError(
                "the \(component) schema in this database is version \(version), newer than this program's \(migrations.count)")
        }
    }
}

/// Where a store lives: a SQLite file, or a PostgreSQL URL.
public enum StorageLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: String)

    /// Parses `postgres://…`, `postgresql://…`, `sqlite:PATH` or a plain file path.
    /// - Throws: `StorageError` for an empty value or an unknown scheme.
    public init(parsing text: String) throws {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
            return
        }
        let path = text.hasPrefix("sqlite:") ? String(text.dropFirst("sqlite:".count)) : text
        guard !path.isEmpty, !path.contains("://") else {
            throw StorageError(
                "'\(text)' is not a store: give a SQLite file path (state/head.sqlite) or a postgres://user@host:port/db URL")
        }
        self = .sqlite(path: path)
    }

    /// Opens a connection.
    public func open() throws -> any SQLDatabase {
        switch self {
        case .sqlite(let path): try SQLiteDatabase(path: path)
        case .postgres(let url): try PostgresDatabase(url: url)
        }
    }

    /// The location with any password left out, for logs and messages.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite:\(path)"
        case .postgres(let url):
            guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") else { return url }
            let credentials = url[scheme.upperBound..<at]
            let user = credentials.split(separator: ":").first.map(String.init) ?? ""
            return String(url[..<scheme.upperBound]) + user + String(url[at...])
        }
    }
}

/// A fixed set of connections lent to one borrower at a time.
public final class DatabasePool: @unchecked Sendable {
    private let condition = NSCondition()
    private var idle: [any SQLDatabase]
    /// The store the connections reach.
    public let location: StorageLocation
    public let size: Int

    /// Opens `size` connections to `location`.
    public init(_ location: StorageLocation, size: Int) throws {
        precondition(size > 0)
        self.location = location
        self.size = size
        idle = try (0..<size).map { _ in try location.open() }
    }

    /// Lends a connection to `body`, waiting up to `timeout` for one to come free.
    public func withDatabase<T>(timeout: Duration = .seconds(30), _ body: (any SQLDatabase) throws -> T) throws -> T {
        let deadline = Date().addingTimeInterval(
            Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        condition.lock()
        while idle.isEmpty {
            guard condition.wait(until: deadline) else {
                condition.unlock()
                throw StorageError("no connection to \(location) came free within \(timeout) (pool of \(size))")
            }
        }
        let database = idle.removeLast()
        condition.unlock()
        defer {
            condition.lock()
            idle.append(database)
            condition.signal()
            condition.unlock()
        }
        return try body(database)
    }
}
