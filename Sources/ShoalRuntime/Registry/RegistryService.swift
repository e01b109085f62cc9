import Foundation
import ShoalStorage
import ShoalWire

/// The model registry: registered models and their numbered versions with parameters, metrics,
/// tags, lineage and a content-addressed artifact; aliases, approvals, and an append-only audit
/// log of every change. Thread-safe: requests run on any thread, each on a pooled connection,
/// and the database's write transactions keep version numbers gapless and unique.
public final class RegistryService: Sendable {
    public let pool: DatabasePool
    public let artifacts: ArtifactStore
    /// Aliases that move only to a version approved for them by someone other than its registrant.
    public let protectedAliases: Set<String>
    /// Artifacts arriving in pieces through the socket.
    let uploads: ArtifactUploads

    static let migrations: [Migration] = {
        let tables = """
            CREATE TABLE registered_models (
                name TEXT PRIMARY KEY, description TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                created_by TEXT NOT NULL, latest_version INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE model_tags (
                model TEXT NOT NULL REFERENCES registered_models (name), key TEXT NOT NULL, value TEXT NOT NULL,
                PRIMARY KEY (model, key));
            CREATE TABLE model_versions (
                model TEXT NOT NULL REFERENCES registered_models (name), version INTEGER NOT NULL, status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL, description TEXT NOT NULL,
                parameters TEXT NOT NULL, artifact_sha256 TEXT NOT NULL, artifact_size BIGINT NOT NULL,
                artifact_format TEXT NOT NULL, model_card TEXT NOT NULL, job_id TEXT NOT NULL, task_id TEXT NOT NULL,
                data_sha256 TEXT NOT NULL, code_sha256 TEXT NOT NULL, parent_version INTEGER NOT NULL,
                PRIMARY KEY (model, version));
            CREATE TABLE version_tags (
                model TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                PRIMARY KEY (model, version, key), FOREIGN KEY (model, version) REFERENCES model_versions (model, version));
            CREATE TABLE metrics (
                model TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, step BIGINT NOT NULL,
                value DOUBLE PRECISION NOT NULL, PRIMARY KEY (model, version, key, step),
                FOREIGN KEY (model, version) REFERENCES model_versions (model, version));
            CREATE TABLE aliases (
                model TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                updated_by TEXT NOT NULL, PRIMARY KEY (model, alias),
                FOREIGN KEY (model, version) REFERENCES model_versions (model, version));
            CREATE TABLE approvals (
                model TEXT NOT NULL, version INTEGER NOT NULL, alias TEXT NOT NULL, approved_by TEXT NOT NULL,
                approved_at DOUBLE PRECISION NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (model, version, alias, approved_by),
                FOREIGN KEY (model, version) REFERENCES model_versions (model, version));
            CREATE INDEX metrics_by_key ON metrics (key, model, version);
            CREATE INDEX version_tags_by_key ON version_tags (key, value);
            """
        let audit = """
            CREATE TABLE audit_log (
                id @ID, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, model TEXT NOT NULL,
                version INTEGER NOT NULL, details TEXT NOT NULL, reason TEXT NOT NULL);
            CREATE INDEX audit_by_model ON audit_log (model, id);
            """
        return [
            Migration(
                sqlite: tables + audit.replacingOccurrences(of: "@ID", with: "INTEGER PRIMARY KEY AUTOINCREMENT") + """
                    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
                    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
                    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                    """,
                postgres: tables + audit.replacingOccurrences(of: "@ID", with: "BIGSERIAL PRIMARY KEY") + """
                    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
                    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
                    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
                    """)
        ]
    }()

    /// Opens the registry on `storage` (migrating it) with artifacts in `artifacts`.
    /// - Parameter stagedLimit: the most bytes the uploads in progress may declare together.
    public init(
        storage: StorageLocation, artifacts: ArtifactStore, protectedAliases: Set<String> = ["production"], connections: Int = 4,
        stagedLimit: UInt64 = 8 << 30
    )
        throws
    {
        uploads = ArtifactUploads(stagedLimit: stagedLimit)
        try storage.open().migrate(Self.migrations, component: "registry")
        pool = try DatabasePool(storage, size: connections)
        self.artifacts = artifacts
        self.protectedAliases = protectedAliases
        artifacts.sweepStaging()
    }

