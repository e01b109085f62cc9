import ShoalTransport
import ShoalWire
import SwiftProtobuf

typealias Envelope = Shoal_V1_Envelope

extension Envelope {
    init(_ requestID: UInt64 = 0, _ body: Envelope.OneOf_Body) {
        self.init()
        self.requestID = requestID
        self.body = body
    }

    /// The envelope's bytes, as the first frame of a message.
    func frame() -> [UInt8] {
        // Serialising a message that was built in memory cannot fail for proto3 without
        // required fields; an empty frame would be answered as malformed by the peer.
        (try? serializedBytes()) ?? []
    }

    static func error(_ requestID: UInt64, _ code: Shoal_V1_ErrorReply.Code, _ message: String) -> Envelope {
        var reply = Shoal_V1_ErrorReply()
        reply.code = code
        reply.message = message
        return Envelope(requestID, .error(reply))
    }
}

/// A message that did not parse, and why.
struct MalformedMessage: Error, CustomStringConvertible {
    let reason: String
    var description: String { "malformed message: \(reason)" }
}

/// A parsed message: the envelope, the frames after it, and (on a ROUTER) the sender.
struct Incoming {
    var sender: [UInt8]
    var envelope: Envelope
    var payloads: ArraySlice<[UInt8]>

    /// Parses a message from a ROUTER (`routed`) or a DEALER.
    init(_ message: ShoalTransport.Message, routed: Bool) throws {
        var frames = message.frames[...]
        if routed {
            guard let sender = frames.popFirst(), !sender.isEmpty else {
                throw MalformedMessage(reason: "no routing id")
            }
            self.sender = sender
        } else {
            sender = []
        }
        guard let head = frames.popFirst() else { throw MalformedMessage(reason: "no envelope frame") }
        do {
            envelope = try Envelope(serializedBytes: head)
        } catch {
            throw MalformedMessage(reason: "envelope is not a protobuf Envelope (\(head.count) bytes)")
        }
        guard envelope.body != nil else { throw MalformedMessage(reason: "envelope has no body") }
        payloads = frames
    }

    /// The payload frame at `index` (1 is the first frame after the envelope).
    func payload(_ index: UInt32) throws -> [UInt8] {
        let position = payloads.startIndex + Int(index) - 1
        guard index >= 1, position < payloads.endIndex else {
            throw MalformedMessage(reason: "frame \(index) is missing (\(payloads.count) payload frames)")
        }
        return payloads[position]
    }
}

extension MessageSink {
    /// Sends an envelope and payload frames, to `peer` on a ROUTER.
    func send(_ envelope: Envelope, payloads: [[UInt8]] = [], to peer: [UInt8]? = nil) throws {
        var frames: [[UInt8]] = []
        frames.reserveCapacity(payloads.count + 2)
        if let peer { frames.append(peer) }
        frames.append(envelope.frame())
        frames.append(contentsOf: payloads)
        try send(frames: frames)
    }
}
