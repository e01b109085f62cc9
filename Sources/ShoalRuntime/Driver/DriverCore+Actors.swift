import ShoalTransport
import ShoalWire

/// Where the driver sends calls for one actor, and what it knows of its state.
struct ActorRoute {
    var address: String
    var state: Shoal_V1_ActorState.State
    var reason = ""
    var maxTaskRetries = 0
}

/// A call waiting for its reply, or for its actor to come back.
struct PendingActorCall {
    var actorID: ClusterActorID
    var call: Shoal_V1_ActorCall
    var arguments: [[UInt8]]
    var continuation: CheckedContinuation<[UInt8]?, any Error>
    var retriesLeft: Int
    /// Keeps the objects passed in the arguments alive until the call is done.
    var dependencies: [RefStorage] = []
}

extension DriverCore {
    /// Asks the head to place and build an actor; returns its id once it is alive.
    public func spawnActor(typeName: String, arguments: [UInt8], options: ActorOptions) async throws -> ClusterActorID {
        try options.resources.validate()
        guard options.maxRestarts >= 0, options.maxConcurrency >= 1 else {
            throw ClusterError.invalidArgument("maxRestarts must be >= 0 and maxConcurrency >= 1")
        }
        var create = Shoal_V1_CreateActor()
        create.typeName = typeName
        create.name = options.name ?? ""
        create.resources = options.resources.proto
        let wire = options.strategy.wire
        create.strategy = wire.strategy
        create.nodeID = wire.nodeID
        create.soft = wire.soft
        create.placementGroupID = wire.placementGroup
        create.bundleIndex = wire.bundle
        create.maxRestarts = UInt32(options.maxRestarts)
        create.maxTaskRetries = UInt32(max(0, options.maxTaskRetries))
        create.detached = options.lifetime == .detached
        create.maxConcurrency = UInt32(options.maxConcurrency)
        create.ownProcess = options.ownProcess
        let reply = try await request(
            .createActor(create), payloads: [arguments], timeout: .seconds(120), what: "creating actor \(typeName)")
        guard case .actorLocation(let location) = reply.body else {
            throw ClusterError.peerError("creating actor \(typeName): unexpected reply")
        }
        return learn(location)
    }

    /// Ends an actor now; with `noRestart` false it is rebuilt like after a crash (if it has
    /// restarts left).
    public func killActor(_ id: ClusterActorID, noRestart: Bool) async throws {
        var kill = Shoal_V1_KillActor()
        kill.actorID = id.rawValue
        kill.noRestart = noRestart
        _ = try await request(.killActor(kill), timeout: .seconds(10), what: "killing actor \(id)")
    }

    /// Finds a living actor by name.
    public func lookupActor(named name: String) async throws -> ClusterActorID {
        var lookup = Shoal_V1_LookupActor()
        lookup.name = name
        let reply = try await request(.lookupActor(lookup), timeout: .seconds(10), what: "looking up actor '\(name)'")
        guard case .actorLocation(let location) = reply.body else {
            throw ClusterError.peerError("looking up actor '\(name)': unexpected reply")
        }
        return learn(location)
    }

    private func learn(_ location: Shoal_V1_ActorLocation) -> ClusterActorID {
        let id = ClusterActorID(location.actorID)
        actorRoutes[id] = ActorRoute(address: location.address, state: .alive, maxTaskRetries: Int(location.maxTaskRetries))
        return id
    }

    /// Sends one call to the executor hosting the actor and waits for its reply.
    /// - Returns: the encoded return value, nil for `Void`.
    func callActor(
        _ id: ClusterActorID, target: String, substitutions: [String], arguments: [[UInt8]], dependencies: DependencyCollector
    ) async throws -> [UInt8]? {
        guard !closed else { throw ActorDiedError(actorID: id, reason: closedReason) }
        if actorRoutes[id] == nil {
            var lookup = Shoal_V1_LookupActor()
            lookup.actorID = id.rawValue
            do {
                let reply = try await request(.lookupActor(lookup), timeout: .seconds(10), what: "finding actor \(id)")
                if case .actorLocation(let location) = reply.body, actorRoutes[id] == nil { _ = learn(location) }
            } catch let error as ClusterError {
                throw ActorDiedError(actorID: id, reason: error.message)
            }
        }
        var call = Shoal_V1_ActorCall()
        call.callID = nextRequestID
        nextRequestID += 1
        call.actorID = id.rawValue
        call.target = target
        call.genericSubstitutions = substitutions
        call.argumentCount = UInt32(arguments.count)
        // ObjectRefs in the arguments: wait for them, then ship small values along and tell
        // where large ones are.
        var frames = arguments
        for dependency in dependencies.ids {
            var resolved = Shoal_V1_ResolvedDependency()
            resolved.objectID = dependency
            switch try await value(of: dependency, timeout: nil) {
            case .inline(let bytes):
                frames.append(bytes)
                resolved.frame = UInt32(frames.count)
            case .stored(let location):
                resolved.location = location
            }
            call.dependencies.append(resolved)
        }
        let payload = frames
        return try await withCheckedThrowingContinuation { continuation in
            dispatch(
                PendingActorCall(
                    actorID: id, call: call, arguments: payload, continuation: continuation,
                    retriesLeft: actorRoutes[id]?.maxTaskRetries ?? 0, dependencies: dependencies.storages))
        }
    }

