import Logging
import ShoalTransport
import ShoalWire

/// What the head knows of one distributed actor.
struct ActorRecord {
    var id: String
    var typeName: String
    var name: String
    var arguments: [UInt8]
    var resources: Resources
    var strategy: TaskOptions.Strategy
    var maxRestarts: Int
    var restartsLeft: Int
    var maxTaskRetries: UInt32 = 0
    /// Hosted by an executor process of its own.
    var ownProcess = false
    var detached: Bool
    var maxConcurrency: UInt32
    var jobPeer: [UInt8]
    var jobID: String
    var package: String
    var nodeID = ""
    var executorID = ""
    var address = ""
    var state = Shoal_V1_ActorState.State.restarting
    var placementGroup = ""
    var bundleIndex: Int32 = -1
    /// The bundle the actor's resources came from, while placed in one.
    var bundle: Int?
    /// The node's GPUs the actor holds, while placed.
    var gpuIDs: [UInt32] = []
    var reason = ""
    /// The driver waiting for the actor's first start.
    var creator: (peer: [UInt8], requestID: UInt64)?
    /// Rebuilt from the store by a restarted head: waits for nodes to rejoin rather than
    /// failing as infeasible, until the head's recovery period ends.
    var recovered = false

    var location: Shoal_V1_ActorLocation {
        var location = Shoal_V1_ActorLocation()
        location.actorID = id
        location.address = address
        location.nodeID = nodeID
        location.typeName = typeName
        location.maxRestarts = UInt32(maxRestarts)
        location.maxTaskRetries = maxTaskRetries
        return location
    }
}

