import Foundation
import ShoalTransport
import ShoalWire

#if canImport(Glibc)
    import Glibc
#endif

/// One version of a registered model.
public struct ModelVersion: Sendable, Equatable {
    public var model: String
    public var version: Int
    /// READY or ARCHIVED.
    public var status: String
    public var createdAt: Date
    public var createdBy: String
    public var description: String
    public var parameters: [String: String]
    /// Every logged point, by metric name, in step order.
    public var metrics: [String: [(step: Int64, value: Double)]]
    public var tags: [String: String]
    public var lineage: Lineage
    public var artifactSHA256: String
    public var artifactSize: UInt64
    public var artifactFormat: String
    /// JSON: configuration, parameters, last metrics, lineage, artifact.
    public var modelCard: String
    public var aliases: [String]
    public var approvals: [(alias: String, by: String, at: Date, reason: String)]

    /// Where a version came from.
    public struct Lineage: Sendable, Equatable {
        public var jobID: String
        public var taskID: String
        public var dataSHA256: String
        public var codeSHA256: String
        public var parentVersion: Int?

        public init(
            jobID: String = "", taskID: String = "", dataSHA256: String = "", codeSHA256: String = "", parentVersion: Int? = nil
        ) {
            self.jobID = jobID
            self.taskID = taskID
            self.dataSHA256 = dataSHA256
            self.codeSHA256 = codeSHA256
            self.parentVersion = parentVersion
        }
    }

    /// A metric's value at its last step.
    public func lastValue(of metric: String) -> Double? { metrics[metric]?.last?.value }

    init(_ info: Shoal_V1_VersionInfo) {
        model = info.model
        version = Int(info.version)
        status = info.status
        createdAt = Date(timeIntervalSince1970: info.createdAt)
        createdBy = info.createdBy
        description = info.description_p
        parameters = info.parameters
        metrics = Dictionary(grouping: info.metrics, by: \.key).mapValues { $0.map { ($0.step, $0.value) } }
        tags = info.tags
        lineage = Lineage(
            jobID: info.lineage.jobID, taskID: info.lineage.taskID, dataSHA256: info.lineage.dataSha256,
            codeSHA256: info.lineage.codeSha256,
            parentVersion: info.lineage.parentVersion == 0 ? nil : Int(info.lineage.parentVersion))
        artifactSHA256 = info.artifactSha256
        artifactSize = info.artifactSize
        artifactFormat = info.artifactFormat
        modelCard = info.modelCard
        aliases = info.aliases
        approvals = info.approvals.map { ($0.alias, $0.approvedBy, Date(timeIntervalSince1970: $0.approvedAt), $0.reason) }
    }

    public static func == (a: ModelVersion, b: ModelVersion) -> Bool {
        a.model == b.model && a.version == b.version && a.status == b.status && a.artifactSHA256 == b.artifactSHA256
            && a.aliases == b.aliases && a.tags == b.tags && a.parameters == b.parameters
    }
}

/// A registered model.
public struct RegisteredModel: Sendable, Equatable {
    public var name: String
    public var description: String
    public var tags: [String: String]
    public var createdAt: Date
    public var createdBy: String
    public var latestVersion: Int
    /// Alias → version.
    public var aliases: [String: Int]

    init(_ info: Shoal_V1_ModelInfo) {
        name = info.name
        description = info.description_p
        tags = info.tags
        createdAt = Date(timeIntervalSince1970: info.createdAt)
        createdBy = info.createdBy
        latestVersion = Int(info.latestVersion)
        aliases = info.aliases.mapValues { Int($0) }
    }
}

/// One entry of the registry's append-only audit log.
public struct AuditRecord: Sendable, Equatable {
    public var id: Int64
    public var at: Date
    public var actor: String
    /// create-model, register, tag, approve, alias, archive.
    public var action: String
    public var model: String
    public var version: Int
    public var details: String
    public var reason: String
}

/// Filters for `ModelRegistry.search`.
public struct VersionFilter: Sendable {
    public var model: String?
    public var tag: (key: String, value: String?)?
    public var metric: String?
    public var minimum: Double?
    public var maximum: Double?
    public var alias: String?
    public var includeArchived = false
    public var limit = 100

    public init(
        model: String? = nil, tag: (key: String, value: String?)? = nil, metric: String? = nil, minimum: Double? = nil,
        maximum: Double? = nil, alias: String? = nil, includeArchived: Bool = false, limit: Int = 100
    ) {
        self.model = model
        self.tag = tag
        self.metric = metric
        self.minimum = minimum
        self.maximum = maximum
        self.alias = alias
        self.includeArchived = includeArchived
        self.limit = limit
    }
}

