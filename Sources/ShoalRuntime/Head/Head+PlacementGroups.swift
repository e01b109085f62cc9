import Logging
import ShoalTransport
import ShoalWire

/// A placement group: bundles of resources reserved on nodes, all or nothing.
struct PlacementGroupRecord {
    var id: String
    var bundles: [Resources]
    var strategy: BundlePlacer.Strategy
    var jobPeer: [UInt8]
    /// The node of each bundle, once placed; "" for a bundle whose node died, until it is
    /// placed again.
    var nodes: [String] = []
    /// What each bundle has left for leases and actors.
    var available: [Resources] = []
    var creator: (peer: [UInt8], requestID: UInt64)?
    var placed: Bool { !nodes.isEmpty }
}

extension Head {
    func createPlacementGroup(_ create: Shoal_V1_CreatePlacementGroup, peer: [UInt8], requestID: UInt64) throws {
        guard jobs[peer]?.alive == true else {
            try send(.error(requestID, .unknownPeer, "driver is not connected"), to: peer)
            return
        }
        let bundles = create.bundles.map(Resources.init)
        do {
            guard !bundles.isEmpty else { throw ClusterError.invalidArgument("a placement group needs at least one bundle") }
            for bundle in bundles { try bundle.validate() }
        } catch {
            try send(.error(requestID, .invalidArgument, "\(error)"), to: peer)
            return
        }
        let strategy = BundlePlacer.Strategy(create.strategy)
        let id = "pg-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        var record = PlacementGroupRecord(id: id, bundles: bundles, strategy: strategy, jobPeer: peer)
        record.creator = (peer, requestID)
        placementGroups[id] = record
        placeGroup(id)
    }

    /// Reserves every bundle now, or parks the group; answers infeasible groups at once. A group
    /// placed before has only its bundles that lost their node placed again.
    func placeGroup(_ id: String) {
        guard var record = placementGroups[id] else { return }
        guard !record.placed else {
            placeLostBundles(id)
            return
        }
        let alive = nodeOrder.compactMap { nodes[$0] }.filter(\.alive)
        let now = alive.map { BundlePlacer.Node(id: $0.id, available: $0.available) }
        guard let chosen = BundlePlacer.place(record.bundles, strategy: record.strategy, on: now) else {
            let empty = alive.map { BundlePlacer.Node(id: $0.id, available: $0.total) }
            if BundlePlacer.place(record.bundles, strategy: record.strategy, on: empty) == nil, !waitingForFirstNode {
                placementGroups[id] = nil
                pendingGroups.removeAll { $0 == id }
                if let creator = record.creator {
                    let shapes = record.bundles.map(\.description).joined(separator: "; ")
                    try? send(
                        .error(
                            creator.requestID, .infeasible,
                            "placement group \(record.strategy) of [\(shapes)] can never fit the \(alive.count) alive nodes"),
                        to: creator.peer)
                }
            } else if !pendingGroups.contains(id) {
                pendingGroups.append(id)
            }
            return
        }
        for (bundle, nodeID) in zip(record.bundles, chosen) {
            guard var node = nodes[nodeID] else { continue }
            node.available = node.available - bundle
            nodes[nodeID] = node
        }
        record.nodes = chosen
        record.available = record.bundles
        pendingGroups.removeAll { $0 == id }
        if let creator = record.creator {
            record.creator = nil
            var created = Shoal_V1_PlacementGroupCreated()
            created.placementGroupID = id
            created.bundleNodes = chosen
            try? send(Envelope(creator.requestID, .placementGroupCreated(created)), to: creator.peer)
        }
        placementGroups[id] = record
    }

    func removePlacementGroup(_ id: String, reason: String) {
        guard let record = placementGroups.removeValue(forKey: id) else { return }
        pendingGroups.removeAll { $0 == id }
        for lease in leases.values where lease.placementGroup == id {
            failLease(lease.id, reason: "placement group \(id) \(reason)")
        }
        for actor in actors.values where actor.placementGroup == id && actor.state != .dead {
            actorFailed(actor.id, reason: "placement group \(id) \(reason)", code: .unavailable)
        }
        for (bundle, nodeID) in zip(record.bundles, record.nodes) {
            guard var node = nodes[nodeID], node.alive else { continue }
            node.available = node.available + bundle
            nodes[nodeID] = node
        }
        logger.info("placement group removed", metadata: ["group": "\(id)", "reason": "\(reason)"])
    }

    /// Where a lease or actor inside a placement group goes.
    enum BundleDecision {
        case place(nodeID: String, bundle: Int)
        case wait
        case infeasible(String)
    }

