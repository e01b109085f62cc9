import Distributed
import ShoalWire
import Synchronization

/// A kind of distributed actor the cluster can build on any executor: its name, and how to
/// make one from `Codable` arguments. Initialisers cannot travel, so a binary registers its
/// actor types with `Shoal.bootstrap(tasks:actors:)` and the cluster builds them by name.
///
/// ```swift
/// let counterType = ActorType("Counter") { (start: Int, system) in Counter(start: start, actorSystem: system) }
/// ```
public struct ActorType<Arguments: Codable & Sendable, Act: DistributedActor>: Sendable, AnyActorType
where Act.ActorSystem == ClusterActorSystem {
    public let name: String
    let make: @Sendable (Arguments, ClusterActorSystem) async throws -> Act

    public init(_ name: String, _ make: @escaping @Sendable (Arguments, ClusterActorSystem) async throws -> Act) {
        self.name = name
        self.make = make
    }

    public var factory: ActorFactory {
        let make = self.make
        return ActorFactory { bytes, system in
            let arguments: Arguments
            do {
                arguments = try BinaryDecoder().decode(Arguments.self, from: bytes)
            } catch {
                throw ClusterError.invalidArgument("cannot decode the arguments of \(Act.self) as \(Arguments.self): \(error)")
            }
            return try await make(arguments, system)
        }
    }
}

/// An actor type of any argument and actor type.
public protocol AnyActorType: Sendable {
    var name: String { get }
    var factory: ActorFactory { get }
}

/// Builds an actor from encoded arguments.
public struct ActorFactory: Sendable {
    let make: @Sendable ([UInt8], ClusterActorSystem) async throws -> any DistributedActor
}

/// The actor types a binary can build, by name.
public final class ActorTypeRegistry: Sendable {
    private let entries = Mutex<[String: ActorFactory]>([:])

    /// The process's registry.
    public static let shared = ActorTypeRegistry()

    public init() {}

    public func register(_ types: [any AnyActorType]) {
        entries.withLock { entries in
            for type in types { entries[type.name] = type.factory }
        }
    }

    func factory(named name: String) -> ActorFactory? { entries.withLock { $0[name] } }
}