/// Two versions side by side: each metric's last value and each parameter, where they differ.
public struct VersionComparison: Sendable {
    public var left: ModelVersion
    public var right: ModelVersion
    /// Metric → (left, right) last values; nil where a side lacks it.
    public var metrics: [(name: String, left: Double?, right: Double?)]
    /// Parameter → (left, right).
    public var parameters: [(name: String, left: String?, right: String?)]
}

/// The client of a model registry (hosted by the head, or by `cluster registry serve`). One
/// user at a time: it owns a socket.
///
/// Artifacts move through the registry's socket, or, where this process sees the registry's
/// artifact store (the same host, or a shared mount), straight into and out of the store: the
/// client hashes what it writes and checks the hash of what it reads.
public final class ModelRegistry {
    public let address: String
    /// Who this client acts as: recorded with every change, and checked by approvals.
    public let identity: String
    private let channel: RequestChannel
    private let timeout: Duration
    private let useSharedStore: Bool
    /// The registry's store as seen from here: unknown until first needed, then nil when not reachable.
    private var sharedStore: ArtifactStore??

    /// `SHOAL_IDENTITY`, else `user@host`.
    public static var defaultIdentity: String {
        let environment = ProcessInfo.processInfo.environment
        if let identity = environment["SHOAL_IDENTITY"], !identity.isEmpty { return identity }
        return "\(environment["USER"] ?? NSUserName())@\(ProcessInfo.processInfo.hostName)"
    }

    /// - Parameters:
    ///   - sharedStore: whether to use the registry's artifact store in place when this
    ///     process sees it (false: every artifact goes through the registry's socket).
    ///   - localLink: whether to reach a registry on this host over a local link when it serves
    ///     one (false, or `SHOAL_LOCAL_LINKS=0`: always ZeroMQ).
    public init(
        address: String, identity: String = ModelRegistry.defaultIdentity, timeout: Duration = .seconds(60),
        sharedStore: Bool = true, localLink: Bool = true
    ) throws {
        self.address = address.hasPrefix("tcp://") ? address : "tcp://" + address
        self.identity = identity
        self.timeout = timeout
        useSharedStore = sharedStore
        channel = try RequestChannel(address: self.address, peer: "registry", preferLocal: localLink)
    }

    /// Whether requests go over a local link rather than ZeroMQ.
    public var usesLocalLink: Bool { channel.isLocal }

    /// Whether artifacts go straight to and from the registry's store (asks the registry once).
    public var usesSharedStore: Bool { store() != nil }

    private func store() -> ArtifactStore? {
        guard useSharedStore else { return nil }
        if let known = sharedStore { return known }
        let found = (try? request(.describeStore(Shoal_V1_DescribeStore()))).flatMap { reply, _ in
            ArtifactStore.attach(root: reply.store.root, identifier: reply.store.storeID, maxSize: reply.store.maxSize)
        }
        sharedStore = .some(found)
        return found
    }

    /// Creates a model (versions can also create it on first registration).
    @discardableResult
    public func createModel(_ name: String, description: String = "", tags: [String: String] = [:]) throws -> RegisteredModel {
        var create = Shoal_V1_CreateModel()
        create.name = name
        create.description_p = description
        create.tags = tags
        return RegisteredModel(try request(.createModel(create)).0.model)
    }

    /// Registers a new version: numbered 1, 2, 3… per model, in one transaction with its
    /// metrics, tags and lineage; the artifact is stored by its SHA-256.
    /// - Parameters:
    ///   - format: `safetensors` (checked) or `binary`.
    ///   - metrics: final values (step 0); `history` adds per-step points.
    ///   - configJSON: the model's configuration, for its model card.
    public func register(
        model: String, artifact: [UInt8], format: String = "safetensors", description: String = "",
        parameters: [String: String] = [:], metrics: [String: Double] = [:],
        history: [(key: String, step: Int64, value: Double)] = [],
        tags: [String: String] = [:], lineage: ModelVersion.Lineage = .init(), configJSON: String = "", createModel: Bool = true
    ) throws -> ModelVersion {
        try register(
            .bytes(artifact),
            request(
                model: model, format: format, description: description, parameters: parameters, metrics: metrics,
                history: history, tags: tags, lineage: lineage, configJSON: configJSON, createModel: createModel))
    }

