import ShoalWire
import Synchronization

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
        switch storage?.kind {
        case .resolved(let bytes)?:
            return try BinaryDecoder().decode(Value.self, from: bytes)
        case .located(let location, let client)?:
            return try await ObjectContents.stored(location).decode(Value.self, using: client)
        case .owned(let owner)?:
            // On the driver's own loop a finished object is read without suspending.
            if case .inline(let bytes)? = owner.readyContentsOnLoop(of: id) {
                return try BinaryDecoder().decode(Value.self, from: bytes)
            }
            return try await owner.value(of: id, timeout: timeout).decode(Value.self, using: owner)
        case nil:
            throw ClusterError.notFound("object \(id) was decoded outside of a task and has no owner")
        }
    }

    /// Maps a stored object's bytes from shared memory without copying them; for values put
    /// with `Cluster.put` past the inline limit (100 KiB). `MappedObject.elements(of:)` reads an
    /// array of scalars in place.
    /// - Throws: `ClusterError.invalidArgument` for small, inline values (use `get()`).
    public func mapped(timeout: Duration? = nil) async throws -> MappedObject {
        let contents: ObjectContents
        let client: any ObjectStoreClient
        switch storage?.kind {
        case .located(let location, let access)?:
            contents = .stored(location)
            client = access
        case .owned(let owner)?:
            contents = try await owner.value(of: id, timeout: timeout)
            client = owner
        default:
            contents = .inline([])
            client = ObjectStoreUnavailable()
        }
        guard case .stored(let location) = contents else {
            throw ClusterError.invalidArgument("object \(id) is small and travels inline; read it with get()")
        }
        return try await client.map(location)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    public var description: String { "ObjectRef(\(id))" }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        id = try container.decode(ObjectID.self)
        let resolved = decoder.userInfo[.shoalResolvedObjects] as? ResolvedObjects
        if let bytes = resolved?.values[id] {
            storage = RefStorage(resolved: bytes)
        } else if let location = resolved?.locations[id], let client = resolved?.client {
            let located = RefStorage(location: location, client: client, id: id)
            resolved?.borrows?.track(located)
            storage = located
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
        case located(Shoal_V1_ObjectLocation, any ObjectStoreClient)
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

    init(location: Shoal_V1_ObjectLocation, client: any ObjectStoreClient, id: ObjectID) {
        kind = .located(location, client)
        self.id = id
    }

    /// Set when an executor kept this reference past the call that brought it: tells the owner
    /// when the reference is gone.
    let onRelease = Mutex<(@Sendable (ObjectID) -> Void)?>(nil)

    deinit {
        if case .owned(let owner) = kind { owner.releaseFromAnyThread(id) }
        if let release = onRelease.withLock({ $0 }) { release(id) }
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

/// The values of a task's dependencies, shipped with it, or where to map them from.
public final class ResolvedObjects: Sendable {
    let values: [ObjectID: [UInt8]]
    let locations: [ObjectID: Shoal_V1_ObjectLocation]
    let client: (any ObjectStoreClient)?
    /// Watches the stored objects' references made while decoding, to find those kept.
    let borrows: BorrowTracker?

    init(
        _ values: [ObjectID: [UInt8]], locations: [ObjectID: Shoal_V1_ObjectLocation] = [:],
        client: (any ObjectStoreClient)? = nil
    ) {
        self.values = values
        self.locations = locations
        self.client = client
        borrows = locations.isEmpty ? nil : BorrowTracker()
    }

    static let empty = ResolvedObjects([:])
}

/// Stands in where no node store is reachable.
struct ObjectStoreUnavailable: ObjectStoreClient {
    func map(_ location: Shoal_V1_ObjectLocation) async throws -> MappedObject {
        throw ClusterError.notFound("object \(location.key) is stored, and this process has no node to map it from")
    }
}

extension CodingUserInfoKey {
    static let shoalDependencies = CodingUserInfoKey(rawValue: "shoal.dependencies")!
    static let shoalResolvedObjects = CodingUserInfoKey(rawValue: "shoal.resolvedObjects")!
}

/// The references to stored objects that a task or actor call decoded, held weakly: those still
/// alive once the call is over were kept (in an actor's state, say), and their owner must not free
/// the objects until they are gone.
final class BorrowTracker: Sendable {
    private final class Weak: @unchecked Sendable {
        // Written once at creation; read after the call, on the executor's loop.
        weak var storage: RefStorage?
        init(_ storage: RefStorage) { self.storage = storage }
    }

    private let seen = Mutex<[Weak]>([])

    func track(_ storage: RefStorage) { seen.withLock { $0.append(Weak(storage)) } }

    /// References still alive, each told how to report its end.
    func kept(onRelease: @escaping @Sendable (ObjectID) -> Void) -> [ObjectID] {
        let alive = seen.withLock { seen in seen.compactMap(\.storage) }
        for storage in alive { storage.onRelease.withLock { $0 = onRelease } }
        return Array(Set(alive.map(\.id)))
    }
}
