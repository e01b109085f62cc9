/// Places a placement group's bundles on nodes, all or nothing. Pure: the head applies the
/// answer.
struct BundlePlacer {
    /// The strategies a driver names (`PlacementGroup.Strategy`), with their wire form.
    typealias Strategy = PlacementGroup.Strategy

    struct Node {
        var id: String
        var available: Resources
    }

    /// The node of each bundle, or nil when the bundles do not fit these nodes now.
    static func place(_ bundles: [Resources], strategy: Strategy, on nodes: [Node]) -> [String]? {
        guard !bundles.isEmpty, !nodes.isEmpty else { return nil }
        switch strategy {
        case .strictPack:
            let total = bundles.reduce(Resources(), +)
            return nodes.first { $0.available.covers(total) }.map { node in bundles.map { _ in node.id } }
        case .pack:
            if let packed = place(bundles, strategy: .strictPack, on: nodes) { return packed }
            return greedy(bundles, nodes: nodes, preferUsed: true, distinct: false)
        case .spread:
            return greedy(bundles, nodes: nodes, preferUsed: false, distinct: false)
        case .strictSpread:
            guard nodes.count >= bundles.count else { return nil }
            return greedy(bundles, nodes: nodes, preferUsed: false, distinct: true)
        }
    }

    /// Largest bundles first; each to a node that fits, preferring nodes already used (pack) or
    /// unused (spread); `distinct` forbids reuse.
    private static func greedy(_ bundles: [Resources], nodes: [Node], preferUsed: Bool, distinct: Bool) -> [String]? {
        var available = nodes
        var uses = [Int](repeating: 0, count: nodes.count)
        var result = [String](repeating: "", count: bundles.count)
        let order = bundles.indices.sorted { size(bundles[$0]) > size(bundles[$1]) }
        for index in order {
            let candidates = available.indices.filter {
                available[$0].available.covers(bundles[index]) && (!distinct || uses[$0] == 0)
            }
            let chosen =
                preferUsed
                ? candidates.max { (uses[$0], -$0) < (uses[$1], -$1) }
                : candidates.min { (uses[$0], $0) < (uses[$1], $1) }
            guard let chosen else { return nil }
            available[chosen].available = available[chosen].available - bundles[index]
            uses[chosen] += 1
            result[index] = available[chosen].id
        }
        return result
    }

    private static func size(_ resources: Resources) -> Double {
        resources.amounts.filter { $0.key != Resources.memory }.values.reduce(0, +)
    }
}