    /// Registers a new version whose artifact is the file at `path`, read a piece at a time
    /// (never whole in memory): into the shared store when this client sees it, else through
    /// the registry's socket. The same parameters as `register(model:artifact:…)`.
    /// - Throws: `ClusterError.invalidArgument` when the file cannot be opened, and what
    ///   registering throws.
    public func register(
        model: String, artifactAt path: String, format: String = "safetensors", description: String = "",
        parameters: [String: String] = [:], metrics: [String: Double] = [:],
        history: [(key: String, step: Int64, value: Double)] = [],
        tags: [String: String] = [:], lineage: ModelVersion.Lineage = .init(), configJSON: String = "", createModel: Bool = true
    ) throws -> ModelVersion {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ClusterError.invalidArgument("cannot read the artifact file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw ClusterError.invalidArgument("the artifact \(path) is not a regular file")
        }
        return try register(
            .file(descriptor: descriptor, size: UInt64(info.st_size), path: path),
            request(
                model: model, format: format, description: description, parameters: parameters, metrics: metrics,
                history: history, tags: tags, lineage: lineage, configJSON: configJSON, createModel: createModel))
    }

    /// The pieces of a download so far: each must follow the last, within the size the first gave.
    private struct DownloadPieces {
        let model: String
        private var total: UInt64?
        private var received: UInt64 = 0

        init(model: String) { self.model = model }

        mutating func accept(_ chunk: Shoal_V1_ArtifactChunk, count: Int) throws {
            let expected = total ?? chunk.total
            guard chunk.total == expected, chunk.offset == received, chunk.offset <= expected,
                UInt64(count) <= expected - chunk.offset
            else {
                throw ClusterError.peerError(
                    "the registry sent a piece of \(model) at byte \(chunk.offset) (\(count) of \(chunk.total) bytes) after \(received) of \(expected) bytes"
                )
            }
            total = expected
            received += UInt64(count)
        }
    }

    /// Where a registration's artifact comes from.
    private enum ArtifactSource {
        case bytes([UInt8])
        case file(descriptor: Int32, size: UInt64, path: String)

        var size: UInt64 {
            switch self {
            case .bytes(let bytes): UInt64(bytes.count)
            case .file(_, let size, _): size
            }
        }

        /// Throws when a file grew while it was read (what was read is not all of it).
        func checkEnded() throws {
            guard case .file(let descriptor, let size, let path) = self else { return }
            do {
                try Files.checkEnds(descriptor, at: Int(size), of: path)
            } catch let failure as Files.Failure {
                throw ClusterError.invalidArgument(failure.message)
            }
        }

        /// The piece at `offset` (the whole artifact for `count` == size).
        func piece(at offset: UInt64, count: Int) throws -> [UInt8] {
            switch self {
            case .bytes(let bytes):
                return offset == 0 && count == bytes.count ? bytes : Array(bytes[Int(offset)..<Int(offset) + count])
            case .file(let descriptor, _, let path):
                do {
                    return try Files.read(descriptor, exactly: count, at: Int(offset), of: path)
                } catch let failure as Files.Failure {
                    throw ClusterError.invalidArgument(failure.message)
                }
            }
        }
    }

    private func request(
        model: String, format: String, description: String, parameters: [String: String], metrics: [String: Double],
        history: [(key: String, step: Int64, value: Double)], tags: [String: String], lineage: ModelVersion.Lineage,
        configJSON: String, createModel: Bool
    ) -> Shoal_V1_RegisterVersion {
        var register = Shoal_V1_RegisterVersion()
        register.model = model
        register.description_p = description
        register.parameters = parameters
        register.metrics =
            metrics.map { point($0.key, 0, $0.value) } + history.map { point($0.key, $0.step, $0.value) }
        register.tags = tags
        register.lineage.jobID = lineage.jobID
        register.lineage.taskID = lineage.taskID
        register.lineage.dataSha256 = lineage.dataSHA256
        register.lineage.codeSha256 = lineage.codeSHA256
        register.lineage.parentVersion = UInt32(lineage.parentVersion ?? 0)
        register.artifactFormat = format
        register.configJson = configJSON
        register.createModel = createModel
        return register
    }

