import ArgumentParser
import Foundation
import Shoal
import ShoalTrain

extension ModelCommand {
    /// `trading model allreduce-bench`: the data-parallel all-reduce alone, among processes.
    struct AllReduceBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "allreduce-bench",
            abstract:
                "Time the workers' all-reduce among --ranks processes of this program (compare Benchmarks/allreduce_gloo.py).",
            discussion: """
                Starts --ranks processes; each averages a buffer of --count floats with the others --iterations \
                times after --warmup untimed calls, the ranks lined up by a barrier before each call. An \
                iteration's time is its slowest rank's; the median is reported beside one memcpy of the buffer.
                """)
        @Option(help: "Processes.") var ranks = 2
        @Option(help: "Floats per buffer (default: the hybrid model's gradients).") var count = 557_956
        @Option(help: "Timed calls.") var iterations = 200
        @Option(help: "Untimed calls first.") var warmup = 20
        @Option(help: "shm or ring.") var collective: CollectiveKind = .sharedMemory
        @Option(help: "Write the figures as JSON here.") var json: String?
        @Option(help: ArgumentHelp(visibility: .private)) var rank: Int?
        @Option(help: ArgumentHelp(visibility: .private)) var rendezvous: String?

        func validate() throws {
            guard ranks >= 2, count >= 16, iterations >= 1, warmup >= 0 else {
                throw ValidationError("--ranks must be at least 2, --count at least 16, --iterations at least 1")
            }
            guard collective != .automatic else { throw ValidationError("--collective must be shm or ring") }
        }

        func run() async throws {
            if let rank, let rendezvous { return try runRank(rank, folder: rendezvous) }
            let folder = NSTemporaryDirectory() + "shoal-allreduce-\(getpid())"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let executable = URL(fileURLWithPath: CommandLine.arguments[0]).path
            let processes = try (0..<ranks).map { rank -> Process in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = [
                    "model", "allreduce-bench", "--ranks", String(ranks), "--count", String(count), "--iterations",
                    String(iterations), "--warmup", String(warmup), "--collective", collective.rawValue, "--rank", String(rank),
                    "--rendezvous", folder,
                ]
                try process.run()
                return process
            }
            for process in processes { process.waitUntilExit() }
            guard processes.allSatisfy({ $0.terminationStatus == 0 }) else {
                throw CommandFailure("a rank failed (exit statuses \(processes.map(\.terminationStatus)))")
            }
            let times = try (0..<ranks).map { rank -> [Double] in
                let text = try String(contentsOfFile: "\(folder)/times-\(rank)", encoding: .utf8)
                return text.split(separator: "\n").compactMap { Double($0) }
            }
            let slowest = (0..<iterations).map { index in times.map { $0[index] }.max() ?? 0 }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            // The ceiling: one copy of the buffer, in this process.
            let source = [Float](repeating: 1, count: count)
            var target = [Float](repeating: 0, count: count)
            var copies: [Double] = []
            for _ in 0..<50 {
                let start = ContinuousClock.now
                target.withUnsafeMutableBufferPointer { out in
                    source.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: count) }
                }
                copies.append((ContinuousClock.now - start).seconds)
            }
            let result: [String: Any] = [
                "system": "shoal", "collective": collective.rawValue, "ranks": ranks, "floats": count,
                "median_ms": median(slowest) * 1000, "p90_ms": slowest.sorted()[slowest.count * 9 / 10] * 1000,
                "memcpy_ms": median(copies) * 1000, "iterations": iterations,
            ]
            print(
                String(
                    format: "all-reduce of %d floats among %d processes over %@: median %.3f ms (p90 %.3f), memcpy %.3f ms",
                    count,
                    ranks, collective.rawValue, median(slowest) * 1000, slowest.sorted()[slowest.count * 9 / 10] * 1000,
                    median(copies) * 1000))
            if let json {
                try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]).write(to: URL(fileURLWithPath: json))
            }
        }

        private func runRank(_ rank: Int, folder: String) throws {
            let group = URL(fileURLWithPath: folder).lastPathComponent
            let all: any Collective
            var lineUp: () throws -> Void
            switch collective {
            case .ring:
                let ring = try RingCollective(rank: rank, size: ranks, count: count, host: "127.0.0.1")
                let barrier = try RingCollective(rank: rank, size: ranks, count: 16, host: "127.0.0.1")
                try "\(ring.endpoint) \(barrier.endpoint)".write(
                    toFile: "\(folder)/endpoint-\(rank)", atomically: true, encoding: .utf8)
                var endpoints: [[String]] = []
                let deadline = ContinuousClock.now + .seconds(60)
                while endpoints.count < ranks {
                    endpoints = (0..<ranks).compactMap {
                        (try? String(contentsOfFile: "\(folder)/endpoint-\($0)", encoding: .utf8))?.split(separator: " ").map(
                            String.init)
                    }
                    guard ContinuousClock.now < deadline else {
                        throw CommandFailure(
                            "rank \(rank): only \(endpoints.count) of \(ranks) ranks wrote their endpoints within 60 s")
                    }
                    if endpoints.count < ranks { usleep(1000) }
                }
                try ring.connect(
                    peers: endpoints.enumerated().map {
                        CollectiveEndpoint(rank: $0.offset, host: "", address: $0.element[0], pid: 0)
                    })
                try barrier.connect(
                    peers: endpoints.enumerated().map {
                        CollectiveEndpoint(rank: $0.offset, host: "", address: $0.element[1], pid: 0)
                    })
                var token = [Float](repeating: 0, count: 16)
                lineUp = { try token.withUnsafeMutableBufferPointer { try barrier.allReduceMean($0) } }
                all = ring
            default:
                let shared = try SharedMemoryCollective(name: "shoal-bench-\(group)", rank: rank, size: ranks, count: count)
                try shared.barrierWait()
                if rank == 0 { shared.unlink() }
                lineUp = { try shared.barrierWait() }
                all = shared
            }
            var buffer = (0..<count).map { Float($0 % 97) * Float(rank + 1) }
            var times: [Double] = []
            for iteration in 0..<(warmup + iterations) {
                try lineUp()
                let start = ContinuousClock.now
                try buffer.withUnsafeMutableBufferPointer { try all.allReduceMean($0) }
                if iteration >= warmup { times.append((ContinuousClock.now - start).seconds) }
            }
            try times.map { String($0) }.joined(separator: "\n").write(
                toFile: "\(folder)/times-\(rank)", atomically: true, encoding: .utf8)
            all.close()
        }
    }
}
