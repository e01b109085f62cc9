/// Picks the node for a lease. Pure: given the nodes' state, it decides; the head applies it.
struct Scheduler {
    struct Candidate {
        var nodeID: String
        var alive: Bool
        var total: Resources
        var available: Resources
    }

    enum Decision: Equatable {
        case place(nodeID: String)
        /// Fits somewhere once resources free up.
        case wait
        /// No node can ever provide it.
        case infeasible(String)
    }

    /// Nodes are packed until this share of their CPUs is used, then tasks spread.
    var spreadThreshold = 0.5

    func decide(_ request: Resources, strategy: TaskOptions.Strategy, nodes: [Candidate]) -> Decision {
        let alive = nodes.filter(\.alive)
        if case .nodeAffinity(let nodeID, let soft) = strategy {
            if let node = alive.first(where: { $0.nodeID == nodeID }), node.total.covers(request) {
                if node.available.covers(request) { return .place(nodeID: nodeID) }
                if !soft { return .wait }
            } else if !soft {
                return .infeasible("node \(nodeID) is not alive or cannot hold \(request)")
            }
        }
        guard alive.contains(where: { $0.total.covers(request) }) else {
            let totals = alive.map { "\($0.nodeID): \($0.total)" }.joined(separator: "; ")
            return .infeasible("no node can ever provide \(request) (nodes: \(totals.isEmpty ? "none" : totals))")
        }
        let fitting = alive.filter { $0.available.covers(request) }
        guard !fitting.isEmpty else { return .wait }

        func utilisation(_ node: Candidate, after: Bool) -> Double {
            var worst = 0.0
            for (name, total) in node.total.amounts where total > 0 {
                let used = total - node.available[name] + (after ? request[name] : 0)
                worst = max(worst, used / total)
            }
            return worst
        }
        let leastLoaded = fitting.min { utilisation($0, after: false) < utilisation($1, after: false) } ?? fitting[0]
        switch strategy {
        case .spread:
            return .place(nodeID: leastLoaded.nodeID)
        case .default, .nodeAffinity, .placementGroup:
            // Pack: the busiest node that stays under the threshold; else spread.
            let packable = fitting.filter { utilisation($0, after: true) <= spreadThreshold + 1e-9 }
            if let busiest = packable.max(by: { utilisation($0, after: false) < utilisation($1, after: false) }) {
                return .place(nodeID: busiest.nodeID)
            }
            return .place(nodeID: leastLoaded.nodeID)
        }
    }
}