    private func register(_ artifact: ArtifactSource, _ request: Shoal_V1_RegisterVersion) throws -> ModelVersion {
        var register = request
        if let store = store() {
            // Checked here too (in the registry's order) so that the commonest refusals leave
            // nothing in the store; a version refused later leaves a file a retry reuses.
            try RegistryService.checkName(register.model)
            do {
                switch artifact {
                case .bytes(let bytes):
                    if register.artifactFormat == "safetensors" { try ArtifactStore.validateSafetensors(bytes) }
                    register.artifactSha256 = try store.put(bytes)
                case .file(let descriptor, let size, let path):
                    if register.artifactFormat == "safetensors" {
                        do {
                            try ArtifactStore.validateSafetensors(descriptor: descriptor, path: path)
                        } catch let error as RegistryError where error.kind == .unavailable {
                            throw ClusterError.invalidArgument(error.message)
                        }
                    }
                    register.artifactSha256 = try store.put(contentsOf: descriptor, size: size, path: path)
                }
                register.artifactSize = artifact.size
                register.artifactInStore = true
                return ModelVersion(try self.request(.registerVersion(register)).0.version)
            } catch let error as RegistryError where error.kind == .unavailable {
                // Not writable from here: the bytes go through the registry.
                register.artifactSha256 = ""
                register.artifactSize = 0
                register.artifactInStore = false
            }
        }
        // The registry hashes the artifact itself: naming the hash here would be a second pass.
        let size = artifact.size
        guard size > UInt64(ArtifactPieces.size) else {
            let bytes = try artifact.piece(at: 0, count: Int(size))
            try artifact.checkEnded()
            return ModelVersion(try self.request(.registerVersion(register), artifact: bytes).0.version)
        }
        // In pieces, so that the registry writes and hashes each while the next is on the wire.
        register.uploadID = UInt64.random(in: 1...UInt64.max)
        register.artifactSize = size
        var chunk = Shoal_V1_ArtifactChunk()
        chunk.uploadID = register.uploadID
        chunk.total = size
        var offset: UInt64 = 0
        while offset < size {
            let count = Int(min(UInt64(ArtifactPieces.size), size - offset))
            chunk.offset = offset
            try channel.send(.artifactChunk(chunk), payloads: [try artifact.piece(at: offset, count: count)])
            offset += UInt64(count)
        }
        try artifact.checkEnded()
        return ModelVersion(try self.request(.registerVersion(register)).0.version)
    }

    private func point(_ key: String, _ step: Int64, _ value: Double) -> Shoal_V1_MetricPoint {
        var point = Shoal_V1_MetricPoint()
        point.key = key
        point.step = step
        point.value = value
        return point
    }

    public func model(_ name: String) throws -> RegisteredModel {
        var get = Shoal_V1_GetModel()
        get.name = name
        return RegisteredModel(try request(.getModel(get)).0.model)
    }

    /// Models, optionally those with a tag (and value).
    public func models(tag: String? = nil, value: String? = nil) throws -> [RegisteredModel] {
        var list = Shoal_V1_ListModels()
        list.tagKey = tag ?? ""
        list.tagValue = value ?? ""
        return try request(.listModels(list)).0.models.map(RegisteredModel.init)
    }

    /// A version by number, else by alias, else the latest.
    public func version(_ model: String, number: Int? = nil, alias: String? = nil) throws -> ModelVersion {
        var get = Shoal_V1_GetVersion()
        get.model = model
        get.version = UInt32(number ?? 0)
        get.alias = alias ?? ""
        return ModelVersion(try request(.getVersion(get)).0.version)
    }

    /// A version and its artifact's bytes, checked against their hash (here when read from the
    /// shared store, else by the registry).
    public func load(
        name: String, version number: Int? = nil, alias: String? = nil
    ) throws -> (version: ModelVersion, artifact: [UInt8]) {
        var number = number
        if let store = store() {
            let found = try version(name, number: number, alias: alias)
            number = found.version
            do {
                let bytes = try store.read(sha: found.artifactSHA256)
                if UInt64(bytes.count) == found.artifactSize { return (found, bytes) }
            } catch let error as RegistryError where error.kind != .unavailable {
                throw RegistryError(kind: error.kind, message: "\(name) version \(found.version): \(error.message)")
            } catch {
                // Missing or unreadable here: the registry's copy is the one to ask for.
            }
        }
        var download = Shoal_V1_DownloadArtifact()
        download.model = name
        download.version = UInt32(number ?? 0)
        download.alias = alias ?? ""
        // In pieces: the registry sends each before hashing it, and answers once all hashed.
        download.chunkSize = UInt32(ArtifactPieces.size)
        var artifact: [UInt8] = []
        var pieces = DownloadPieces(model: name)
        let (reply, _) = try request(.downloadArtifact(download)) { chunk, bytes in
            try pieces.accept(chunk, count: bytes.count)
            if chunk.offset == 0 { artifact.reserveCapacity(Int(min(chunk.total, 1 << 30))) }
            artifact.append(contentsOf: bytes)
        }
        let version = ModelVersion(reply.version)
        // The registry checked the hash as it read the file (its reply says the pieces were
        // intact); TCP and ZeroMQ's framing carry them intact, so the length is checked here.
        guard UInt64(artifact.count) == version.artifactSize else {
            throw ClusterError.peerError(
                "the artifact of \(name) version \(version.version) arrived with \(artifact.count) bytes, not \(version.artifactSize)"
            )
        }
        return (version, artifact)
    }