    /// Sends a call now, parks it while its actor restarts, or fails it if the actor is dead.
    private func dispatch(_ pending: PendingActorCall) {
        guard let route = actorRoutes[pending.actorID] else {
            pending.continuation.resume(throwing: ActorDiedError(actorID: pending.actorID, reason: "unknown actor"))
            return
        }
        switch route.state {
        case .dead:
            pending.continuation.resume(throwing: ActorDiedError(actorID: pending.actorID, reason: route.reason))
        case .restarting:
            parkedActorCalls[pending.actorID, default: []].append(pending)
        default:
            do {
                try actorSocket(route.address).send(Envelope(0, .actorCall(pending.call)), payloads: pending.arguments)
                actorCalls[pending.call.callID] = pending
                // A lone call's caller is waiting: poll for the reply rather than sleep.
                if actorCalls.count <= 2 { loop.pollBriefly(for: .microseconds(SpinSetting.waitMicroseconds)) }
            } catch {
                pending.continuation.resume(
                    throwing: ActorDiedError(actorID: pending.actorID, reason: "cannot reach its executor: \(error)"))
            }
        }
    }

    private func actorSocket(_ address: String) throws -> Connection {
        if let socket = actorSockets[address] { return socket }
        let socket = try Connection(to: address, on: loop, preferLocal: LocalLinkSetting.enabled) { [weak self] message in
            self?.assumeIsolated { $0.receiveActorReply(message) }
        }
        actorSockets[address] = socket
        return socket
    }

    private func receiveActorReply(_ message: ShoalTransport.Message) {
        guard let incoming = try? Incoming(message, routed: false) else { return }
        if case .releaseBorrows(let release) = incoming.envelope.body {
            releaseBorrows(release.objectIds)
            return
        }
        guard case .actorReply(let reply) = incoming.envelope.body, let pending = actorCalls.removeValue(forKey: reply.callID)
        else {
            return
        }
        for id in reply.borrowed { borrowCounts[id, default: 0] += 1 }
        if reply.actorMissing {
            pending.continuation.resume(
                throwing: ActorDiedError(actorID: pending.actorID, reason: "its executor no longer hosts it"))
        } else if reply.hasFailure {
            let failure = reply.failure
            pending.continuation.resume(
                throwing: TaskError(.remote, task: failure.taskName, message: failure.message, errorType: failure.errorType))
        } else if reply.frame == 0 {
            pending.continuation.resume(returning: nil)
        } else {
            do {
                pending.continuation.resume(returning: try incoming.payload(reply.frame))
            } catch {
                pending.continuation.resume(throwing: error)
            }
        }
    }

    /// The head says an actor restarted, came back, or died.
    func actorStateChanged(_ state: Shoal_V1_ActorState) {
        let id = ClusterActorID(state.actorID)
        let previous = actorRoutes[id]
        actorRoutes[id] = ActorRoute(
            address: state.address, state: state.state, reason: state.reason, maxTaskRetries: previous?.maxTaskRetries ?? 0)
        if state.state != .alive || previous?.address != state.address {
            // Calls sent to the old process will not be answered: sent again once the actor is
            // back if it allows retries, else failed.
            for (callID, pending) in actorCalls where pending.actorID == id {
                actorCalls[callID] = nil
                if pending.retriesLeft > 0 && state.state != .dead {
                    var retry = pending
                    retry.retriesLeft -= 1
                    parkedActorCalls[id, default: []].append(retry)
                } else {
                    pending.continuation.resume(
                        throwing: ActorDiedError(
                            actorID: id, reason: state.reason.isEmpty ? "it moved while the call was in flight" : state.reason))
                }
            }
        }
        if state.state != .restarting {
            for pending in parkedActorCalls.removeValue(forKey: id) ?? [] { dispatch(pending) }
        }
    }
}
