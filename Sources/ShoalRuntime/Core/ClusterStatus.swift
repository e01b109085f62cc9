import ShoalWire

/// A snapshot of the cluster, as the head sees it.
public struct ClusterStatus: Sendable {
    public struct Node: Sendable {
        public var id: String
        public var address: String
        public var alive: Bool
        public var total: Resources
        public var available: Resources
        public var executors: Int
        public var malformedMessages: UInt64
        public var pid: Int32
        public var executorAddresses: [String]
        /// Object store: capacity, bytes in shared memory, bytes spilled to disk, objects, spills.
        public var objectStoreCapacity: UInt64
        public var objectStoreUsed: UInt64
        public var objectStoreSpilled: UInt64
        public var objectCount: UInt64
        public var spills: UInt64
    }

    public struct Job: Sendable {
        public var id: String
        public var alive: Bool
        public var tasksQueued: UInt64
        public var tasksRunning: UInt64
        public var tasksFinished: UInt64
        public var leases: Int
    }

    public struct PlacementGroup: Sendable {
        public enum State: String, Sendable {
            /// Not placed yet: waits for room.
            case pending
            /// Every bundle has its node.
            case created
            /// A bundle lost its node (it died) and waits for another.
            case rescheduling

            init(_ wire: Shoal_V1_PlacementGroupStatus.State) {
                self =
                    switch wire {
                    case .created: .created
                    case .rescheduling: .rescheduling
                    default: .pending
                    }
            }
        }

        public var id: String
        public var jobID: String
        public var strategy: ShoalRuntime.PlacementGroup.Strategy
        public var bundles: [Resources]
        /// The node of each bundle; "" for one without a node.
        public var bundleNodes: [String]
        public var state: State
    }

    public var headAddress: String
    public var nodes: [Node]
    public var jobs: [Job]
    public var pendingLeases: Int
    public var headMalformedMessages: UInt64
    public var placementGroups: Int
    public var pendingPlacementGroups: Int
    public var groups: [PlacementGroup]

    public init(_ reply: Shoal_V1_StatusReply) {
        headAddress = reply.headAddress
        pendingLeases = Int(reply.pendingLeases)
        headMalformedMessages = reply.headMalformedMessages
        placementGroups = Int(reply.placementGroups)
        pendingPlacementGroups = Int(reply.pendingPlacementGroups)
        // A dead node's executors are gone and its resources are not there to use: neither counts.
        nodes = reply.nodes.map {
            Node(
                id: $0.nodeID, address: $0.address, alive: $0.alive, total: Resources($0.total),
                available: $0.alive ? Resources($0.available) : Resources(), executors: $0.alive ? Int($0.executors) : 0,
                malformedMessages: $0.malformedMessages,
                pid: $0.pid, executorAddresses: $0.executorAddresses, objectStoreCapacity: $0.objects.capacity,
                objectStoreUsed: $0.objects.used, objectStoreSpilled: $0.objects.spilled, objectCount: $0.objects.objects,
                spills: $0.objects.spills)
        }
        groups = reply.groups.map {
            PlacementGroup(
                id: $0.placementGroupID, jobID: $0.jobID, strategy: ShoalRuntime.PlacementGroup.Strategy($0.strategy),
                bundles: $0.bundles.map(Resources.init), bundleNodes: $0.bundleNodes, state: PlacementGroup.State($0.state))
        }
        jobs = reply.jobs.map {
            Job(
                id: $0.jobID, alive: $0.alive, tasksQueued: $0.tasksQueued, tasksRunning: $0.tasksRunning,
                tasksFinished: $0.tasksFinished, leases: Int($0.leases))
        }
    }

    /// The resources of the alive nodes together (a dead node's are not there to use).
    public var aliveTotal: Resources { nodes.filter(\.alive).reduce(Resources()) { $0 + $1.total } }
    /// What the alive nodes have free together.
    public var aliveAvailable: Resources { nodes.filter(\.alive).reduce(Resources()) { $0 + $1.available } }

    /// A table for people: nodes, resources, jobs and malformed-message counts.
    public var rendered: String {
        var lines = [
            "head \(headAddress)   malformed messages: \(headMalformedMessages)   pending leases: \(pendingLeases)"
                + "   placement groups: \(placementGroups) (\(pendingPlacementGroups) pending)", "",
        ]
        lines.append(
            "NODE".padded(14) + "STATE".padded(7) + "EXECUTORS".padded(11) + "MALFORMED".padded(11)
                + "OBJECTS (MiB used/capacity, spilled)".padded(38) + "RESOURCES (in use / total)"
        )
        func amount(_ name: String, _ value: Double) -> String {
            name == Resources.memory ? "\(Int(value / 1_048_576))MiB" : value.formatted
        }
        func usage(total: Resources, available: Resources) -> String {
            total.amounts.keys.sorted().map { name in
                let used = total[name] - available[name]
                return name == Resources.memory
                    ? "\(name) \(Int(used / 1_048_576))/\(Int(total[name] / 1_048_576))MiB"
                    : "\(name) \(used.formatted)/\(total[name].formatted)"
            }.joined(separator: ", ")
        }
        for node in nodes {
            let resources =
                node.alive
                ? usage(total: node.total, available: node.available)
                : "unavailable (" + node.total.amounts.keys.sorted().map { "\($0) \(amount($0, node.total[$0]))" }.joined(
                    separator: ", ") + ")"
            lines.append(
                node.id.padded(14) + (node.alive ? "alive" : "DEAD").padded(7) + (node.alive ? String(node.executors) : "gone").padded(11)
                    + String(node.malformedMessages).padded(11)
                    + "\(node.objectCount) (\(node.objectStoreUsed >> 20)/\(node.objectStoreCapacity >> 20), \(node.objectStoreSpilled >> 20))"
                    .padded(38)
                    + resources)
        }
        let alive = nodes.filter(\.alive)
        lines.append(
            "TOTAL".padded(14) + "\(alive.count)/\(nodes.count)".padded(7) + String(alive.reduce(0) { $0 + $1.executors }).padded(11)
                + "".padded(11) + "".padded(38) + usage(total: aliveTotal, available: aliveAvailable) + "   (alive nodes)")
        lines.append("")
        lines.append(
            "JOB".padded(12) + "STATE".padded(10) + "QUEUED".padded(9) + "RUNNING".padded(9) + "FINISHED".padded(10) + "LEASES")
        for job in jobs {
            lines.append(
                job.id.padded(12) + (job.alive ? "running" : "ended").padded(10) + String(job.tasksQueued).padded(9)
                    + String(job.tasksRunning).padded(9) + String(job.tasksFinished).padded(10) + String(job.leases))
        }
        if !groups.isEmpty {
            lines.append("")
            lines.append("PLACEMENT GROUP".padded(22) + "JOB".padded(10) + "STATE".padded(14) + "STRATEGY".padded(15) + "BUNDLES (node)")
            for group in groups {
                let bundles = zip(group.bundles, group.bundleNodes).map { bundle, node in
                    "\(bundle) (\(node.isEmpty ? "-" : node))"
                }.joined(separator: ", ")
                lines.append(
                    group.id.padded(22) + group.jobID.padded(10) + group.state.rawValue.uppercased().padded(14)
                        + "\(group.strategy)".padded(15) + bundles)
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padded(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
