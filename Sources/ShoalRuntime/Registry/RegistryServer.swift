import Dispatch
import Foundation
import Logging
import ShoalTransport
import ShoalWire

extension RegistryService {
    /// Runs a registry request off the caller's thread and hands the reply (or the error) to
    /// `reply`, which the owner of the socket sends from its own loop.
    /// - Parameter reply: sends one message to the asker: each piece of a download asked for
    ///   in pieces, then the reply or the error.
    func dispatch(
        _ request: Shoal_V1_RegistryRequest, artifact: [UInt8]?, requestID: UInt64, peer: [UInt8],
        reply: @escaping @Sendable (Envelope, [[UInt8]]) -> Void
    ) {
        DispatchQueue.global().async { [self] in
            respond(to: request, artifact: artifact, requestID: requestID, peer: peer, reply: reply)
        }
    }

    /// Carries out a request on this thread and hands its messages to `reply`.
    func respond(
        to request: Shoal_V1_RegistryRequest, artifact: [UInt8]?, requestID: UInt64, peer: [UInt8],
        reply: (Envelope, [[UInt8]]) -> Void
    ) {
        do {
            let (answer, bytes) = try handle(request, artifact: artifact, peer: peer) { offset, total, bytes in
                var chunk = Shoal_V1_ArtifactChunk()
                chunk.offset = offset
                chunk.total = total
                reply(Envelope(requestID, .artifactChunk(chunk)), [bytes])
            }
            reply(Envelope(requestID, .registryReply(answer)), bytes.map { [$0] } ?? [])
        } catch let error as RegistryError {
            let code: Shoal_V1_ErrorReply.Code =
                switch error.kind {
                case .invalid, .denied: .invalidArgument
                case .notFound: .notFound
                case .corrupted, .unavailable: .unavailable
                }
            reply(.error(requestID, code, error.message), [])
        } catch {
            reply(.error(requestID, .unavailable, "the registry's store failed: \(error)"), [])
        }
    }

    /// Drops idle uploads (and their staging files) every half minute on `loop`, also while no
    /// request comes.
    func scheduleUploadSweeps(on loop: EventLoop) {
        loop.schedule(after: .seconds(30), repeating: .seconds(30)) { [weak self] in self?.uploads.dropIdle() }
    }

    /// Takes one piece of an upload (a one-way message: a failure is told when the upload is
    /// named by its registration).
    func receive(_ chunk: Shoal_V1_ArtifactChunk, bytes: [UInt8]?, from peer: [UInt8]) {
        uploads.receive(chunk, bytes: bytes, from: peer, store: artifacts)
    }
}

/// The registry served alone (`cluster registry serve`): a ROUTER socket on its own loop, and
/// local links under its advertised address for clients on the same host.
public final class RegistryServer: Sendable {
    public let service: RegistryService
    /// `tcp://host:port`.
    public let address: String
    private let loop: EventLoop
    private let endpoint: RouterEndpoint

    public init(service: RegistryService, bind: String, advertisedHost: String) throws {
        self.service = service
        let endpoint = try RouterEndpoint(binding: bind)
        self.endpoint = endpoint
        let address = "tcp://\(advertisedHost):\(endpoint.address.split(separator: ":").last.map(String.init) ?? "0")"
        self.address = address
        // After the steps that may throw: a loop's thread runs until it is shut down.
        let loop = EventLoop(name: "shoal-registry")
        self.loop = loop
        // Serving starts on the loop; the server is ready (links included) when init returns.
        let serving = DispatchSemaphore(value: 0)
        defer { serving.wait() }
        loop.execute { [endpoint, service] in
            defer { serving.signal() }
            do {
                // Weakly: the endpoint holds its listener, which holds this handler.
                try endpoint.serve(on: loop, serveLocal: LocalLinkSetting.enabled, linkAddress: address) {
                    [weak endpoint] message in
                    if let endpoint { Self.receive(message, endpoint: endpoint, loop: loop, service: service) }
                }
            } catch {
                Logger(label: "shoal.registry").warning(
                    "clients on this host will reach the registry over ZeroMQ", metadata: ["error": "\(error)"])
            }
            service.scheduleUploadSweeps(on: loop)
        }
    }

    private static func receive(
        _ message: ShoalTransport.Message, endpoint: RouterEndpoint, loop: EventLoop, service: RegistryService
    ) {
        guard let incoming = try? Incoming(message, routed: true) else {
            if let peer = message.frames.first, !peer.isEmpty, message.frames.count > 1 {
                try? endpoint.send(.error(0, .malformed, "not a Shoal message"), to: peer)
            }
            return
        }
        if case .artifactChunk(let chunk) = incoming.envelope.body {
            service.receive(chunk, bytes: try? incoming.payload(1), from: incoming.sender)
            return
        }
        guard case .registryRequest(let request) = incoming.envelope.body else {
            try? endpoint.send(
                .error(incoming.envelope.requestID, .invalidArgument, "this is a registry server: only registry requests"),
                to: incoming.sender)
            return
        }
        let sender = incoming.sender
        let artifact = try? incoming.payload(1)
        // On a worker, never on this loop: a request may wait for a pooled connection or a
        // database lock, and the loop also takes every client's upload pieces.
        service.dispatch(request, artifact: artifact, requestID: incoming.envelope.requestID, peer: sender) {
            envelope, payloads in
            loop.execute { try? endpoint.send(envelope, payloads: payloads, to: sender) }
        }
    }

    public func shutdown() { loop.shutdown() }
}