    /// Writes a version's artifact into `folder` as `<model>-v<version>.safetensors` (or `.bin`),
    /// a piece at a time, never holding all of it in memory: a large model downloads in the
    /// memory of one piece. The file appears only once all of it matched its hash; on any error
    /// nothing is left behind.
    /// - Returns: the version and the file's path.
    public func download(
        name: String, version number: Int? = nil, alias: String? = nil, into folder: String
    ) throws -> (version: ModelVersion, path: String) {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw ClusterError.peerError("cannot create \(folder): \(error.localizedDescription)")
        }
        let partial = folder + "/.download-\(UInt64.random(in: 0...UInt64.max)).partial"
        let descriptor = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ClusterError.peerError("cannot write into \(folder): \(String(cString: strerror(errno)))")
        }
        var open = true
        defer {
            if open { close(descriptor) }
            unlink(partial)
        }
        var written: UInt64 = 0
        func write(_ bytes: UnsafeRawBufferPointer) throws {
            let failure = Files.write(bytes, to: descriptor)
            guard failure == 0 else {
                throw ClusterError.peerError("cannot write \(partial): \(String(cString: strerror(failure)))")
            }
            written += UInt64(bytes.count)
        }
        var found: ModelVersion?
        if let store = store() {
            let known = try version(name, number: number, alias: alias)
            do {
                if try store.copy(sha: known.artifactSHA256, write: write) == known.artifactSize { found = known }
            } catch let error as RegistryError where error.kind != .unavailable {
                throw RegistryError(kind: error.kind, message: "\(name) version \(known.version): \(error.message)")
            } catch is RegistryError {
                // Missing or unreadable here: the registry's copy is the one to ask for.
            }
            if found == nil {
                guard ftruncate(descriptor, 0) == 0, lseek(descriptor, 0, SEEK_SET) == 0 else {
                    throw ClusterError.peerError("cannot rewind \(partial): \(String(cString: strerror(errno)))")
                }
                written = 0
            }
        }
        if found == nil {
            var download = Shoal_V1_DownloadArtifact()
            download.model = name
            download.version = UInt32(number ?? 0)
            download.alias = alias ?? ""
            download.chunkSize = UInt32(ArtifactPieces.size)
            var pieces = DownloadPieces(model: name)
            let (reply, _) = try request(.downloadArtifact(download)) { chunk, bytes in
                try pieces.accept(chunk, count: bytes.count)
                try bytes.withUnsafeBytes { try write($0) }
            }
            found = ModelVersion(reply.version)
        }
        guard let found, written == found.artifactSize else {
            throw ClusterError.peerError(
                "the artifact of \(name) arrived with \(written) bytes, not \(found?.artifactSize ?? 0)")
        }
        // The file's name comes from the registry's answer: only a valid model name makes it.
        do {
            try RegistryService.checkName(found.model)
        } catch {
            throw ClusterError.peerError("the registry answered with the model name '\(found.model.prefix(80))'")
        }
        // On disk before it takes its name, so that a crash never leaves a short file under it.
        guard fsync(descriptor) == 0 else {
            throw ClusterError.peerError("cannot write \(partial): \(String(cString: strerror(errno)))")
        }
        open = false
        guard close(descriptor) == 0 else {
            throw ClusterError.peerError("cannot write \(partial): \(String(cString: strerror(errno)))")
        }
        let path = "\(folder)/\(found.model)-v\(found.version)" + (found.artifactFormat == "safetensors" ? ".safetensors" : ".bin")
        guard rename(partial, path) == 0 else {
            throw ClusterError.peerError("cannot move the artifact to \(path): \(String(cString: strerror(errno)))")
        }
        return (found, path)
    }

    public func search(_ filter: VersionFilter) throws -> [ModelVersion] {
        var search = Shoal_V1_SearchVersions()
        search.model = filter.model ?? ""
        search.tagKey = filter.tag?.key ?? ""
        search.tagValue = filter.tag?.value ?? ""
        search.metric = filter.metric ?? ""
        if let minimum = filter.minimum {
            search.hasMin_p = true
            search.minValue = minimum
        }
        if let maximum = filter.maximum {
            search.hasMax_p = true
            search.maxValue = maximum
        }
        search.alias = filter.alias ?? ""
        search.includeArchived = filter.includeArchived
        search.limit = UInt32(max(1, filter.limit))
        return try request(.searchVersions(search)).0.versions.map(ModelVersion.init)
    }

    /// Sets or removes tags of a version (or of the model, with `version` nil).
    public func setTags(
        _ model: String, version: Int? = nil, _ tags: [String: String], removing: [String] = [], reason: String = ""
    ) throws {
        var set = Shoal_V1_SetTags()
        set.model = model
        set.version = UInt32(version ?? 0)
        set.tags = tags
        set.remove = removing
        set.reason = reason
        _ = try request(.setTags(set))
    }

    /// Records this identity's approval of a version for an alias.
    @discardableResult
    public func approve(_ model: String, version: Int, for alias: String, reason: String = "") throws -> ModelVersion {
        var approve = Shoal_V1_ApproveVersion()
        approve.model = model
        approve.version = UInt32(version)
        approve.alias = alias
        approve.reason = reason
        return ModelVersion(try request(.approveVersion(approve)).0.version)
    }

    /// Points `alias` at a version (nil removes it). Protected aliases (`production`) need an
    /// approval by someone other than the version's registrant.
    public func moveAlias(_ model: String, _ alias: String, to version: Int?, reason: String = "") throws {
        var move = Shoal_V1_MoveAlias()
        move.model = model
        move.alias = alias
        move.version = UInt32(version ?? 0)
        move.reason = reason
        _ = try request(.moveAlias(move))
    }

    @discardableResult
    public func archive(_ model: String, version: Int, reason: String = "") throws -> ModelVersion {
        var archive = Shoal_V1_ArchiveVersion()
        archive.model = model
        archive.version = UInt32(version)
        archive.reason = reason
        return ModelVersion(try request(.archiveVersion(archive)).0.version)
    }

    /// The audit log, oldest first (of one model, or all).
    public func audit(model: String? = nil, limit: Int = 1000) throws -> [AuditRecord] {
        var read = Shoal_V1_ReadAudit()
        read.model = model ?? ""
        read.limit = UInt32(max(1, limit))
        return try request(.readAudit(read)).0.audit.map {
            AuditRecord(
                id: $0.id, at: Date(timeIntervalSince1970: $0.at), actor: $0.actor, action: $0.action, model: $0.model,
                version: Int($0.version), details: $0.details, reason: $0.reason)
        }
    }

    /// Two versions' metrics (last values) and parameters side by side.
    public func compare(_ model: String, _ left: Int, _ right: Int) throws -> VersionComparison {
        let a = try version(model, number: left)
        let b = try version(model, number: right)
        let metricNames = Set(a.metrics.keys).union(b.metrics.keys).sorted()
        let parameterNames = Set(a.parameters.keys).union(b.parameters.keys).sorted()
        return VersionComparison(
            left: a, right: b, metrics: metricNames.map { ($0, a.lastValue(of: $0), b.lastValue(of: $0)) },
            parameters: parameterNames.map { ($0, a.parameters[$0], b.parameters[$0]) })
    }

    /// - Parameter piece: takes each piece of a download asked for in pieces, in order.
    private func request(
        _ operation: Shoal_V1_RegistryRequest.OneOf_Op, artifact: [UInt8]? = nil,
        piece: ((Shoal_V1_ArtifactChunk, [UInt8]) throws -> Void)? = nil
    ) throws -> (
        Shoal_V1_RegistryReply, [UInt8]?
    ) {
        var request = Shoal_V1_RegistryRequest()
        request.identity = identity
        request.op = operation
        let incoming = try channel.request(
            .registryRequest(request), payloads: artifact.map { [$0] } ?? [], timeout: timeout,
            partial: piece.map { piece in
                { incoming in
                    guard case .artifactChunk(let chunk) = incoming.envelope.body else { return }
                    try piece(chunk, try incoming.payload(1))
                }
            })
        guard case .registryReply(let reply) = incoming.envelope.body else {
            throw ClusterError.peerError("the registry at \(address) answered with something else")
        }
        return (reply, try? incoming.payload(1))
    }
}
