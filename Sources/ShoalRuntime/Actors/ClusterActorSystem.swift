import Distributed
import ShoalWire
import Synchronization

/// Swift's `DistributedActorSystem` for Shoal: write an ordinary `distributed actor` with
/// `typealias ActorSystem = ClusterActorSystem`, spawn it with `Cluster.spawn`, and call its
/// `distributed func`s from any driver; arguments and results travel in Shoal's binary coding.
///
/// In a driver the system sends calls to the executor hosting the actor; in an executor it
/// hosts actors, many per process.
public final class ClusterActorSystem: DistributedActorSystem, Sendable {
    public typealias ActorID = ClusterActorID
    public typealias SerializationRequirement = any Codable
    public typealias InvocationEncoder = ClusterInvocationEncoder
    public typealias InvocationDecoder = ClusterInvocationDecoder
    public typealias ResultHandler = ClusterResultHandler

    /// The id the actor being built must take, set by the host around the actor's initialiser.
    @TaskLocal static var assigningID: ClusterActorID?

    private let local = Mutex<[ClusterActorID: any DistributedActor]>([:])
    private let caller = Mutex<DriverCore?>(nil)

    public init() {}

    /// The actor system that hosts an executor's actors. Each `Cluster` connection has its own
    /// system for the references it makes.
    public static let shared = ClusterActorSystem()

    /// Makes `driver` the connection remote calls go through.
    public func attach(driver: DriverCore) { caller.withLock { $0 = driver } }

    /// Actors hosted in this process.
    public var localActorCount: Int { local.withLock { $0.count } }

    func localActor(_ id: ClusterActorID) -> (any DistributedActor)? { local.withLock { $0[id] } }

    // MARK: DistributedActorSystem

    public func resolve<Act>(id: ClusterActorID, as actorType: Act.Type) throws -> Act?
    where Act: DistributedActor, Act.ID == ClusterActorID {
        guard let found = local.withLock({ $0[id] }) else { return nil }
        guard let typed = found as? Act else {
            throw ClusterError.invalidArgument("actor \(id) is a \(type(of: found)), not a \(Act.self)")
        }
        return typed
    }

    public func assignID<Act>(_ actorType: Act.Type) -> ClusterActorID where Act: DistributedActor, Act.ID == ClusterActorID {
        Self.assigningID ?? .random()
    }

    public func actorReady<Act>(_ actor: Act) where Act: DistributedActor, Act.ID == ClusterActorID {
        local.withLock { $0[actor.id] = actor }
    }

    public func resignID(_ id: ClusterActorID) {
        local.withLock { _ = $0.removeValue(forKey: id) }
    }

    public func makeInvocationEncoder() -> ClusterInvocationEncoder { ClusterInvocationEncoder() }

    public func remoteCall<Act, Err, Res>(
        on actor: Act, target: RemoteCallTarget, invocation: inout ClusterInvocationEncoder, throwing: Err.Type,
        returning: Res.Type
    ) async throws -> Res where Act: DistributedActor, Act.ID == ClusterActorID, Err: Error, Res: Codable {
        let bytes = try await send(actor.id, target: target, invocation: invocation)
        guard let bytes else { throw ClusterError.peerError("\(target.identifier) returned no value") }
        return try BinaryDecoder().decode(Res.self, from: bytes)
    }

    public func remoteCallVoid<Act, Err>(
        on actor: Act, target: RemoteCallTarget, invocation: inout ClusterInvocationEncoder, throwing: Err.Type
    ) async throws where Act: DistributedActor, Act.ID == ClusterActorID, Err: Error {
        _ = try await send(actor.id, target: target, invocation: invocation)
    }

    private func send(
        _ id: ClusterActorID, target: RemoteCallTarget, invocation: ClusterInvocationEncoder
    ) async throws -> [UInt8]? {
        guard let driver = caller.withLock({ $0 }) else {
            throw ClusterError.connectionFailed(
                "calling actor \(id) needs a driver connection (Cluster.connect); calls from inside executors are not supported yet"
            )
        }
        return try await driver.callActor(
            id, target: target.identifier, substitutions: invocation.genericSubstitutions, arguments: invocation.arguments,
            dependencies: invocation.dependencies)
    }
}

/// Records a call's generic substitutions and arguments, each argument encoded once.
public struct ClusterInvocationEncoder: DistributedTargetInvocationEncoder {
    public typealias SerializationRequirement = any Codable
    var genericSubstitutions: [String] = []
    var arguments: [[UInt8]] = []
    /// `ObjectRef`s met in the arguments: resolved before the call is sent.
    let dependencies = DependencyCollector()

    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws {
        guard let name = _mangledTypeName(type) else {
            throw ClusterError.invalidArgument("generic argument \(type) has no mangled name and cannot travel")
        }
        genericSubstitutions.append(name)
    }

    public mutating func recordArgument<Value: Codable>(_ argument: RemoteCallArgument<Value>) throws {
        var encoder = BinaryEncoder()
        encoder.userInfo[.shoalDependencies] = dependencies
        arguments.append(try encoder.encode(argument.value))
    }

    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}
    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}
    public mutating func doneRecording() throws {}
}

/// Reads a received call back: generic substitutions and arguments, in order.
public struct ClusterInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = any Codable
    let substitutions: [String]
    let arguments: [[UInt8]]
    var resolved = ResolvedObjects.empty
    var next = 0

    public mutating func decodeGenericSubstitutions() throws -> [any Any.Type] {
        try substitutions.map { name in
            guard let type = _typeByName(name) else {
                throw ClusterError.invalidArgument("generic argument type '\(name)' is unknown to this binary")
            }
            return type
        }
    }

    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        guard next < arguments.count else {
            throw ClusterError.invalidArgument("the call has \(arguments.count) arguments; the target wants more")
        }
        defer { next += 1 }
        var decoder = BinaryDecoder()
        decoder.userInfo[.shoalResolvedObjects] = resolved
        return try decoder.decode(Argument.self, from: arguments[next])
    }

    public mutating func decodeErrorType() throws -> (any Any.Type)? { nil }
    public mutating func decodeReturnType() throws -> (any Any.Type)? { nil }
}

/// Hands a call's outcome back to the host, which replies to the caller.
public struct ClusterResultHandler: DistributedTargetInvocationResultHandler {
    public typealias SerializationRequirement = any Codable
    let complete: @Sendable (Result<[UInt8]?, any Error>) -> Void

    public func onReturn<Success: Codable>(value: Success) async throws {
        do {
            complete(.success(try BinaryEncoder().encode(value)))
        } catch {
            complete(.failure(error))
        }
    }

    public func onReturnVoid() async throws { complete(.success(nil)) }

    public func onThrow<Err: Error>(error: Err) async throws { complete(.failure(error)) }
}
