import Foundation
import ShoalStorage
import ShoalWire
import SwiftProtobuf

/// Detached actors, kept in the head's store so that a restarted head rebuilds them: each
/// row holds the actor's creation request (type, name, options) and its constructor arguments.
final class ActorStore {
    private let database: any SQLDatabase

    static let migrations = [
        Migration(
            sqlite: """
                CREATE TABLE detached_actors (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, type_name TEXT NOT NULL, request BLOB NOT NULL,
                    arguments BLOB NOT NULL, job_id TEXT NOT NULL, package TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
                """,
            postgres: """
                CREATE TABLE detached_actors (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, type_name TEXT NOT NULL, request BYTEA NOT NULL,
                    arguments BYTEA NOT NULL, job_id TEXT NOT NULL, package TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
                """)
    ]

    struct Row {
        var id: String
        var request: Shoal_V1_CreateActor
        var arguments: [UInt8]
        var jobID: String
        var package: String
    }

    init(_ location: StorageLocation) throws {
        database = try location.open()
        try database.migrate(Self.migrations, component: "detached-actors")
    }

    func save(id: String, request: Shoal_V1_CreateActor, arguments: [UInt8], jobID: String, package: String) throws {
        try database.run(
            """
            INSERT INTO detached_actors (id, name, type_name, request, arguments, job_id, package, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            [
                .text(id), .text(request.name), .text(request.typeName), .blob(try request.serializedBytes()), .blob(arguments),
                .text(jobID), .text(package), .real(Date().timeIntervalSince1970),
            ])
    }

    func delete(id: String) throws {
        try database.run("DELETE FROM detached_actors WHERE id = $1", [.text(id)])
    }

    /// Every stored actor; rows that no longer parse are reported in `damaged`.
    func all() throws -> (rows: [Row], damaged: [String]) {
        var rows: [Row] = []
        var damaged: [String] = []
        for row in try database.query("SELECT * FROM detached_actors ORDER BY created_at") {
            let id = row["id"].text ?? ""
            guard let bytes = row["request"].blob, let request = try? Shoal_V1_CreateActor(serializedBytes: bytes) else {
                damaged.append(id)
                continue
            }
            rows.append(
                Row(
                    id: id, request: request, arguments: row["arguments"].blob ?? [], jobID: row["job_id"].text ?? "",
                    package: row["package"].text ?? ""))
        }
        return (rows, damaged)
    }
}
