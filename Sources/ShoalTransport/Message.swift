/// A multipart ZeroMQ message: its frames, in order. A ROUTER's messages start with the peer's
/// routing id.
public struct Message: Sendable {
    public var frames: [[UInt8]]

    public init(_ frames: [[UInt8]]) { self.frames = frames }
    public init() { frames = [] }

    public var count: Int { frames.count }
    public var isEmpty: Bool { frames.isEmpty }
}