    // MARK: requests

    /// Carries out one request.
    /// - Returns: the reply and, for a download asked for in one frame (`chunk_size` 0), the
    ///   artifact's bytes.
    /// - Parameters:
    ///   - peer: who sent it (the routing id), to whom its uploads belong.
    ///   - piece: sends one piece of a download asked for in pieces, ahead of the reply.
    public func handle(
        _ request: Shoal_V1_RegistryRequest, artifact: [UInt8]?, peer: [UInt8] = [],
        piece: (_ offset: UInt64, _ total: UInt64, _ bytes: [UInt8]) -> Void = { _, _, _ in }
    ) throws -> (Shoal_V1_RegistryReply, [UInt8]?) {
        // An upload a registration names is taken before any check, so that a refused
        // registration drops it (and its staging file) too.
        var upload: ArtifactUpload?
        if case .registerVersion(let register) = request.op, register.uploadID != 0 {
            upload = try uploads.take(register.uploadID, from: peer)
        }
        let identity = request.identity.trimmingCharacters(in: .whitespaces)
        guard !identity.isEmpty, identity.count <= 200 else {
            throw RegistryError.invalid("every registry request needs an identity (who asks), 1 to 200 characters")
        }
        var reply = Shoal_V1_RegistryReply()
        switch request.op {
        case .createModel(let create):
            reply.model = try createModel(create, by: identity)
        case .registerVersion(let register):
            guard artifact != nil || register.artifactInStore || upload != nil else {
                throw RegistryError.invalid(
                    "registering a version needs its artifact as frame 1, in upload pieces, or put in the artifact store")
            }
            reply.version = try registerVersion(register, artifact: artifact, upload: upload, by: identity)
        case .getModel(let get):
            reply.model = try pool.withDatabase { try model(get.name, in: $0) }
        case .getVersion(let get):
            reply.version = try pool.withDatabase { database in
                try version(resolve(get.model, get.version, get.alias, in: database), of: get.model, in: database)
            }
        case .listModels(let list): reply.models = try listModels(list)
        case .searchVersions(let search): reply.versions = try searchVersions(search)
        case .setTags(let set): reply.version = try setTags(set, by: identity)
        case .moveAlias(let move): reply.version = try moveAlias(move, by: identity)
        case .approveVersion(let approve): reply.version = try approveVersion(approve, by: identity)
        case .archiveVersion(let archive): reply.version = try archiveVersion(archive, by: identity)
        case .readAudit(let read): reply.audit = try readAudit(read)
        case .downloadArtifact(let download):
            let info = try pool.withDatabase { database in
                try version(
                    resolve(download.model, download.version, download.alias, in: database), of: download.model, in: database)
            }
            var bytes: [UInt8]?
            do {
                if download.chunkSize == 0 {
                    bytes = try artifacts.read(sha: info.artifactSha256)
                } else {
                    let size = Int(min(max(download.chunkSize, 64 << 10), 64 << 20))
                    _ = try artifacts.stream(sha: info.artifactSha256, piece: size, send: piece)
                }
            } catch let error as RegistryError {
                throw RegistryError(kind: error.kind, message: "\(info.model) version \(info.version): \(error.message)")
            }
            reply.version = info
            return (reply, bytes)
        case .describeStore:
            reply.store.root = artifacts.root
            reply.store.storeID = artifacts.identifier
            reply.store.maxSize = artifacts.maxSize
        case nil:
            throw RegistryError.invalid("the registry request names no operation")
        }
        return (reply, nil)
    }

    // MARK: validation

