import Foundation
import ShoalStorage

/// Stores for tests, one fresh per call: a SQLite file in a temporary folder, or a new database
/// on the PostgreSQL server that `make test` starts (`SHOAL_TEST_POSTGRES`, an admin URL).
public final class TestStore: Sendable {
    public let location: StorageLocation
    private let cleanup: @Sendable () -> Void

    private init(location: StorageLocation, cleanup: @escaping @Sendable () -> Void) {
        self.location = location
        self.cleanup = cleanup
    }

    /// The PostgreSQL server's URL, from `SHOAL_TEST_POSTGRES`.
    /// - Throws: when it is not set: the PostgreSQL tests must not pass by skipping.
    public static func postgresURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["SHOAL_TEST_POSTGRES"], !url.isEmpty else {
            throw StorageError(
                "SHOAL_TEST_POSTGRES is not set: run the tests with `make test`, which starts PostgreSQL "
                    + "(scripts/test-postgres.sh start; SHOAL_TEST_POSTGRES=$(scripts/test-postgres.sh url))")
        }
        return url
    }

    /// A fresh, empty store of `backend`.
    public static func make(_ backend: StorageBackend) throws -> TestStore {
        let name = "t\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        switch backend {
        case .sqlite:
            let folder = NSTemporaryDirectory() + "shoal-store-" + name
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            return TestStore(location: .sqlite(path: folder + "/store.sqlite")) {
                try? FileManager.default.removeItem(atPath: folder)
            }
        case .postgres:
            let admin = try postgresURL()
            try PostgresDatabase(url: admin).execute("CREATE DATABASE \(name)")
            guard let slash = admin.lastIndex(of: "/") else {
                throw StorageError("SHOAL_TEST_POSTGRES has no database: \(admin)")
            }
            return TestStore(location: .postgres(url: String(admin[...slash]) + name)) {
                try? PostgresDatabase(url: admin).execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            }
        }
    }

    /// Removes the store.
    public func remove() { cleanup() }
}
