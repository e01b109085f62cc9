import ArgumentParser
import Foundation
import Shoal
import ShoalTransport

/// A bare ZeroMQ ROUTER that echoes every message: the baseline the microbenchmark compares
/// Shoal's task round trip with.
struct ZMQEchoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zmq-echo", abstract: "Echo ZeroMQ messages (microbenchmark baseline).", shouldDisplay: false)

    @Option(help: "Endpoint to bind.")
    var bind = "tcp://127.0.0.1:0"

    @Option(help: "Messages to echo before exiting.")
    var count = 1_000_000

    func run() async throws {
        let socket = try Socket(.router)
        let endpoint = try socket.bind(bind)
        print(endpoint)
        flushStandardOutput()
        var echoed = 0
        while echoed < count {
            guard let message = try socket.receive(timeout: .seconds(30)) else { return }
            try socket.send(message)
            echoed += 1
        }
    }
}
