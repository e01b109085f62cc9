import ShoalTransport
import ShoalWire

/// One-off requests to a head from tools (`cluster status`, `cluster stop`), without joining
/// as a driver.
public struct ControlClient: Sendable {
    /// The head's address, `tcp://host:port`.
    public let address: String

    public init(address: String) {
        self.address = address.hasPrefix("tcp://") ? address : "tcp://" + address
    }

    /// The cluster's status.
    /// - Throws: `ClusterError.connectionFailed` when the head does not answer within `timeout`.
    public func status(timeout: Duration = .seconds(5)) throws -> ClusterStatus {
        let reply = try request(.statusRequest(Shoal_V1_StatusRequest()), timeout: timeout)
        guard case .statusReply(let status) = reply.body else {
            throw ClusterError.peerError("the head at \(address) answered status with something else")
        }
        return ClusterStatus(status)
    }

    /// Asks the head to tell every node daemon to stop its executors and exit.
    public func shutdownCluster(timeout: Duration = .seconds(5)) throws {
        _ = try request(.shutdownCluster(Shoal_V1_ShutdownCluster()), timeout: timeout)
    }

    private func request(_ body: Envelope.OneOf_Body, timeout: Duration) throws -> Envelope {
        try RequestChannel(address: address, peer: "head", namesServerInErrors: true).request(body, timeout: timeout).envelope
    }
}
