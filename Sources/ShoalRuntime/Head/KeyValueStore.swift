import Foundation
import ShoalStorage

/// The head's key-value store (Ray's internal KV): small state that must outlive the driver
/// that wrote it — a search's experiment, say — in the head's store.
final class KeyValueStore {
    private let database: any SQLDatabase

    /// The largest value kept (16 MiB); larger state belongs in files or the object store.
    static let maxValueSize = 16 << 20
    /// The longest namespace or key.
    static let maxKeyLength = 1024

    static let migrations = [
        Migration(
            sqlite: """
                CREATE TABLE kv (
                    namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                    PRIMARY KEY (namespace, key));
                """,
            postgres: """
                CREATE TABLE kv (
                    namespace TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                    PRIMARY KEY (namespace, key));
                """)
    ]

    init(_ location: StorageLocation) throws {
        database = try location.open()
        try database.migrate(Self.migrations, component: "kv")
    }

    /// Why a namespace, key or value cannot be stored, or nil.
    static func problem(namespace: String, key: String, value: Int = 0) -> String? {
        if namespace.isEmpty || key.isEmpty { return "the namespace and the key must not be empty" }
        if namespace.utf8.count > maxKeyLength || key.utf8.count > maxKeyLength {
            return "the namespace and the key must be at most \(maxKeyLength) bytes"
        }
        if value > maxValueSize { return "a value must be at most \(maxValueSize >> 20) MiB, not \(value) bytes" }
        return nil
    }

    func put(namespace: String, key: String, value: [UInt8]) throws {
        try database.run(
            """
            INSERT INTO kv (namespace, key, value, updated_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (namespace, key) DO UPDATE SET value = $3, updated_at = $4
            """, [.text(namespace), .text(key), .blob(value), .real(Date().timeIntervalSince1970)])
    }

    func get(namespace: String, key: String) throws -> [UInt8]? {
        try database.query("SELECT value FROM kv WHERE namespace = $1 AND key = $2", [.text(namespace), .text(key)]).first?[
            "value"
        ].blob
    }

    /// The namespace's keys starting with `prefix`, in order.
    func keys(namespace: String, prefix: String) throws -> [String] {
        try database.query("SELECT key FROM kv WHERE namespace = $1 ORDER BY key", [.text(namespace)])
            .compactMap { $0["key"].text }.filter { $0.hasPrefix(prefix) }
    }

    /// - Returns: whether the key was there.
    @discardableResult
    func delete(namespace: String, key: String) throws -> Bool {
        try database.run("DELETE FROM kv WHERE namespace = $1 AND key = $2", [.text(namespace), .text(key)]) > 0
    }
}