extension Head {
    func createActor(_ create: Shoal_V1_CreateActor, arguments: [UInt8], peer: [UInt8], requestID: UInt64) throws {
        guard let job = jobs[peer], job.alive else {
            try send(.error(requestID, .unknownPeer, "driver is not connected"), to: peer)
            return
        }
        let resources = Resources(create.resources)
        do {
            try resources.validate()
        } catch {
            try send(.error(requestID, .invalidArgument, "\(error)"), to: peer)
            return
        }
        if !create.name.isEmpty, let existing = actorNames[create.name], let other = actors[existing], other.state != .dead {
            try send(
                .error(requestID, .invalidArgument, "an actor named '\(create.name)' already exists (\(other.id))"), to: peer)
            return
        }
        let strategy: TaskOptions.Strategy =
            switch create.strategy {
            case .spread: .spread
            case .nodeAffinity: .nodeAffinity(nodeID: create.nodeID, soft: create.soft)
            default: .default
            }
        let id = "actor-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        var record = ActorRecord(
            id: id, typeName: create.typeName, name: create.name, arguments: arguments, resources: resources, strategy: strategy,
            maxRestarts: Int(create.maxRestarts), restartsLeft: Int(create.maxRestarts), detached: create.detached,
            maxConcurrency: max(1, create.maxConcurrency), jobPeer: peer, jobID: job.id, package: job.package)
        record.creator = (peer, requestID)
        record.maxTaskRetries = create.maxTaskRetries
        record.ownProcess = create.ownProcess
        record.placementGroup = create.placementGroupID
        record.bundleIndex = create.bundleIndex
        actors[id] = record
        if !create.name.isEmpty { actorNames[create.name] = id }
        if create.detached {
            do {
                try actorStore.save(id: id, request: create, arguments: arguments, jobID: job.id, package: job.package)
            } catch {
                logger.error(
                    "cannot store a detached actor; a restarted head will not rebuild it",
                    metadata: ["actor": "\(id)", "error": "\(error)"])
            }
        }
        placeActor(id)
    }

    /// Rebuilds the detached actors a previous head stored; they are placed as nodes rejoin.
    func recoverDetachedActors() {
        let stored: (rows: [ActorStore.Row], damaged: [String])
        do {
            stored = try actorStore.all()
        } catch {
            logger.error("cannot read the stored detached actors", metadata: ["error": "\(error)"])
            return
        }
        for id in stored.damaged {
            logger.error("a stored detached actor cannot be read; dropping it", metadata: ["actor": "\(id)"])
            try? actorStore.delete(id: id)
        }
        for row in stored.rows {
            let create = row.request
            let strategy: TaskOptions.Strategy =
                switch create.strategy {
                case .spread: .spread
                case .nodeAffinity: .nodeAffinity(nodeID: create.nodeID, soft: create.soft)
                default: .default
                }
            var record = ActorRecord(
                id: row.id, typeName: create.typeName, name: create.name, arguments: row.arguments,
                resources: Resources(create.resources),
                strategy: strategy, maxRestarts: Int(create.maxRestarts), restartsLeft: Int(create.maxRestarts), detached: true,
                maxConcurrency: max(1, create.maxConcurrency), jobPeer: [], jobID: row.jobID, package: row.package)
            record.maxTaskRetries = create.maxTaskRetries
            record.ownProcess = create.ownProcess
            record.reason = "the head restarted"
            record.recovered = true
            if !create.placementGroupID.isEmpty {
                logger.warning(
                    "a recovered detached actor leaves its placement group, which ended with the old head",
                    metadata: ["actor": "\(row.id)"])
            }
            actors[row.id] = record
            if !create.name.isEmpty { actorNames[create.name] = row.id }
            pendingActors.append(row.id)
        }
        if !stored.rows.isEmpty {
            logger.info("rebuilding detached actors as nodes join", metadata: ["actors": "\(stored.rows.count)"])
            // After the recovery period, what still cannot be placed is infeasible.
            loop.schedule(after: Self.actorRecoveryPeriod + .milliseconds(10)) { [weak self] in
                self?.assumeIsolated { $0.schedulePendingActors() }
            }
        }
    }

    /// Places an actor on a node and asks that node to build it; parks it while no node has room.
    func placeActor(_ id: String) {
        guard var record = actors[id] else { return }
        var bundle: Int?
        let decision: Scheduler.Decision
        if !record.placementGroup.isEmpty {
            switch decideInGroup(record.resources, group: record.placementGroup, bundle: record.bundleIndex) {
            case .infeasible(let why): decision = .infeasible(why)
            case .wait: decision = .wait
            case .place(let nodeID, let index):
                bundle = index
                decision = .place(nodeID: nodeID)
            }
        } else {
            decision = scheduler.decide(record.resources, strategy: record.strategy, nodes: candidates())
        }
        switch decision {
        case .infeasible
        where (record.recovered && ContinuousClock.now < recoveryDeadline)
            || (waitingForFirstNode && record.placementGroup.isEmpty) || schedulingHeld:
            if !pendingActors.contains(id) { pendingActors.append(id) }
        case .infeasible(let why):
            actorFailed(id, reason: "infeasible: \(why)", code: .infeasible)
        case .wait:
            if !pendingActors.contains(id) { pendingActors.append(id) }
        case .place(let nodeID):
            guard var node = nodes[nodeID] else { return }
            if let bundle {
                takeFromBundle(record.resources, group: record.placementGroup, bundle: bundle)
            } else {
                node.available = node.available - record.resources
                nodes[nodeID] = node
            }
            record.bundle = bundle
            record.nodeID = nodeID
            let gpus = Int(record.resources[Resources.gpu].rounded(.up))
            if gpus > 0 {
                let used = gpuInUse[nodeID, default: []]
                record.gpuIDs = Array((0..<UInt32(node.total[Resources.gpu])).filter { !used.contains($0) }.prefix(gpus))
                gpuInUse[nodeID, default: []].formUnion(record.gpuIDs)
            }
            record.executorID = ""
            record.address = ""
            actors[id] = record
            var start = Shoal_V1_StartActor()
            start.actorID = id
            start.typeName = record.typeName
            start.jobID = record.jobID
            start.packageSha256 = record.package
            start.maxConcurrency = record.maxConcurrency
            start.headAddress = address
            start.detached = record.detached
            start.gpuIds = record.gpuIDs
            start.ownProcess = record.ownProcess
            try? send(Envelope(0, .startActor(start)), payloads: [record.arguments], to: node.peer)
        }
    }

    /// An actor's host reports it built (or failed to build) the actor; only the node the actor
    /// is placed on now may say so, as a node declared dead may still forward an older report.
    func actorStarted(_ started: Shoal_V1_ActorStarted, from peer: [UInt8]) {
        guard var record = actors[started.actorID], record.state != .dead, isPlaced(record, on: peer) else { return }
        guard started.error.isEmpty else {
            actorFailed(started.actorID, reason: started.error, code: .invalidArgument)
            return
        }
        record.executorID = started.executorID
        record.address = started.address
        record.state = .alive
        record.recovered = false
        actors[started.actorID] = record
        if let creator = record.creator {
            actors[started.actorID]?.creator = nil
            try? send(Envelope(creator.requestID, .actorLocation(record.location)), to: creator.peer)
        }
        broadcastActorState(record)
    }

    func lookupActor(_ lookup: Shoal_V1_LookupActor, peer: [UInt8], requestID: UInt64) throws {
        let id = lookup.name.isEmpty ? lookup.actorID : (actorNames[lookup.name] ?? "")
        guard let record = actors[id] else {
            let what = lookup.name.isEmpty ? "id \(lookup.actorID)" : "name '\(lookup.name)'"
            try send(.error(requestID, .notFound, "no actor with \(what)"), to: peer)
            return
        }
        guard record.state != .dead else {
            try send(.error(requestID, .notFound, "actor \(id) is dead: \(record.reason)"), to: peer)
            return
        }
        try send(Envelope(requestID, .actorLocation(record.location)), to: peer)
    }

    func killActor(_ kill: Shoal_V1_KillActor, peer: [UInt8], requestID: UInt64) throws {
        guard let record = actors[kill.actorID], record.state != .dead else {
            try send(.error(requestID, .notFound, "no living actor \(kill.actorID)"), to: peer)
            return
        }
        // The hosting executor drops it; callers then see it dead or rebuilt.
        if !record.executorID.isEmpty, let node = nodes[record.nodeID], node.alive {
            var stop = Shoal_V1_StopActor()
            stop.actorID = record.id
            stop.executorID = record.executorID
            try? send(Envelope(0, .stopActor(stop)), to: node.peer)
        }
        if kill.noRestart {
            actorFailed(record.id, reason: "killed", code: .unavailable)
        } else {
            restartOrBury(record.id, reason: "killed")
        }
        try send(Envelope(requestID, .killActor(kill)), to: peer)
    }

    /// The actor's process or node is gone: rebuild it if it has restarts left.
    func restartOrBury(_ id: String, reason: String) {
        guard var record = actors[id], record.state != .dead else { return }
        releaseActorResources(&record)
        guard record.restartsLeft > 0 else {
            actors[id] = record
            actorFailed(id, reason: reason, code: .unavailable)
            return
        }
        record.restartsLeft -= 1
        record.state = .restarting
        record.reason = reason
        actors[id] = record
        logger.warning(
            "restarting actor", metadata: ["actor": "\(id)", "reason": "\(reason)", "restarts left": "\(record.restartsLeft)"])
        broadcastActorState(record)
        placeActor(id)
    }

    private func releaseActorResources(_ record: inout ActorRecord) {
        if let bundle = record.bundle {
            returnToBundle(record.resources, group: record.placementGroup, bundle: bundle)
        } else if !record.nodeID.isEmpty, var node = nodes[record.nodeID], node.alive {
            node.available = node.available + record.resources
            nodes[record.nodeID] = node
        }
        if !record.gpuIDs.isEmpty { gpuInUse[record.nodeID]?.subtract(record.gpuIDs) }
        record.gpuIDs = []
        record.bundle = nil
        record.nodeID = ""
        // Its host is gone too: a later host with the same id (a restarted daemon counts from
        // e1 again) is not this actor's.
        record.executorID = ""
        record.address = ""
    }

    func actorFailed(_ id: String, reason: String, code: Shoal_V1_ErrorReply.Code) {
        guard var record = actors[id] else { return }
        releaseActorResources(&record)
        record.state = .dead
        record.reason = reason
        pendingActors.removeAll { $0 == id }
        if let creator = record.creator {
            record.creator = nil
            try? send(.error(creator.requestID, code, "actor \(record.typeName) could not start: \(reason)"), to: creator.peer)
        }
        actors[id] = record
        broadcastActorState(record)
        if record.detached {
            do {
                try actorStore.delete(id: id)
            } catch {
                logger.error(
                    "cannot remove a dead detached actor from the store", metadata: ["actor": "\(id)", "error": "\(error)"])
            }
        }
    }

    func broadcastActorState(_ record: ActorRecord) {
        var state = Shoal_V1_ActorState()
        state.actorID = record.id
        state.state = record.state
        state.address = record.address
        state.reason = record.reason
        for job in jobs.values where job.alive {
            try? send(Envelope(0, .actorState(state)), to: job.peer)
        }
    }

    /// Actors whose host executor died.
    /// Whether the actor is placed on the alive node that `peer` is: only that node reports on it.
    private func isPlaced(_ record: ActorRecord, on peer: [UInt8]) -> Bool {
        guard let node = nodes[record.nodeID] else { return false }
        return node.alive && node.peer == peer
    }

    /// An actor host exited: its actors, and those it was still building (placed on the node
    /// that reports it, not yet reported built), are rebuilt or buried.
    func actorHostExited(_ executorID: String, reason: String, building: [String], from peer: [UInt8]) {
        // Only the node the actors live on speaks for their executor.
        for record in actors.values where record.executorID == executorID && record.state != .dead && isPlaced(record, on: peer) {
            restartOrBury(record.id, reason: "its executor \(executorID) \(reason)")
        }
        for id in building {
            guard let record = actors[id], record.state != .dead, record.executorID.isEmpty, isPlaced(record, on: peer)
            else { continue }
            restartOrBury(id, reason: "its executor \(executorID) \(reason) while building it")
        }
    }

    /// Actors on a node that died.
    func actorsOnDeadNode(_ nodeID: String, reason: String) {
        for record in actors.values where record.nodeID == nodeID && record.state != .dead {
            restartOrBury(record.id, reason: "node \(nodeID) died (\(reason))")
        }
    }

    /// A job ended: its actors end too, except detached ones.
    func actorsOfEndedJob(_ jobID: String) {
        for record in actors.values where record.jobID == jobID && !record.detached && record.state != .dead {
            actorFailed(record.id, reason: "job \(jobID) ended", code: .unavailable)
        }
    }

    func schedulePendingActors() {
        guard !pendingActors.isEmpty else { return }
        let waiting = pendingActors
        pendingActors.removeAll()
        for id in waiting { placeActor(id) }
    }
}
