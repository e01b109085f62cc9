import CSQLite
import Foundation

/// An error from the storage layer, with the statement or file it concerns.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// The backend's error code: PostgreSQL's SQLSTATE, or SQLite's extended result code.
    public let code: String
    public init(_ message: String, code: String = "") {
        self.message = message
        self.code = code
    }
    public var description: String { message }

    /// A unique or primary key constraint refused the write.
    public var isUniqueViolation: Bool { code == "23505" || code == "sqlite:2067" || code == "sqlite:1555" }
}

/// A value bound to a statement parameter or read from a column.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
    public var real: Double? {
        switch self {
        case .real(let value): value
        case .integer(let value): Double(value)
        default: nil
        }
    }
    public var text: String? { if case .text(let value) = self { value } else { nil } }
    public var blob: [UInt8]? { if case .blob(let value) = self { value } else { nil } }
}

/// One row of a query's result, its columns by name.
public struct SQLRow: Sendable {
    /// The query's column names, one array shared by all its rows.
    public let names: [String]
    /// The values, in the order of `names`.
    public let values: [SQLValue]

    public init(names: [String], values: [SQLValue]) {
        self.names = names
        self.values = values
    }

    /// The value of the column `name`, or null when the query has none by that name. Found by
    /// looking along the names (a row has a few columns; a dictionary per row cost more, in
    /// hashing and allocation, than the SQL that filled it).
    public subscript(_ name: String) -> SQLValue {
        guard let index = names.firstIndex(of: name) else { return .null }
        return values[index]
    }
}

/// An embedded SQLite database in a file (or in memory), in WAL mode.
///
/// Not thread-safe: one owner (an actor, or one thread) uses it. Statements are prepared once
/// and cached by their text.
public final class SQLiteDatabase: SQLDatabase {
    public var backend: StorageBackend { .sqlite }
    private var handle: OpaquePointer?
    /// Prepared statements by their text, with their column names and how many times SQLite
    /// had prepared each again (after a schema change) when the names were read.
    private var statements: [String: (statement: OpaquePointer, names: [String], reprepared: Int32)] = [:]
    /// The file, or `:memory:`.
    public let path: String

    /// Opens (creating if needed) the database at `path`; `:memory:` for one that lives in memory.
    /// - Throws: `StorageError` naming the file when it cannot be opened.
    public init(path: String) throws {
        self.path = path
        if path != ":memory:" {
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty {
                try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
        }
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let result = sqlite3_open_v2(path, &handle, flags, nil)
        guard result == SQLITE_OK else {
            let reason = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(result)"
            sqlite3_close(handle)
            handle = nil
            throw StorageError("cannot open the SQLite database \(path): \(reason)")
        }
        sqlite3_busy_timeout(handle, 10_000)
        sqlite3_extended_result_codes(handle, 1)
        if path != ":memory:" {
            try execute("PRAGMA journal_mode=WAL")
            try execute("PRAGMA synchronous=NORMAL")
        }
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        for cached in statements.values { sqlite3_finalize(cached.statement) }
        sqlite3_close(handle)
    }

    /// Runs statements that take no parameters and return no rows (several, `;`-separated).
    public func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(handle, sql, nil, nil, &message) == SQLITE_OK else {
            let reason = message.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(message)
            throw StorageError("SQLite (\(path)): \(reason) in: \(sql.prefix(200))")
        }
    }

    /// Runs one statement with `parameters` bound to `?1`, `?2`…
    /// - Returns: the number of rows it changed.
    @discardableResult
    public func run(_ sql: String, _ parameters: [SQLValue] = []) throws -> Int {
        let statement = try prepared(sql, parameters).statement
        defer { sqlite3_reset(statement) }
        let result = sqlite3_step(statement)
        guard result == SQLITE_DONE || result == SQLITE_ROW else { throw failure(sql) }
        return Int(sqlite3_changes(handle))
    }

