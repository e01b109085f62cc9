import Foundation
import ShoalStorage
import ShoalTestSupport
import ShoalWire
import Synchronization
import Testing

@testable import ShoalRuntime

/// The storage layer, the same suite on both backends.
@Suite struct StorageTests {
    @Test(arguments: [StorageBackend.sqlite, .postgres])
    func valuesOfEveryTypeRoundTrip(_ backend: StorageBackend) throws {
        let store = try TestStore.make(backend)
        defer { store.remove() }
        let database = try store.location.open()
        #expect(database.backend == backend)
        try database.execute(
            "CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE PRECISION, data \(backend == .sqlite ? "BLOB" : "BYTEA"), note TEXT)"
        )
        let blob: [UInt8] = [0, 1, 2, 255, 0x5c, 0x78]
        // Parameters numbered out of order, and a `$` inside a string literal left alone.
        try database.run(
            "INSERT INTO things (name, id, score, data, note) VALUES ($2, $1, $3, $4, $5)",
            [.integer(7), .text("it's $1 ü"), .real(-1.25e-7), .blob(blob), .null])
        try database.run(
            "INSERT INTO things (id, name, score, data, note) VALUES ($1, 'costs $5', $2, $3, 'x')",
            [.integer(8), .real(0), .blob([])])
        let rows = try database.query("SELECT * FROM things ORDER BY id")
        #expect(rows.count == 2)
        #expect(rows[0]["id"] == .integer(7))
        #expect(rows[0]["name"] == .text("it's $1 ü"))
        #expect(rows[0]["score"].real == -1.25e-7)
        #expect(rows[0]["data"].blob == blob)
        #expect(rows[0]["note"] == .null)
        #expect(rows[1]["name"] == .text("costs $5"))
        #expect(rows[1]["data"].blob == [])
        #expect(try database.run("UPDATE things SET score = score + $1", [.real(1)]) == 2)

        // A query whose statement is cached follows a schema change made through another
        // connection: a renamed column (the same count) and an added one.
        let other = try store.location.open()
        try other.execute("ALTER TABLE things RENAME COLUMN note TO remark")
        let renamed = try database.query("SELECT * FROM things ORDER BY id")
        #expect(renamed[1]["remark"] == .text("x") && renamed[1]["note"] == .null)
        try other.execute("ALTER TABLE things ADD COLUMN extra TEXT")
        try other.run("UPDATE things SET extra = 'more'")
        let added = try database.query("SELECT * FROM things ORDER BY id")
        #expect(added[1]["extra"] == .text("more") && added[1]["remark"] == .text("x") && added[1]["id"] == .integer(8))
    }

    @Test(arguments: [StorageBackend.sqlite, .postgres])
    func transactionsCommitOrRollBackWhole(_ backend: StorageBackend) throws {
        let store = try TestStore.make(backend)
        defer { store.remove() }
        let database = try store.location.open()
        try database.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
        struct Abort: Error {}
        #expect(throws: Abort.self) {
            try database.transaction {
                try database.run("INSERT INTO entries VALUES ($1, $2)", [.integer(1), .text("half")])
                throw Abort()
            }
        }
        #expect(try database.query("SELECT * FROM entries").isEmpty)
        try database.transaction { try database.run("INSERT INTO entries VALUES ($1, $2)", [.integer(1), .text("whole")]) }
        do {
            try database.run("INSERT INTO entries VALUES ($1, $2)", [.integer(1), .text("again")])
            Issue.record("a duplicate key must be refused")
        } catch let error as StorageError {
            #expect(error.isUniqueViolation, "\(error.code): \(error.message)")
        }
        #expect(throws: StorageError.self) { try database.query("SELECT * FROM nowhere") }
        #expect(throws: StorageError.self) { try database.run("INSERT INTO entries VALUES ($1, $2)", [.integer(2), .null]) }
    }

    @Test(arguments: [StorageBackend.sqlite, .postgres])
    func migrationsApplyOnceAndRefuseANewerSchema(_ backend: StorageBackend) throws {
        let store = try TestStore.make(backend)
        defer { store.remove() }
        let migrations = [
            Migration("CREATE TABLE a (id INTEGER PRIMARY KEY)"),
            Migration(sqlite: "ALTER TABLE a ADD COLUMN b TEXT", postgres: "ALTER TABLE a ADD COLUMN b VARCHAR(10)"),
        ]
        try store.location.open().migrate(migrations, component: "test")
        try store.location.open().migrate(migrations, component: "test")
        let database = try store.location.open()
        try database.run("INSERT INTO a (id, b) VALUES (1, 'x')")
        #expect(
            try database.query("SELECT COUNT(*) AS n FROM schema_migrations WHERE component = 'test'").first?["n"].integer == 2)
        #expect(throws: StorageError.self) { try database.migrate(Array(migrations.prefix(1)), component: "test") }
    }

    @Test(arguments: [StorageBackend.sqlite, .postgres])
    func aPoolOfConnectionsCountsExactlyUnderContention(_ backend: StorageBackend) throws {
        let store = try TestStore.make(backend)
        defer { store.remove() }
        try store.location.open().execute(
            "CREATE TABLE counter (id INTEGER PRIMARY KEY, value BIGINT NOT NULL); INSERT INTO counter VALUES (1, 0)")
        let pool = try DatabasePool(store.location, size: 4)
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<50 {
                do {
                    try pool.withDatabase { database in
                        try database.transaction {
                            let value = try database.query("SELECT value FROM counter WHERE id = 1").first?["value"].integer ?? -1
                            try database.run("UPDATE counter SET value = $1 WHERE id = 1", [.integer(value + 1)])
                        }
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(3) })")
        let total = try pool.withDatabase { try $0.query("SELECT value FROM counter").first?["value"].integer }
        #expect(total == 400, "transactions that read and write lost updates")
    }

    @Test(arguments: [StorageBackend.sqlite, .postgres])
    func theJobTableKeepsRecordsAcrossReopening(_ backend: StorageBackend) throws {
        let store = try TestStore.make(backend)
        defer { store.remove() }
        var job = JobInfo()
        job.jobID = "a"
        job.state = .jobRunning
        job.entrypoint = ["./train", "--epochs", "3"]
        job.submittedAt = 1000.5
        job.driverPid = 42
        try JobStore(store.location).save(job)
        job.state = .jobFailed
        job.hasExitCode_p = true
        job.exitCode = 3
        job.message = "exited with status 3"
        try JobStore(store.location).save(job)
        #expect(try JobStore(store.location).all() == [job])
    }

    @Test func badLocationsAreClearErrors() throws {
        #expect(throws: StorageError.self) { try StorageLocation(parsing: "") }
        #expect(throws: StorageError.self) { try StorageLocation(parsing: "mysql://x/y") }
        #expect(throws: StorageError.self) { try SQLiteDatabase(path: "/proc/no/such/folder/x.sqlite") }
        do {
            _ = try PostgresDatabase(url: "postgres://nobody:secret@127.0.0.1:1/none")
            Issue.record("connecting to a closed port must fail")
        } catch let error as StorageError {
            #expect(
                error.message.contains("cannot connect to PostgreSQL at postgres://nobody@127.0.0.1:1/none"), "\(error.message)")
            #expect(!error.message.contains("secret"), "the password must not appear in messages")
        }
    }
}
