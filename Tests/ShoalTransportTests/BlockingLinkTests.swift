import Foundation
import Testing

@testable import ShoalTransport

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking link's client against a hand-made server on the link's abstract name: whole
/// messages arrive, and a server that stops halfway through one fails the link in time.
@Suite struct BlockingLinkTests {
    /// A listening socket on the link name of `address`, and the client's accepted connection.
    static func serve(_ address: String) throws -> (listener: Int32, link: BlockingLink, server: Int32) {
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = LocalLink.withAbstractAddress(for: address) { Glibc.bind(listener, $0, $1) == 0 }
        guard listener >= 0, bound, listen(listener, 4) == 0 else { throw ZMQError.system("a test listener") }
        guard let link = BlockingLink.connect(to: address) else { throw ZMQError.system("connecting a test link") }
        let server = accept(listener, nil, nil)
        guard server >= 0 else { throw ZMQError.system("accepting a test link") }
        return (listener, link, server)
    }

    static func words(_ values: [UInt32]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) } }

    @Test func wholeMessagesArriveAndAServerThatStopsHalfwayFailsTheLink() throws {
        let address = "tcp://127.0.0.1:\(UInt16.random(in: 20000...60000))-test-\(getpid())"
        let (listener, link, server) = try Self.serve(address)
        defer {
            close(server)
            close(listener)
        }
        // Two frames, the second large enough to be read straight into its array.
        let large = (0..<(200 << 10)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let whole = Self.words([2, 3, UInt32(large.count)]) + [1, 2, 3] + large
        #expect(whole.withUnsafeBytes { send(server, $0.baseAddress, $0.count, 0) } == whole.count)
        let message = try #require(try link.receive(timeout: .seconds(5)))
        #expect(message.frames == [[1, 2, 3], large])
        #expect(try link.receive(timeout: .milliseconds(50)) == nil, "nothing more: no message")

        // A header that promises 100 bytes, then 10 of them, then nothing.
        let partial = Self.words([1, 100]) + [UInt8](repeating: 9, count: 10)
        #expect(partial.withUnsafeBytes { send(server, $0.baseAddress, $0.count, 0) } == partial.count)
        let clock = ContinuousClock()
        let start = clock.now
        var failure: ZMQError?
        do {
            _ = try link.receive(timeout: .milliseconds(300))
        } catch let error as ZMQError {
            failure = error
        }
        let waited = clock.now - start
        #expect(failure?.errno == ETIMEDOUT, "\(String(describing: failure))")
        #expect(failure.map { "\($0)" }?.contains("stopped mid-message") == true, "\(String(describing: failure))")
        #expect(waited >= .milliseconds(250) && waited < .seconds(5), "gave up after \(waited)")
        #expect(link.isClosed)
    }
}