    /// Runs a query and returns its rows.
    public func query(_ sql: String, _ parameters: [SQLValue] = []) throws -> [SQLRow] {
        let (statement, cached, reprepared) = try prepared(sql, parameters)
        defer { sqlite3_reset(statement) }
        var rows: [SQLRow] = []
        var names = cached
        var count = Int32(names.count)
        while true {
            let result = sqlite3_step(statement)
            if result == SQLITE_DONE { break }
            guard result == SQLITE_ROW else { throw failure(sql) }
            // SQLite prepares a statement anew at a step after a schema change: its columns
            // may differ from the names read before.
            if rows.isEmpty, sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_REPREPARE, 0) != reprepared {
                names = Self.columnNames(statement)
                count = Int32(names.count)
                statements[sql] = (statement, names, sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_REPREPARE, 0))
            }
            var values: [SQLValue] = []
            values.reserveCapacity(Int(count))
            for index in 0..<count { values.append(Self.column(statement, index)) }
            rows.append(SQLRow(names: names, values: values))
        }
        return rows
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// The statement for `sql` (prepared once), its column names and re-prepare count as cached,
    /// with `parameters` bound.
    private func prepared(_ sql: String, _ parameters: [SQLValue]) throws -> (
        statement: OpaquePointer, names: [String], reprepared: Int32
    ) {
        let entry: (statement: OpaquePointer, names: [String], reprepared: Int32)
        if let cached = statements[sql] {
            entry = cached
        } else {
            var created: OpaquePointer?
            // `$1` parameters (the dialect both backends share) become SQLite's `?1`.
            guard sqlite3_prepare_v2(handle, Self.numberedParameters(sql), -1, &created, nil) == SQLITE_OK, let created else {
                throw failure(sql)
            }
            entry = (created, Self.columnNames(created), sqlite3_stmt_status(created, SQLITE_STMTSTATUS_REPREPARE, 0))
            statements[sql] = entry
        }
        let statement = entry.statement
        sqlite3_clear_bindings(statement)
        for (offset, value) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let result: Int32
            switch value {
            case .null: result = sqlite3_bind_null(statement, index)
            case .integer(let number): result = sqlite3_bind_int64(statement, index, number)
            case .real(let number): result = sqlite3_bind_double(statement, index, number)
            case .text(let text): result = sqlite3_bind_text(statement, index, text, -1, Self.transient)
            case .blob(let bytes):
                result = bytes.withUnsafeBytes {
                    sqlite3_bind_blob64(statement, index, $0.baseAddress, sqlite3_uint64($0.count), Self.transient)
                }
            }
            guard result == SQLITE_OK else { throw failure(sql) }
        }
        return entry
    }


    private static func columnNames(_ statement: OpaquePointer) -> [String] {
        (0..<sqlite3_column_count(statement)).map { String(cString: sqlite3_column_name(statement, $0)) }
    }

    /// `$N` outside quotes rewritten as `?N`.
    static func numberedParameters(_ sql: String) -> String {
        var output = ""
        output.reserveCapacity(sql.utf8.count)
        var quote: Character?
        var previous: Character = " "
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                output.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                output.append(character)
            } else if character == "$" && !(previous.isLetter || previous.isNumber || previous == "_") {
                output.append("?")
            } else {
                output.append(character)
            }
            previous = character
        }
        return output
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private static func column(_ statement: OpaquePointer, _ index: Int32) -> SQLValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
        case SQLITE_TEXT:
            guard let text = sqlite3_column_text(statement, index) else { return .text("") }
            let count = Int(sqlite3_column_bytes(statement, index))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(statement, index))
            guard count > 0, let bytes = sqlite3_column_blob(statement, index) else { return .blob([]) }
            return .blob([UInt8](UnsafeRawBufferPointer(start: bytes, count: count)))
        default: return .null
        }
    }

    private func failure(_ sql: String) -> StorageError {
        StorageError(
            "SQLite (\(path)): \(String(cString: sqlite3_errmsg(handle))) in: \(sql.prefix(200))",
            code: "sqlite:\(sqlite3_extended_errcode(handle))")
    }
}
