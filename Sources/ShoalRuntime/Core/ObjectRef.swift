import ShoalWire

/// The id of an object (a task's result) within its owner, the driver that submitted the task.
public typealias ObjectID = UInt64

/// A reference to a value that a task will produce.
///
/// `Cluster.submit` returns one at once. Pass it inside another task's input to make that task
/// depend on it: the scheduler runs the second task once the value exists and ships the value
/// with it, so `get()` inside the task returns at once. The value is freed when no `ObjectRef`
/// to it is left in the driver.
public struct ObjectRef<Value: Codable & Sendable>: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The object's id.
    public let id: ObjectID
    let storage: RefStorage?

    init(id: ObjectID, storage: RefStorage?) {
        self.id = id
        self.storage = storage
    }

    /// Waits for the value.
    /// - Parameter timeout: how long to wait; nil waits for ever.
    /// - Throws: `TaskError` when the task failed, `ClusterError.timeout` past the timeout.
    public func get(timeout: Duration? = nil) async throws -> Value {
        let bytes: [UInt8]
        switch storage?.kind {
        case .resolved(let resolved)?:
            bytes = resolved
        case .owned(let owner)?:
            bytes = try await owner.value(of: id, timeout: timeout)
        case nil:
            throw ClusterError.notFound("object \(id) was decoded outside of a task and has no owner")
        }
        return try BinaryDecoder().decode(Value.self, from: bytes)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    public var description: String { "ObjectRef(\(id))" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        id = try container.decode(ObjectID.self)
        if let resolved = decoder.userInfo[.shoalResolvedObjects] as? ResolvedObjects, let bytes = resolved.values[id] {
            storage = RefStorage(resolved: bytes)
        } else {
            storage = nil
        }
    }

    public func encode(to encoder: any Encoder) throws {
        if let collector = encoder.userInfo[.shoalDependencies] as? DependencyCollector, let storage {
            collector.add(id: id, storage: storage)
        }
        var container = encoder.singleValueContainer()
        try container.encode(id)
    }
}

/// What keeps an object alive in its owner, or holds its value inside a task.
final class RefStorage: Sendable {
    enum Kind: Sendable {
        case owned(DriverCore)
        case resolved([UInt8])
    }

    let kind: Kind
    let id: ObjectID

    init(owner: DriverCore, id: ObjectID) {
        kind = .owned(owner)
        self.id = id
    }

    init(resolved: [UInt8]) {
        kind = .resolved(resolved)
        id = 0
    }

    deinit {
        if case .owned(let owner) = kind { owner.releaseFromAnyThread(id) }
    }
}

/// Collects the `ObjectRef`s met while encoding a task's input: its dependencies.
final class DependencyCollector: @unchecked Sendable {
    // Used by one encoding, on one thread.
    private(set) var storages: [RefStorage] = []
    private(set) var ids: [ObjectID] = []

    func add(id: ObjectID, storage: RefStorage) {
        guard !ids.contains(id) else { return }
        ids.append(id)
        storages.append(storage)
    }
}

/// The values of a task's dependencies, shipped with it.
public final class ResolvedObjects: Sendable {
    let values: [ObjectID: [UInt8]]
    init(_ values: [ObjectID: [UInt8]]) { self.values = values }
    static let empty = ResolvedObjects([:])
}

extension CodingUserInfoKey {
    static let shoalDependencies = CodingUserInfoKey(rawValue: "shoal.dependencies")!
    static let shoalResolvedObjects = CodingUserInfoKey(rawValue: "shoal.resolvedObjects")!
}
