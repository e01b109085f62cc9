import Foundation
import Synchronization
import Testing

@testable import ShoalTrain

struct CollectiveTests {
    /// Runs `body(rank)` on a thread per rank and returns each rank's result.
    static func onThreads<Result: Sendable>(_ ranks: Int, _ body: @escaping @Sendable (Int) throws -> Result) throws -> [Result] {
        let results = Mutex<[Int: Swift.Result<Result, any Error>]>([:])
        let group = DispatchGroup()
        for rank in 0..<ranks {
            group.enter()
            let thread = Thread {
                let outcome = Swift.Result { try body(rank) }
                results.withLock { $0[rank] = outcome }
                group.leave()
            }
            thread.start()
        }
        group.wait()
        return try (0..<ranks).map { rank in try results.withLock { $0[rank]! }.get() }
    }

    static func buffers(ranks: Int, count: Int) -> [[Float]] {
        (0..<ranks).map { rank in (0..<count).map { Float(sin(Double($0 * (rank + 3)))) * Float(rank + 1) } }
    }

    static func expectMean(_ outputs: [[Float]], of inputs: [[Float]]) {
        let count = inputs[0].count
        for index in stride(from: 0, to: count, by: 97) {
            let mean = inputs.reduce(Float(0)) { $0 + $1[index] } / Float(inputs.count)
            #expect(abs(outputs[0][index] - mean) <= 1e-5 * max(1, abs(mean)))
        }
        for output in outputs.dropFirst() { #expect(output == outputs[0], "ranks ended with different bits") }
    }

    @Test(arguments: [2, 3, 4]) func sharedMemoryAllReduceAveragesAndAgrees(ranks: Int) throws {
        let name = "shoal-test-\(UUID().uuidString)"
        defer { unlink("/dev/shm/\(name)") }
        let count = 10_007
        let inputs = Self.buffers(ranks: ranks, count: count)
        let outputs = try Self.onThreads(ranks) { rank in
            let collective = try SharedMemoryCollective(name: name, rank: rank, size: ranks, count: count)
            defer { collective.close() }
            var buffer = inputs[rank]
            // Three calls in a row: the slots and result are reused safely.
            for _ in 0..<3 {
                buffer = inputs[rank]
                try buffer.withUnsafeMutableBufferPointer { try collective.allReduceMean($0) }
            }
            return buffer
        }
        Self.expectMean(outputs, of: inputs)
    }

    @Test(arguments: [2, 3]) func ringAllReduceAveragesAndAgrees(ranks: Int) throws {
        let count = 5_003
        let inputs = Self.buffers(ranks: ranks, count: count)
        let collectives = try (0..<ranks).map { try RingCollective(rank: $0, size: ranks, count: count, host: "127.0.0.1") }
        defer { collectives.forEach { $0.close() } }
        let endpoints = collectives.map {
            CollectiveEndpoint(rank: $0.rank, host: "h", address: $0.endpoint, pid: getpid())
        }
        for collective in collectives { try collective.connect(peers: endpoints) }
        let outputs = try Self.onThreads(ranks) { rank in
            var buffer = inputs[rank]
            for _ in 0..<3 {
                buffer = inputs[rank]
                try buffer.withUnsafeMutableBufferPointer { try collectives[rank].allReduceMean($0) }
            }
            return buffer
        }
        Self.expectMean(outputs, of: inputs)
    }

    @Test func aPeerThatNeverArrivesFailsTheWaitAndAnAbortWakesIt() throws {
        let name = "shoal-test-\(UUID().uuidString)"
        defer { unlink("/dev/shm/\(name)") }
        let alone = try SharedMemoryCollective(name: name, rank: 0, size: 2, count: 64, deadline: .milliseconds(300))
        defer { alone.close() }
        var buffer = [Float](repeating: 1, count: 64)
        #expect(throws: CollectiveError.self) { try buffer.withUnsafeMutableBufferPointer { try alone.allReduceMean($0) } }

        let other = "shoal-test-\(UUID().uuidString)"
        defer { unlink("/dev/shm/\(other)") }
        let waiting = try SharedMemoryCollective(name: other, rank: 0, size: 2, count: 64)
        defer { waiting.close() }
        let started = ContinuousClock.now
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(200)) { waiting.abort() }
        #expect(throws: CollectiveError.self) { try buffer.withUnsafeMutableBufferPointer { try waiting.allReduceMean($0) } }
        #expect(ContinuousClock.now - started < .seconds(30))

        let ring = try RingCollective(rank: 0, size: 2, count: 64, host: "127.0.0.1", deadline: .milliseconds(300))
        defer { ring.close() }
        let silent = try RingCollective(rank: 1, size: 2, count: 64, host: "127.0.0.1")
        defer { silent.close() }
        try ring.connect(peers: [
            CollectiveEndpoint(rank: 0, host: "h", address: ring.endpoint, pid: 1),
            CollectiveEndpoint(rank: 1, host: "h", address: silent.endpoint, pid: 1),
        ])
        #expect(throws: CollectiveError.self) { try buffer.withUnsafeMutableBufferPointer { try ring.allReduceMean($0) } }
    }

    @Test func chunksCoverTheBufferOnce() {
        for size in 1...5 {
            for count in [0, 1, 15, 16, 17, 1_000, 557_956] {
                let ranges = (0..<size).map { chunkRange($0, of: size, count: count) }
                #expect(ranges.first?.lowerBound == 0 && ranges.last?.upperBound == count)
                for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            }
        }
    }
}
