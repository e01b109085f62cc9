import CLibPQ
import Foundation

/// A connection to PostgreSQL through libpq.
public final class PostgresDatabase: SQLDatabase {
    private var connection: OpaquePointer?
    public var backend: StorageBackend { .postgres }
    private let location: String

    /// Connects to `url` (`postgres://user[:password]@host:port/database`).
    /// - Throws: `StorageError` with libpq's reason (password left out of the message).
    public init(url: String) throws {
        location = StorageLocation.postgres(url: url).description
        connection = PQconnectdb(url)
        guard let connection, PQstatus(connection) == CONNECTION_OK else {
            let reason = connection.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            PQfinish(connection)
            connection = nil
            throw StorageError(
                "cannot connect to PostgreSQL at \(location): \(reason.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        try execute("SET client_min_messages TO WARNING")
    }

    deinit { PQfinish(connection) }

    public func execute(_ sql: String) throws {
        let result = PQexec(connection, sql)
        defer { PQclear(result) }
        try check(result, sql)
    }

    @discardableResult
    public func run(_ sql: String, _ parameters: [SQLValue]) throws -> Int {
        let result = try send(sql, parameters)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    public func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow] {
        let result = try send(sql, parameters)
        defer { PQclear(result) }
        let rows = PQntuples(result)
        let columns = PQnfields(result)
        let names = (0..<columns).map { String(cString: PQfname(result, $0)) }
        let types = (0..<columns).map { PQftype(result, $0) }
        return (0..<rows).map { row in
            SQLRow(
                names: names, values: (0..<columns).map { Self.value(result, row, $0, type: types[Int($0)]) })
        }
    }

    /// Like SQLite's `BEGIN IMMEDIATE`, a transaction here first takes a database-wide write
    /// lock (a transaction-scoped advisory lock), so read-then-write transactions never lose
    /// updates; plain queries outside transactions do not wait for it.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN; SELECT pg_advisory_xact_lock(\(Self.writeLock))")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// Sends a statement with its parameters: text for everything but blobs, which go binary.
    private func send(_ sql: String, _ parameters: [SQLValue]) throws -> OpaquePointer? {
        var texts: [[CChar]?] = []
        var blobs: [[UInt8]] = []
        var formats: [Int32] = []
        var lengths: [Int32] = []
        for parameter in parameters {
            switch parameter {
            case .null:
                texts.append(nil)
                formats.append(0)
                lengths.append(0)
            case .integer(let value): appendText(String(value))
            case .real(let value):
                appendText(
                    value.isFinite ? String(format: "%.17g", value) : (value.isNaN ? "NaN" : value > 0 ? "Infinity" : "-Infinity")
                )
            case .text(let value): appendText(value)
            case .blob(let bytes):
                blobs.append(bytes)
                texts.append(nil)
                formats.append(1)
                lengths.append(Int32(bytes.count))
            }
        }
        func appendText(_ text: String) {
            texts.append(Array(text.utf8CString))
            formats.append(0)
            lengths.append(0)
        }
        // Pointers into `texts` and `blobs`, alive for the call.
        var blobIndex = 0
        var storage: [UnsafeMutableRawPointer?] = []
        defer { storage.forEach { $0?.deallocate() } }
        var pointers: [UnsafePointer<CChar>?] = []
        for (index, text) in texts.enumerated() {
            if formats[index] == 1 {
                let bytes = blobs[blobIndex]
                blobIndex += 1
                let memory = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes.count), alignment: 1)
                bytes.withUnsafeBytes {
                    memory.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(memory), byteCount: bytes.count)
                }
                storage.append(memory)
                pointers.append(UnsafePointer(memory.assumingMemoryBound(to: CChar.self)))
            } else if let text {
                let memory = UnsafeMutableRawPointer.allocate(byteCount: text.count, alignment: 1)
                text.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: text.count) }
                storage.append(memory)
                pointers.append(UnsafePointer(memory.assumingMemoryBound(to: CChar.self)))
            } else {
                pointers.append(nil)
            }
        }
        let result = PQexecParams(connection, sql, Int32(parameters.count), nil, pointers, lengths, formats, 0)
        do {
            try check(result, sql)
        } catch {
            PQclear(result)
            throw error
        }
        return result
    }

    private func check(_ result: OpaquePointer?, _ sql: String) throws {
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let message = result.map { String(cString: PQresultErrorMessage($0)) } ?? String(cString: PQerrorMessage(connection))
            let state = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) } ?? ""
            throw StorageError(
                "PostgreSQL (\(location)): \(message.trimmingCharacters(in: .whitespacesAndNewlines)) in: \(sql.prefix(200))",
                code: state)
        }
    }

    /// The advisory lock key of writing transactions ("shoal" in ASCII).
    static let writeLock: Int64 = 0x73_686f_616c

    private static func value(_ result: OpaquePointer?, _ row: Int32, _ column: Int32, type: Oid) -> SQLValue {
        if PQgetisnull(result, row, column) == 1 { return .null }
        guard let raw = PQgetvalue(result, row, column) else { return .null }
        let text = String(cString: raw)
        switch type {
        case 16: return .integer(text == "t" ? 1 : 0)
        case 20, 21, 23: return Int64(text).map(SQLValue.integer) ?? .text(text)
        case 700, 701, 1700: return Double(text).map(SQLValue.real) ?? .text(text)
        case 17:
            // bytea in hex form: \x0a1b…
            var bytes: [UInt8] = []
            let digits = Array(text.utf8.dropFirst(2))
            bytes.reserveCapacity(digits.count / 2)
            var index = 0
            while index + 1 < digits.count {
                bytes.append(hex(digits[index]) << 4 | hex(digits[index + 1]))
                index += 2
            }
            return .blob(bytes)
        default: return .text(text)
        }
    }

    private static func hex(_ digit: UInt8) -> UInt8 {
        switch digit {
        case 48...57: digit - 48
        case 97...102: digit - 87
        case 65...70: digit - 55
        default: 0
        }
    }
}
