import Distributed
import ShoalTransport
import ShoalWire
import Synchronization

/// One hosted actor and the calls waiting for it.
struct ActorSlot {
    struct PendingCall {
        var call: Shoal_V1_ActorCall
        var arguments: [[UInt8]]
        var caller: [UInt8]
    }

    var actor: any DistributedActor
    var maxConcurrency: Int
    var running = 0
    var queue: [PendingCall] = []
    var head = 0
}

/// Where a call's outcome lands while the handler reports it.
final class CallOutcome: Sendable {
    let result = Mutex<Result<[UInt8]?, any Error>?>(nil)
}

extension ExecutorService {
    /// Builds an actor the head placed here, with the id the head chose.
    func startActor(_ start: Shoal_V1_StartActor, arguments: [UInt8]) {
        let id = ClusterActorID(start.actorID)
        let system = ClusterActorSystem.shared
        guard let factory = ActorTypeRegistry.shared.factory(named: start.typeName) else {
            reportActor(start.actorID, error: "no actor type named '\(start.typeName)' is registered in this binary")
            return
        }
        let maxConcurrency = max(1, Int(start.maxConcurrency))
        Task(executorPreference: loop) {
            do {
                let actor = try await ClusterActorSystem.$assigningID.withValue(id) {
                    try await factory.make(arguments, system)
                }
                await self.actorBuilt(actor, id: id, maxConcurrency: maxConcurrency)
            } catch {
                await self.reportActor(start.actorID, error: "building \(start.typeName) failed: \(error)")
            }
        }
    }

    private func actorBuilt(_ actor: any DistributedActor, id: ClusterActorID, maxConcurrency: Int) {
        hostedActors[id] = ActorSlot(actor: actor, maxConcurrency: maxConcurrency)
        reportActor(id.rawValue, error: "")
    }

    private func reportActor(_ id: String, error: String) {
        var started = Shoal_V1_ActorStarted()
        started.actorID = id
        started.executorID = executorID
        started.address = address
        started.error = error
        try? node.send(Envelope(0, .actorStarted(started)))
    }

    /// Drops a hosted actor; calls still queued for it are answered as if it were gone.
    func stopActor(_ id: ClusterActorID) {
        guard let slot = hostedActors.removeValue(forKey: id) else { return }
        for pending in slot.queue[slot.head...] {
            var reply = Shoal_V1_ActorReply()
            reply.callID = pending.call.callID
            reply.actorMissing = true
            try? socket.send(Envelope(0, .actorReply(reply)), to: pending.caller)
        }
    }

    /// Queues a call for its actor; calls run in arrival order, `maxConcurrency` at a time.
    func deliver(_ call: Shoal_V1_ActorCall, arguments: [[UInt8]], from caller: [UInt8]) {
        let id = ClusterActorID(call.actorID)
        guard hostedActors[id] != nil else {
            var reply = Shoal_V1_ActorReply()
            reply.callID = call.callID
            reply.actorMissing = true
            try? socket.send(Envelope(0, .actorReply(reply)), to: caller)
            return
        }
        hostedActors[id]?.queue.append(ActorSlot.PendingCall(call: call, arguments: arguments, caller: caller))
        pumpActor(id)
    }

    private func pumpActor(_ id: ClusterActorID) {
        guard var slot = hostedActors[id] else { return }
        while slot.running < slot.maxConcurrency && slot.head < slot.queue.count {
            let pending = slot.queue[slot.head]
            slot.head += 1
            slot.running += 1
            let actor = slot.actor
            let (arguments, resolved) = resolveArguments(pending)
            Task(executorPreference: loop) {
                let outcome = await Self.execute(on: actor, pending.call, arguments: arguments, resolved: resolved)
                await self.finish(id, pending, outcome, borrowed: self.keptReferences(resolved, owner: pending.caller))
            }
        }
        if slot.head == slot.queue.count {
            slot.queue.removeAll(keepingCapacity: true)
            slot.head = 0
        }
        hostedActors[id] = slot
    }

    /// Splits a call's frames into its arguments and the values of the ObjectRefs inside them.
    private func resolveArguments(_ pending: ActorSlot.PendingCall) -> ([[UInt8]], ResolvedObjects) {
        let count = min(Int(pending.call.argumentCount), pending.arguments.count)
        guard !pending.call.dependencies.isEmpty else { return (Array(pending.arguments.prefix(count)), .empty) }
        var values: [ObjectID: [UInt8]] = [:]
        var locations: [ObjectID: Shoal_V1_ObjectLocation] = [:]
        for dependency in pending.call.dependencies {
            if dependency.frame >= 1 && Int(dependency.frame) <= pending.arguments.count {
                values[dependency.objectID] = pending.arguments[Int(dependency.frame) - 1]
            } else if dependency.hasLocation, (try? ObjectStore.validate(dependency.location.key)) != nil {
                locations[dependency.objectID] = dependency.location
            }
        }
        return (Array(pending.arguments.prefix(count)), ResolvedObjects(values, locations: locations, client: self))
    }

    private func finish(
        _ id: ClusterActorID, _ pending: ActorSlot.PendingCall, _ outcome: Result<[UInt8]?, any Error>, borrowed: [ObjectID]
    ) {
        var reply = Shoal_V1_ActorReply()
        reply.callID = pending.call.callID
        reply.borrowed = borrowed
        var frames: [[UInt8]] = []
        switch outcome {
        case .success(let bytes?):
            frames.append(bytes)
            reply.frame = 1
        case .success(nil):
            break
        case .failure(let error):
            var failure = Shoal_V1_RemoteFailure()
            failure.taskName = pending.call.target
            failure.message = String(describing: error)
            failure.errorType = String(reflecting: type(of: error))
            failure.applicationError = true
            reply.failure = failure
        }
        try? socket.send(Envelope(0, .actorReply(reply)), payloads: frames, to: pending.caller)
        hostedActors[id]?.running -= 1
        pumpActor(id)
    }

    /// Runs one call through the compiler's distributed-target machinery.
    private static func execute(
        on actor: any DistributedActor, _ call: Shoal_V1_ActorCall, arguments: [[UInt8]], resolved: ResolvedObjects
    ) async -> Result<[UInt8]?, any Error> {
        func run<Act: DistributedActor>(_ actor: Act) async -> Result<[UInt8]?, any Error> {
            let outcome = CallOutcome()
            var decoder = ClusterInvocationDecoder(
                substitutions: call.genericSubstitutions, arguments: arguments, resolved: resolved)
            let handler = ClusterResultHandler { result in outcome.result.withLock { $0 = result } }
            do {
                try await ClusterActorSystem.shared.executeDistributedTarget(
                    on: actor, target: RemoteCallTarget(call.target), invocationDecoder: &decoder, handler: handler)
            } catch {
                return .failure(error)
            }
            return outcome.result.withLock { $0 } ?? .failure(ClusterError.peerError("\(call.target) produced no outcome"))
        }
        return await run(actor)
    }
}
