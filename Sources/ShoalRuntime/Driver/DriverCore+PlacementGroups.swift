import ShoalWire

/// Bundles of resources reserved across nodes, all or nothing; tasks and actors run inside them
/// with `TaskOptions.Strategy.placementGroup` or `group.bundle(_:)`.
public struct PlacementGroup: Sendable, Hashable {
    /// How bundles are laid out on nodes.
    public enum Strategy: Sendable {
        /// As few nodes as possible, spreading only when needed.
        case pack
        /// As many nodes as possible, sharing only when needed.
        case spread
        /// All bundles on one node.
        case strictPack
        /// Every bundle on its own node.
        case strictSpread
    }

    public let id: String
    /// The node each bundle was reserved on.
    public let bundleNodes: [String]

    /// The strategy that runs a task or actor in bundle `index` (nil: any bundle with room).
    public func bundle(_ index: Int?) -> TaskOptions.Strategy { .placementGroup(id: id, bundle: index) }
}

extension PlacementGroup.Strategy {
    init(_ wire: Shoal_V1_PlacementStrategy) {
        self =
            switch wire {
            case .bundlesSpread: .spread
            case .bundlesStrictPack: .strictPack
            case .bundlesStrictSpread: .strictSpread
            default: .pack
            }
    }

    var wire: Shoal_V1_PlacementStrategy {
        switch self {
        case .pack: .bundlesPack
        case .spread: .bundlesSpread
        case .strictPack: .bundlesStrictPack
        case .strictSpread: .bundlesStrictSpread
        }
    }
}

extension DriverCore {
    /// Reserves the bundles; returns once every one is placed.
    /// - Throws: `ClusterError` at once when the group can never fit the cluster, or on timeout.
    public func createPlacementGroup(
        _ bundles: [Resources], strategy: PlacementGroup.Strategy, timeout: Duration = .seconds(60)
    ) async throws -> PlacementGroup {
        var create = Shoal_V1_CreatePlacementGroup()
        create.bundles = bundles.map(\.proto)
        create.strategy = strategy.wire
        let reply = try await request(.createPlacementGroup(create), timeout: timeout, what: "creating a placement group")
        guard case .placementGroupCreated(let created) = reply.body else {
            throw ClusterError.peerError("creating a placement group: unexpected reply")
        }
        return PlacementGroup(id: created.placementGroupID, bundleNodes: created.bundleNodes)
    }

    /// Frees the reservation; tasks and actors running inside it end.
    public func removePlacementGroup(_ group: PlacementGroup) async throws {
        var remove = Shoal_V1_RemovePlacementGroup()
        remove.placementGroupID = group.id
        _ = try await request(.removePlacementGroup(remove), timeout: .seconds(10), what: "removing placement group \(group.id)")
    }
}