    static func checkName(_ name: String, what: String = "model name") throws {
        // Bytes, not Characters: ASCII letters, digits and . _ - only (a Set of Characters cost
        // more per registration than its SQL).
        let utf8 = name.utf8
        let valid = utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2E
                || byte == 0x5F || byte == 0x2D
        }
        guard (1...128).contains(utf8.count), valid, utf8.first != 0x2E, utf8.first != 0x2D else {
            throw RegistryError.invalid(
                "'\(name.prefix(80))' is not a valid \(what): 1 to 128 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
            )
        }
    }

    private static func checkTags(_ tags: [String: String]) throws {
        for (key, value) in tags {
            try checkName(key, what: "tag key")
            guard value.utf8.count <= 5000 else { throw RegistryError.invalid("tag '\(key)' is over 5000 bytes") }
        }
    }

    // MARK: models

    private func createModel(_ create: Shoal_V1_CreateModel, by identity: String) throws -> Shoal_V1_ModelInfo {
        try Self.checkName(create.name)
        try Self.checkTags(create.tags)
        return try pool.withDatabase { database in
            try database.transaction {
                guard try database.query("SELECT 1 AS found FROM registered_models WHERE name = $1", [.text(create.name)]).isEmpty
                else {
                    throw RegistryError.invalid("model '\(create.name)' already exists")
                }
                try insertModel(create.name, description: create.description_p, tags: create.tags, by: identity, in: database)
                try audit(
                    "create-model", model: create.name, version: 0, details: create.description_p, reason: "", by: identity,
                    in: database)
                return try model(create.name, in: database)
            }
        }
    }

    private func insertModel(
        _ name: String, description: String, tags: [String: String], by identity: String, in database: any SQLDatabase
    )
        throws
    {
        try database.run(
            "INSERT INTO registered_models (name, description, created_at, created_by) VALUES ($1, $2, $3, $4)",
            [.text(name), .text(description), .real(Date().timeIntervalSince1970), .text(identity)])
        for (key, value) in tags {
            try database.run(
                "INSERT INTO model_tags (model, key, value) VALUES ($1, $2, $3)", [.text(name), .text(key), .text(value)])
        }
    }

    private func model(_ name: String, in database: any SQLDatabase) throws -> Shoal_V1_ModelInfo {
        guard let row = try database.query("SELECT * FROM registered_models WHERE name = $1", [.text(name)]).first else {
            throw RegistryError.notFound("no model '\(name.prefix(128))' in the registry (see `cluster models list`)")
        }
        var info = Shoal_V1_ModelInfo()
        info.name = name
        info.description_p = row["description"].text ?? ""
        info.createdAt = row["created_at"].real ?? 0
        info.createdBy = row["created_by"].text ?? ""
        info.latestVersion = UInt32(row["latest_version"].integer ?? 0)
        for tag in try database.query("SELECT key, value FROM model_tags WHERE model = $1", [.text(name)]) {
            info.tags[tag["key"].text ?? ""] = tag["value"].text ?? ""
        }
        for alias in try database.query("SELECT alias, version FROM aliases WHERE model = $1", [.text(name)]) {
            info.aliases[alias["alias"].text ?? ""] = UInt32(alias["version"].integer ?? 0)
        }
        return info
    }

    private func listModels(_ list: Shoal_V1_ListModels) throws -> [Shoal_V1_ModelInfo] {
        try pool.withDatabase { database in
            let rows: [SQLRow]
            if list.tagKey.isEmpty {
                rows = try database.query("SELECT name FROM registered_models ORDER BY name")
            } else if list.tagValue.isEmpty {
                rows = try database.query(
                    "SELECT m.name FROM registered_models m JOIN model_tags t ON t.model = m.name WHERE t.key = $1 ORDER BY m.name",
                    [.text(list.tagKey)])
            } else {
                rows = try database.query(
                    "SELECT m.name FROM registered_models m JOIN model_tags t ON t.model = m.name WHERE t.key = $1 AND t.value = $2 ORDER BY m.name",
                    [.text(list.tagKey), .text(list.tagValue)])
            }
            return try rows.map { try model($0["name"].text ?? "", in: database) }
        }
    }

    // MARK: versions

    private func registerVersion(
        _ register: Shoal_V1_RegisterVersion, artifact: [UInt8]?, upload: ArtifactUpload?, by identity: String
    ) throws
        -> Shoal_V1_VersionInfo
    {
        try Self.checkName(register.model)
        try Self.checkTags(register.tags)
        for point in register.metrics {
            try Self.checkName(point.key, what: "metric name")
            guard point.value.isFinite else {
                throw RegistryError.invalid("metric '\(point.key)' is \(point.value), not a finite number")
            }
        }
        let format = register.artifactFormat.isEmpty ? "binary" : register.artifactFormat
        guard format == "binary" || format == "safetensors" else {
            throw RegistryError.invalid("artifact format '\(format.prefix(40))' is not one of: safetensors, binary")
        }
        if let artifact, format == "safetensors" { try ArtifactStore.validateSafetensors(artifact) }
        let config = try ModelCard.configuration(register.configJson)
        for digest in [register.lineage.dataSha256, register.lineage.codeSha256] where !digest.isEmpty {
            guard SHA256.isHexDigest(digest) else {
                throw RegistryError.invalid("lineage hash '\(digest.prefix(80))' is not a SHA-256 hex digest")
            }
        }
        // The artifact first: a crash after this leaves an unreferenced file, never a version
        // without its artifact. A client that put it in the store itself names it.
        let artifactSHA: String
        let size: UInt64
        if let artifact {
            artifactSHA = try artifacts.put(artifact, sha256: register.artifactSha256)
            size = UInt64(artifact.count)
        } else if let upload {
            // Checked in the staging file, before it takes its place in the store.
            artifactSHA = try upload.finish(size: register.artifactSize, sha: register.artifactSha256) { staged in
                if format == "safetensors" { try ArtifactStore.validateSafetensors(atPath: staged) }
            }
            size = register.artifactSize
        } else {
            try artifacts.checkStored(sha: register.artifactSha256, size: register.artifactSize)
            // Its header only: the bytes are checked against the hash on every read.
            if format == "safetensors" { try ArtifactStore.validateSafetensors(atPath: artifacts.path(of: register.artifactSha256)) }
            artifactSHA = register.artifactSha256
            size = register.artifactSize
        }
        return try pool.withDatabase { database in
            try database.transaction {
                if try database.query("SELECT 1 AS found FROM registered_models WHERE name = $1", [.text(register.model)]).isEmpty
                {
                    guard register.createModel else {
                        throw RegistryError.notFound(
                            "no model '\(register.model)' in the registry; create it first, or register with createModel")
                    }
                    try insertModel(register.model, description: "", tags: [:], by: identity, in: database)
                    try audit(
                        "create-model", model: register.model, version: 0, details: "", reason: "", by: identity, in: database)
                }
                // Taking the next number updates the model's row inside the transaction: two
                // registrations can never take the same number, and a rollback gives it back.
                let numbered = try database.query(
                    "UPDATE registered_models SET latest_version = latest_version + 1 WHERE name = $1 RETURNING latest_version",
                    [.text(register.model)])
                guard let number = numbered.first?["latest_version"].integer else {
                    throw RegistryError.unavailable("could not number a new version of '\(register.model)'")
                }
                let parent = register.lineage.parentVersion
                if parent != 0 {
                    guard parent < number,
                        try !database.query(
                            "SELECT 1 AS found FROM model_versions WHERE model = $1 AND version = $2",
                            [.text(register.model), .integer(Int64(parent))]
                        ).isEmpty
                    else {
                        throw RegistryError.invalid("parent version \(parent) of '\(register.model)' does not exist")
                    }
                }
                let parameters = JSONText.flatObject(register.parameters)
                var latest: [String: Double] = [:]
                for point in register.metrics.sorted(by: { $0.step < $1.step }) { latest[point.key] = point.value }
                let cardJSON = ModelCard(
                    model: register.model, version: number, description: register.description_p, config: config,
                    parameters: register.parameters, metrics: latest,
                    lineage: .init(
                        job_id: register.lineage.jobID, task_id: register.lineage.taskID,
                        data_sha256: register.lineage.dataSha256, code_sha256: register.lineage.codeSha256,
                        parent_version: parent),
                    artifact: .init(sha256: artifactSHA, size: size, format: format), registered_by: identity
                ).json()
                try database.run(
                    """
                    INSERT INTO model_versions (model, version, status, created_at, created_by, description, parameters,
                        artifact_sha256, artifact_size, artifact_format, model_card, job_id, task_id, data_sha256, code_sha256,
                        parent_version)
                    VALUES ($1, $2, 'READY', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                    """,
                    [
                        .text(register.model), .integer(number), .real(Date().timeIntervalSince1970), .text(identity),
                        .text(register.description_p), .text(parameters), .text(artifactSHA),
                        .integer(Int64(size)),
                        .text(format), .text(cardJSON), .text(register.lineage.jobID), .text(register.lineage.taskID),
                        .text(register.lineage.dataSha256), .text(register.lineage.codeSha256), .integer(Int64(parent)),
                    ])
                for (key, value) in register.tags {
                    try database.run(
                        "INSERT INTO version_tags (model, version, key, value) VALUES ($1, $2, $3, $4)",
                        [.text(register.model), .integer(number), .text(key), .text(value)])
                }
                for point in register.metrics {
                    try database.run(
                        """
                        INSERT INTO metrics (model, version, key, step, value) VALUES ($1, $2, $3, $4, $5)
                        ON CONFLICT (model, version, key, step) DO UPDATE SET value = excluded.value
                        """,
                        [.text(register.model), .integer(number), .text(point.key), .integer(point.step), .real(point.value)])
                }
                try audit(
                    "register", model: register.model, version: UInt32(number),
                    details: "artifact \(artifactSHA) (\(size) bytes, \(format))",
                    reason: register.description_p,
                    by: identity, in: database)
                return try version(UInt32(number), of: register.model, in: database)
            }
        }
    }

    /// The version a request means: its number, else its alias, else the latest.
    private func resolve(_ model: String, _ number: UInt32, _ alias: String, in database: any SQLDatabase) throws -> UInt32 {
        if number != 0 { return number }
        if !alias.isEmpty {
            guard
                let row = try database.query(
                    "SELECT version FROM aliases WHERE model = $1 AND alias = $2", [.text(model), .text(alias)]
                ).first
            else {
                _ = try self.model(model, in: database)
                throw RegistryError.notFound("model '\(model)' has no alias '\(alias.prefix(128))'")
            }
            return UInt32(row["version"].integer ?? 0)
        }
        let latest = try self.model(model, in: database).latestVersion
        guard latest > 0 else { throw RegistryError.notFound("model '\(model)' has no versions yet") }
        return latest
    }

    private func version(_ number: UInt32, of model: String, in database: any SQLDatabase) throws -> Shoal_V1_VersionInfo {
        guard
            let row = try database.query(
                "SELECT * FROM model_versions WHERE model = $1 AND version = $2", [.text(model), .integer(Int64(number))]
            ).first
        else {
            _ = try self.model(model, in: database)
            throw RegistryError.notFound("model '\(model)' has no version \(number)")
        }
        var info = Shoal_V1_VersionInfo()
        info.model = model
        info.version = number
        info.status = row["status"].text ?? ""
        info.createdAt = row["created_at"].real ?? 0
        info.createdBy = row["created_by"].text ?? ""
        info.description_p = row["description"].text ?? ""
        let parameters = row["parameters"].text ?? "{}"
        info.parameters =
            JSONText.parseFlatObject(parameters)
            ?? (try? JSONDecoder().decode([String: String].self, from: Data(parameters.utf8))) ?? [:]
        info.artifactSha256 = row["artifact_sha256"].text ?? ""
        info.artifactSize = UInt64(row["artifact_size"].integer ?? 0)
        info.artifactFormat = row["artifact_format"].text ?? ""
        info.modelCard = row["model_card"].text ?? ""
        info.lineage.jobID = row["job_id"].text ?? ""
        info.lineage.taskID = row["task_id"].text ?? ""
        info.lineage.dataSha256 = row["data_sha256"].text ?? ""
        info.lineage.codeSha256 = row["code_sha256"].text ?? ""
        info.lineage.parentVersion = UInt32(row["parent_version"].integer ?? 0)
        let key: [SQLValue] = [.text(model), .integer(Int64(number))]
        for tag in try database.query("SELECT key, value FROM version_tags WHERE model = $1 AND version = $2", key) {
            info.tags[tag["key"].text ?? ""] = tag["value"].text ?? ""
        }
        info.metrics = try database.query(
            "SELECT key, step, value FROM metrics WHERE model = $1 AND version = $2 ORDER BY key, step", key
        ).map { row in
            var point = Shoal_V1_MetricPoint()
            point.key = row["key"].text ?? ""
            point.step = row["step"].integer ?? 0
            point.value = row["value"].real ?? 0
            return point
        }
        info.aliases = try database.query("SELECT alias FROM aliases WHERE model = $1 AND version = $2 ORDER BY alias", key)
            .map { $0["alias"].text ?? "" }
        info.approvals = try database.query(
            "SELECT alias, approved_by, approved_at, reason FROM approvals WHERE model = $1 AND version = $2 ORDER BY approved_at",
            key
        ).map { row in
            var approval = Shoal_V1_Approval()
            approval.alias = row["alias"].text ?? ""
            approval.approvedBy = row["approved_by"].text ?? ""
            approval.approvedAt = row["approved_at"].real ?? 0
            approval.reason = row["reason"].text ?? ""
            return approval
        }
        return info
    }

    private func searchVersions(_ search: Shoal_V1_SearchVersions) throws -> [Shoal_V1_VersionInfo] {
        var conditions: [String] = []
        var parameters: [SQLValue] = []
        func parameter(_ value: SQLValue) -> String {
            parameters.append(value)
            return "$\(parameters.count)"
        }
        if !search.model.isEmpty { conditions.append("v.model = \(parameter(.text(search.model)))") }
        if !search.includeArchived { conditions.append("v.status = 'READY'") }
        if !search.tagKey.isEmpty {
            var tag =
                "SELECT 1 FROM version_tags t WHERE t.model = v.model AND t.version = v.version AND t.key = \(parameter(.text(search.tagKey)))"
            if !search.tagValue.isEmpty { tag += " AND t.value = \(parameter(.text(search.tagValue)))" }
            conditions.append("EXISTS (\(tag))")
        }
        if !search.alias.isEmpty {
            conditions.append(
                "EXISTS (SELECT 1 FROM aliases a WHERE a.model = v.model AND a.version = v.version AND a.alias = \(parameter(.text(search.alias))))"
            )
        }
        if !search.metric.isEmpty {
            // The metric's value at its last step.
            let last = """
                (SELECT m.value FROM metrics m WHERE m.model = v.model AND m.version = v.version AND m.key = \(parameter(.text(search.metric)))
                 ORDER BY m.step DESC LIMIT 1)
                """
            conditions.append("\(last) IS NOT NULL")
            if search.hasMin_p { conditions.append("\(last) >= \(parameter(.real(search.minValue)))") }
            if search.hasMax_p { conditions.append("\(last) <= \(parameter(.real(search.maxValue)))") }
        }
        let limit = search.limit == 0 ? 100 : min(search.limit, 10_000)
        let sql =
            "SELECT v.model, v.version FROM model_versions v"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY v.model, v.version DESC LIMIT \(limit)"
        return try pool.withDatabase { database in
            try database.query(sql, parameters).map {
                try version(UInt32($0["version"].integer ?? 0), of: $0["model"].text ?? "", in: database)
            }
        }
    }

    // MARK: changes

    private func setTags(_ set: Shoal_V1_SetTags, by identity: String) throws -> Shoal_V1_VersionInfo {
        try Self.checkTags(set.tags)
        return try pool.withDatabase { database in
            try database.transaction {
                if set.version == 0 {
                    _ = try model(set.model, in: database)
                    for (key, value) in set.tags {
                        try database.run(
                            "INSERT INTO model_tags (model, key, value) VALUES ($1, $2, $3) ON CONFLICT (model, key) DO UPDATE SET value = excluded.value",
                            [.text(set.model), .text(key), .text(value)])
                    }
                    for key in set.remove {
                        try database.run("DELETE FROM model_tags WHERE model = $1 AND key = $2", [.text(set.model), .text(key)])
                    }
                } else {
                    _ = try version(set.version, of: set.model, in: database)
                    for (key, value) in set.tags {
                        try database.run(
                            """
                            INSERT INTO version_tags (model, version, key, value) VALUES ($1, $2, $3, $4)
                            ON CONFLICT (model, version, key) DO UPDATE SET value = excluded.value
                            """,
                            [.text(set.model), .integer(Int64(set.version)), .text(key), .text(value)])
                    }
                    for key in set.remove {
                        try database.run(
                            "DELETE FROM version_tags WHERE model = $1 AND version = $2 AND key = $3",
                            [.text(set.model), .integer(Int64(set.version)), .text(key)])
                    }
                }
                let changes = set.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + set.remove.map { "-\($0)" }
                try audit(
                    "tag", model: set.model, version: set.version, details: changes.joined(separator: " "), reason: set.reason,
                    by: identity, in: database)
                var empty = Shoal_V1_VersionInfo()
                empty.model = set.model
                return set.version == 0 ? empty : try version(set.version, of: set.model, in: database)
            }
        }
    }

    private func approveVersion(_ approve: Shoal_V1_ApproveVersion, by identity: String) throws -> Shoal_V1_VersionInfo {
        try Self.checkName(approve.alias, what: "alias")
        return try pool.withDatabase { database in
            try database.transaction {
                let target = try version(approve.version, of: approve.model, in: database)
                guard target.status == "READY" else {
                    throw RegistryError.denied("\(approve.model) version \(approve.version) is archived and cannot be approved")
                }
                guard target.createdBy != identity else {
                    throw RegistryError.denied(
                        "\(identity) registered \(approve.model) version \(approve.version) and cannot approve it; another identity must"
                    )
                }
                guard !target.approvals.contains(where: { $0.alias == approve.alias && $0.approvedBy == identity }) else {
                    throw RegistryError.invalid(
                        "\(identity) already approved \(approve.model) version \(approve.version) for '\(approve.alias)'")
                }
                try database.run(
                    "INSERT INTO approvals (model, version, alias, approved_by, approved_at, reason) VALUES ($1, $2, $3, $4, $5, $6)",
                    [
                        .text(approve.model), .integer(Int64(approve.version)), .text(approve.alias), .text(identity),
                        .real(Date().timeIntervalSince1970), .text(approve.reason),
                    ])
                try audit(
                    "approve", model: approve.model, version: approve.version, details: "for alias \(approve.alias)",
                    reason: approve.reason,
                    by: identity, in: database)
                return try version(approve.version, of: approve.model, in: database)
            }
        }
    }

    private func moveAlias(_ move: Shoal_V1_MoveAlias, by identity: String) throws -> Shoal_V1_VersionInfo {
        try Self.checkName(move.alias, what: "alias")
        guard move.alias != "latest" else {
            throw RegistryError.invalid("'latest' is reserved: it always means the newest version")
        }
        return try pool.withDatabase { database in
            try database.transaction {
                let previous = try database.query(
                    "SELECT version FROM aliases WHERE model = $1 AND alias = $2", [.text(move.model), .text(move.alias)]
                ).first?["version"].integer
                let from = previous.map { "version \($0)" } ?? "nothing"
                if move.version == 0 {
                    guard previous != nil else {
                        _ = try model(move.model, in: database)
                        throw RegistryError.notFound("model '\(move.model)' has no alias '\(move.alias)' to remove")
                    }
                    try database.run(
                        "DELETE FROM aliases WHERE model = $1 AND alias = $2", [.text(move.model), .text(move.alias)])
                    try audit(
                        "alias", model: move.model, version: 0, details: "\(move.alias): \(from) → removed", reason: move.reason,
                        by: identity, in: database)
                    var info = Shoal_V1_VersionInfo()
                    info.model = move.model
                    return info
                }
                let target = try version(move.version, of: move.model, in: database)
                guard target.status == "READY" else {
                    throw RegistryError.denied("\(move.model) version \(move.version) is archived; an alias cannot point at it")
                }
                if protectedAliases.contains(move.alias) {
                    guard target.approvals.contains(where: { $0.alias == move.alias && $0.approvedBy != target.createdBy }) else {
                        throw RegistryError.denied(
                            "moving '\(move.alias)' to \(move.model) version \(move.version) needs an approval for '\(move.alias)' by someone other than its registrant \(target.createdBy) (cluster models approve \(move.model) \(move.version) --alias \(move.alias))"
                        )
                    }
                }
                try database.run(
                    """
                    INSERT INTO aliases (model, alias, version, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at,
                        updated_by = excluded.updated_by
                    """,
                    [
                        .text(move.model), .text(move.alias), .integer(Int64(move.version)), .real(Date().timeIntervalSince1970),
                        .text(identity),
                    ])
                try audit(
                    "alias", model: move.model, version: move.version,
                    details: "\(move.alias): \(from) → version \(move.version)",
                    reason: move.reason, by: identity, in: database)
                return try version(move.version, of: move.model, in: database)
            }
        }
    }

    private func archiveVersion(_ archive: Shoal_V1_ArchiveVersion, by identity: String) throws -> Shoal_V1_VersionInfo {
        try pool.withDatabase { database in
            try database.transaction {
                let target = try version(archive.version, of: archive.model, in: database)
                guard target.aliases.isEmpty else {
                    throw RegistryError.denied(
                        "\(archive.model) version \(archive.version) is still aliased as \(target.aliases.joined(separator: ", ")); move those first"
                    )
                }
                guard target.status == "READY" else {
                    throw RegistryError.invalid("\(archive.model) version \(archive.version) is already archived")
                }
                try database.run(
                    "UPDATE model_versions SET status = 'ARCHIVED' WHERE model = $1 AND version = $2",
                    [.text(archive.model), .integer(Int64(archive.version))])
                try audit(
                    "archive", model: archive.model, version: archive.version, details: "", reason: archive.reason, by: identity,
                    in: database)
                return try version(archive.version, of: archive.model, in: database)
            }
        }
    }

    // MARK: audit

    private func audit(
        _ action: String, model: String, version: UInt32, details: String, reason: String, by identity: String,
        in database: any SQLDatabase
    ) throws {
        try database.run(
            "INSERT INTO audit_log (at, actor, action, model, version, details, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                .real(Date().timeIntervalSince1970), .text(identity), .text(action), .text(model), .integer(Int64(version)),
                .text(details),
                .text(reason),
            ])
    }

    private func readAudit(_ read: Shoal_V1_ReadAudit) throws -> [Shoal_V1_AuditEntry] {
        let limit = read.limit == 0 ? 1000 : min(read.limit, 100_000)
        return try pool.withDatabase { database in
            let rows =
                read.model.isEmpty
                ? try database.query("SELECT * FROM audit_log ORDER BY id LIMIT \(limit)")
                : try database.query("SELECT * FROM audit_log WHERE model = $1 ORDER BY id LIMIT \(limit)", [.text(read.model)])
            return rows.map { row in
                var entry = Shoal_V1_AuditEntry()
                entry.id = row["id"].integer ?? 0
                entry.at = row["at"].real ?? 0
                entry.actor = row["actor"].text ?? ""
                entry.action = row["action"].text ?? ""
                entry.model = row["model"].text ?? ""
                entry.version = UInt32(row["version"].integer ?? 0)
                entry.details = row["details"].text ?? ""
                entry.reason = row["reason"].text ?? ""
                return entry
            }
        }
    }
}
