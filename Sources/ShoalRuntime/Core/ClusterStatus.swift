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

    public var headAddress: String
    public var nodes: [Node]
    public var jobs: [Job]
    public var pendingLeases: Int
    public var headMalformedMessages: UInt64
    public var placementGroups: Int
    public var pendingPlacementGroups: Int

    public init(_ reply: Shoal_V1_StatusReply) {
        headAddress = reply.headAddress
        pendingLeases = Int(reply.pendingLeases)
        headMalformedMessages = reply.headMalformedMessages
        placementGroups = Int(reply.placementGroups)
        pendingPlacementGroups = Int(reply.pendingPlacementGroups)
        nodes = reply.nodes.map {
            Node(
                id: $0.nodeID, address: $0.address, alive: $0.alive, total: Resources($0.total),
                available: Resources($0.available), executors: Int($0.executors), malformedMessages: $0.malformedMessages,
                pid: $0.pid, executorAddresses: $0.executorAddresses, objectStoreCapacity: $0.objects.capacity,
                objectStoreUsed: $0.objects.used, objectStoreSpilled: $0.objects.spilled, objectCount: $0.objects.objects,
                spills: $0.objects.spills)
        }
        jobs = reply.jobs.map {
            Job(
                id: $0.jobID, alive: $0.alive, tasksQueued: $0.tasksQueued, tasksRunning: $0.tasksRunning,
                tasksFinished: $0.tasksFinished, leases: Int($0.leases))
        }
    }

    /// A table for people: nodes, resources, jobs and malformed-message counts.
    public var rendered: String {
        var lines = [
            "head \(headAddress)   malformed messages: \(headMalformedMessages)   pending leases: \(pendingLeases)"
                + "   placement groups: \(placementGroups) (\(pendingPlacementGroups) pending)", "",
        ]
        lines.append(
            "NODE".padded(14) + "STATE".padded(7) + "EXECUTORS".padded(11) + "MALFORMED".padded(11) + "RESOURCES (in use / total)"
        )
        for node in nodes {
            let usage = node.total.amounts.keys.sorted().map { name in
                let used = node.total[name] - node.available[name]
                return name == Resources.memory
                    ? "\(name) \(Int(used / 1_048_576))/\(Int(node.total[name] / 1_048_576))MiB"
                    : "\(name) \(used.formatted)/\(node.total[name].formatted)"
            }.joined(separator: ", ")
            lines.append(
                node.id.padded(14) + (node.alive ? "alive" : "DEAD").padded(7) + String(node.executors).padded(11)
                    + String(node.malformedMessages).padded(11)
                    + "\(node.objectCount) (\(node.objectStoreUsed >> 20)/\(node.objectStoreCapacity >> 20), \(node.objectStoreSpilled >> 20))"
                    .padded(38)
                    + usage)
        }
        lines.append("")
        lines.append(
            "JOB".padded(12) + "STATE".padded(10) + "QUEUED".padded(9) + "RUNNING".padded(9) + "FINISHED".padded(10) + "LEASES")
        for job in jobs {
            lines.append(
                job.id.padded(12) + (job.alive ? "running" : "ended").padded(10) + String(job.tasksQueued).padded(9)
                    + String(job.tasksRunning).padded(9) + String(job.tasksFinished).padded(10) + String(job.leases))
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padded(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