    func decideInGroup(_ request: Resources, group id: String, bundle: Int32) -> BundleDecision {
        guard let record = placementGroups[id] else { return .infeasible("no placement group \(id)") }
        guard record.placed else { return .wait }
        let indices: [Int]
        if bundle >= 0 {
            guard Int(bundle) < record.bundles.count else {
                return .infeasible("placement group \(id) has \(record.bundles.count) bundles, not \(bundle + 1)")
            }
            indices = [Int(bundle)]
        } else {
            indices = Array(record.bundles.indices)
        }
        guard indices.contains(where: { record.bundles[$0].covers(request) }) else {
            return .infeasible("no bundle of placement group \(id) can ever hold \(request)")
        }
        guard
            let chosen = indices.first(where: { record.available[$0].covers(request) && nodes[record.nodes[$0]]?.alive == true })
        else {
            return .wait
        }
        return .place(nodeID: record.nodes[chosen], bundle: chosen)
    }

    /// A node died: its bundles lose their place, emptied (the leases and actors it ran are
    /// already gone from them), and wait to be placed again wherever their group's strategy
    /// allows, the node itself included should it join again. Their requests wait meanwhile.
    func unplaceBundles(on nodeID: String) {
        for id in placementGroups.keys.sorted() {
            guard var record = placementGroups[id], record.nodes.contains(nodeID) else { continue }
            for index in record.nodes.indices where record.nodes[index] == nodeID {
                record.nodes[index] = ""
                record.available[index] = record.bundles[index]
            }
            placementGroups[id] = record
            if !pendingGroups.contains(id) { pendingGroups.append(id) }
            logger.warning("placement group lost a node; its bundles there wait for a new one", metadata: ["group": "\(id)", "node": "\(nodeID)"])
        }
    }

    /// Places the bundles of a placed group that lost their node: strict spread keeps them off
    /// the nodes its other bundles hold; strict pack had them all on the node that died.
    private func placeLostBundles(_ id: String) {
        guard var record = placementGroups[id] else { return }
        let lost = record.nodes.indices.filter { record.nodes[$0].isEmpty }
        guard !lost.isEmpty else {
            pendingGroups.removeAll { $0 == id }
            return
        }
        let kept = Set(record.nodes.filter { !$0.isEmpty })
        let candidates = nodeOrder.compactMap { nodes[$0] }
            .filter { $0.alive && !(record.strategy == .strictSpread && kept.contains($0.id)) }
            .map { BundlePlacer.Node(id: $0.id, available: $0.available) }
        guard let chosen = BundlePlacer.place(lost.map { record.bundles[$0] }, strategy: record.strategy, on: candidates) else {
            return
        }
        for (index, nodeID) in zip(lost, chosen) {
            record.nodes[index] = nodeID
            guard var node = nodes[nodeID] else { continue }
            node.available = node.available - record.bundles[index]
            nodes[nodeID] = node
        }
        placementGroups[id] = record
        pendingGroups.removeAll { $0 == id }
        logger.info("placement group bundles placed again", metadata: ["group": "\(id)", "nodes": "\(record.nodes)"])
    }

    /// A group for the status reply: its bundles, where each is, and whether one waits for a node.
    func placementGroupStatus(_ record: PlacementGroupRecord) -> Shoal_V1_PlacementGroupStatus {
        var status = Shoal_V1_PlacementGroupStatus()
        status.placementGroupID = record.id
        status.jobID = jobs[record.jobPeer]?.id ?? ""
        status.strategy = record.strategy.wire
        status.bundles = record.bundles.map(\.proto)
        status.bundleNodes = record.placed ? record.nodes : record.bundles.map { _ in "" }
        status.state = !record.placed ? .pending : record.nodes.contains("") ? .rescheduling : .created
        return status
    }

    func takeFromBundle(_ resources: Resources, group: String, bundle: Int) {
        guard var record = placementGroups[group], bundle < record.available.count else { return }
        record.available[bundle] = record.available[bundle] - resources
        placementGroups[group] = record
    }

    func returnToBundle(_ resources: Resources, group: String, bundle: Int) {
        guard var record = placementGroups[group], bundle < record.available.count else { return }
        record.available[bundle] = record.available[bundle] + resources
        placementGroups[group] = record
    }

    func schedulePendingGroups() {
        for id in pendingGroups { placeGroup(id) }
    }

    func removeGroups(of peer: [UInt8]) {
        for record in placementGroups.values where record.jobPeer == peer {
            removePlacementGroup(record.id, reason: "ended with its job")
        }
    }
}
