import ArgumentParser
import Foundation
import Shoal
import ShoalTransport

#if canImport(Glibc)
    import Glibc
#endif

/// `cluster microbenchmark`: Ray's `ray microbenchmark` rows, measured on Shoal.
struct MicrobenchmarkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "microbenchmark",
        abstract: "Measure task throughput and latency, after Ray's `ray microbenchmark`.",
        discussion: "Without --address it runs on an embedded local cluster of --cpus CPUs (default 2)."
    )

    @Option(help: "The head, HOST:PORT (default: an embedded local cluster).")
    var address: String?

    @Option(help: "CPUs of the embedded cluster.")
    var cpus = 2

    @Option(help: "Seconds per trial.")
    var seconds = 1.0

    @Option(help: "Trials per row.")
    var trials = 3

    @Option(help: "Also submit this many trivial tasks in waves of 10,000 and report the peak RSS of all Shoal processes.")
    var memoryTasks = 0

    @Option(help: "Write the rows as JSON to this file.")
    var json: String?

    func validate() throws {
        guard seconds > 0, trials > 0, cpus > 0, memoryTasks >= 0 else {
            throw ValidationError("--seconds, --trials and --cpus must be positive, --memory-tasks >= 0")
        }
    }

    struct Row: Codable {
        var name: String
        var mean: Double
        var deviation: Double
        var unit: String
    }

    func run() async throws {
        let cluster = try await connect()
        var rows: [Row] = []
        func report(_ row: Row) {
            rows.append(row)
            print(
                "\(row.name.padding(toLength: 44, withPad: " ", startingAt: 0)) \(format(row.mean)) +- \(format(row.deviation)) \(row.unit)"
            )
            flushStandardOutput()
        }
        print(
            "Shoal microbenchmark (\(cluster.isEmbedded ? "embedded cluster, \(cpus) CPUs" : cluster.address); \(trials) trials of \(seconds) s)"
        )
        // Warm up: start the executors.
        _ = try await cluster.get(try (0..<200).map { try cluster.submit(BenchmarkTasks.noop, $0) })

        var latencies: [Double] = []
        report(
            try await rate("single client tasks sync") { deadline in
                try await cluster.onDriverLoop {
                    var count = 0
                    while ContinuousClock.now < deadline {
                        let start = ContinuousClock.now
                        _ = try await cluster.get(try cluster.submit(BenchmarkTasks.noop, count))
                        latencies.append(Double((ContinuousClock.now - start).nanoseconds) / 1000)
                        count += 1
                    }
                    return count
                }
            })
        report(
            try await rate("single client tasks sync, from the thread pool") { deadline in
                var count = 0
                while ContinuousClock.now < deadline {
                    _ = try await cluster.get(try cluster.submit(BenchmarkTasks.noop, count))
                    count += 1
                }
                return count
            })
        report(
            try await rate("single client tasks async") { deadline in
                var count = 0
                while ContinuousClock.now < deadline {
                    let refs = try (0..<1000).map { try cluster.submit(BenchmarkTasks.noop, $0) }
                    for ref in refs { _ = try await ref.get() }
                    count += refs.count
                }
                return count
            })
        report(try await multiClient())
        report(
            try await rate("single client tasks and get batch") { deadline in
                var count = 0
                while ContinuousClock.now < deadline {
                    let refs = try (0..<1000).map { try cluster.submit(BenchmarkTasks.noop, $0) }
                    count += try await cluster.get(refs).count
                }
                return count
            })
        for row in try await actorRows(cluster) { report(row) }
        for row in try await objectRows(cluster) { report(row) }
        report(
            try await rate("placement group create/removal") { deadline in
                var count = 0
                while ContinuousClock.now < deadline {
                    let group = try await cluster.placementGroup([Resources(cpu: 1)], strategy: .pack)
                    try await cluster.remove(group)
                    count += 1
                }
                return count
            })
        latencies.sort()
        report(Row(name: "task round trip p50", mean: percentile(latencies, 0.5), deviation: 0, unit: "us"))
        report(Row(name: "task round trip p99", mean: percentile(latencies, 0.99), deviation: 0, unit: "us"))
        let bare = try zmqRoundTrips(count: 5000)
        report(Row(name: "bare ZeroMQ DEALER/ROUTER round trip p50", mean: percentile(bare, 0.5), deviation: 0, unit: "us"))
        report(Row(name: "bare ZeroMQ DEALER/ROUTER round trip p99", mean: percentile(bare, 0.99), deviation: 0, unit: "us"))
        if memoryTasks > 0 {
            for row in try await memoryRun(cluster) { report(row) }
        }
        await cluster.shutdown()
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
    }

    private func connect(cpus: Int? = nil) async throws -> Cluster {
        if let address { return try await Cluster.connect(address: address) }
        return try await Cluster.connect(localCPUs: cpus ?? self.cpus)
    }

    /// Runs `body` for `trials` trials of `seconds`; `body` returns how many operations it did.
    private func rate(_ name: String, _ body: (ContinuousClock.Instant) async throws -> Int) async throws -> Row {
        var rates: [Double] = []
        for _ in 0..<trials {
            let start = ContinuousClock.now
            let count = try await body(start + .milliseconds(Int(seconds * 1000)))
            rates.append(Double(count) / (ContinuousClock.now - start).seconds)
        }
        let mean = rates.reduce(0, +) / Double(rates.count)
        let deviation = (rates.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(rates.count)).squareRoot()
        return Row(name: name, mean: mean, deviation: deviation, unit: "per second")
    }

    /// Four clients, each its own driver connection with its own leases, submitting at once.
    private func multiClient() async throws -> Row {
        let sharedAddress: String
        let embedded: Cluster?
        if let address {
            sharedAddress = address
            embedded = nil
        } else {
            // One embedded cluster; its clients connect to its head.
            let cluster = try await Cluster.connect(localCPUs: cpus)
            sharedAddress = cluster.address
            embedded = cluster
        }
        var clients: [Cluster] = []
        for _ in 0..<4 { clients.append(try await Cluster.connect(address: sharedAddress)) }
        for client in clients { _ = try await client.get(try (0..<100).map { try client.submit(BenchmarkTasks.noop, $0) }) }
        let row = try await rate("multi client tasks async") { deadline in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for client in clients {
                    group.addTask {
                        var count = 0
                        while ContinuousClock.now < deadline {
                            let refs = try (0..<1000).map { try client.submit(BenchmarkTasks.noop, $0) }
                            count += try await client.get(refs).count
                        }
                        return count
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        for client in clients { await client.shutdown() }
        await embedded?.shutdown()
        return row
    }

    /// Ray's actor rows, plus actor creation rate and idle memory per actor.
    private func actorRows(_ cluster: Cluster) async throws -> [Row] {
        var rows: [Row] = []
        let actor = try await cluster.spawn(BenchmarkTasks.actor, 0)
        _ = try await actor.small()
        rows.append(
            try await rate("1:1 actor calls sync") { deadline in
                try await cluster.onDriverLoop {
                    var count = 0
                    while ContinuousClock.now < deadline {
                        _ = try await actor.small()
                        count += 1
                    }
                    return count
                }
            })
        func burst(_ actors: [BenchActor], calls: Int) async throws -> Int {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<calls {
                    let target = actors[index % actors.count]
                    group.addTask { try await target.small() }
                }
                return try await group.reduce(0) { count, _ in count + 1 }
            }
        }
        rows.append(
            try await rate("1:1 actor calls async") { deadline in
                try await cluster.onDriverLoop {
                    var count = 0
                    while ContinuousClock.now < deadline { count += try await burst([actor], calls: 1000) }
                    return count
                }
            })
        let concurrent = try await cluster.spawn(BenchmarkTasks.actor, 0, options: ActorOptions(maxConcurrency: 16))
        rows.append(
            try await rate("1:1 actor calls concurrent") { deadline in
                try await cluster.onDriverLoop {
                    var count = 0
                    while ContinuousClock.now < deadline { count += try await burst([concurrent], calls: 1000) }
                    return count
                }
            })
        var many: [BenchActor] = []
        for _ in 0..<cpus { many.append(try await cluster.spawn(BenchmarkTasks.actor, 0)) }
        rows.append(
            try await rate("1:n actor calls async") { deadline in
                try await cluster.onDriverLoop {
                    var count = 0
                    while ContinuousClock.now < deadline { count += try await burst(many, calls: 1000) }
                    return count
                }
            })
        rows.append(contentsOf: try await nToN(cluster))

        // Creation rate and idle memory: actors of one job share one executor process.
        let pid = try await actor.pid()
        let before = ProcessMemory.currentRSS(of: pid)
        let count = 2000
        let start = ContinuousClock.now
        let created = try await withThrowingTaskGroup(of: BenchActor.self) { group in
            for _ in 0..<count { group.addTask { try await cluster.spawn(BenchmarkTasks.actor, 0) } }
            var made: [BenchActor] = []
            for try await actor in group { made.append(actor) }
            return made
        }
        let elapsed = (ContinuousClock.now - start).seconds
        for created in created { _ = try await created.small() }
        try await Task.sleep(for: .milliseconds(200))
        let after = ProcessMemory.currentRSS(of: pid)
        rows.append(Row(name: "actor creations", mean: Double(count) / elapsed, deviation: 0, unit: "per second"))
        rows.append(
            Row(name: "idle memory per actor", mean: Double(after - before) / Double(count) / 1024, deviation: 0, unit: "KiB"))
        return rows
    }

    /// Ray's object rows: small puts and gets, and large puts in gigabytes per second.
    private func objectRows(_ cluster: Cluster) async throws -> [Row] {
        var rows: [Row] = []
        rows.append(
            try await rate("single client put calls") { deadline in
                try await cluster.onDriverLoop {
                    var count = 0
                    while ContinuousClock.now < deadline {
                        _ = try await cluster.put(count)
                        count += 1
                    }
                    return count
                }
            })
        let small = try await cluster.put(42)
        rows.append(
            try await rate("single client get calls") { deadline in
                try await cluster.onDriverLoop {
                    var count = 0
                    while ContinuousClock.now < deadline {
                        _ = try await cluster.get(small)
                        count += 1
                    }
                    return count
                }
            })
        let large = [Float](repeating: 1.5, count: 25 << 20)  // 100 MiB
        let bytes = Double(large.count * 4) / 1e9
        // Rates of whole arrays, reported as gigabytes per second.
        func gigabytes(_ name: String, _ body: (ContinuousClock.Instant) async throws -> Int) async throws -> Row {
            var row = try await rate(name, body)
            row.mean *= bytes
            row.deviation *= bytes
            row.unit = "GB per second"
            return row
        }
        rows.append(
            try await gigabytes("single client put gigabytes") { deadline in
                var count = 0
                while ContinuousClock.now < deadline {
                    _ = try await cluster.put(large)
                    count += 1
                }
                return count
            })
        // A get on the node that holds the object: decoded into a new array from its mapping.
        let stored = try await cluster.put(large)
        rows.append(
            try await gigabytes("single client get gigabytes") { deadline in
                var count = 0
                while ContinuousClock.now < deadline {
                    let value = try await stored.get()
                    guard value.count == large.count else { throw CommandFailure("a get returned \(value.count) floats") }
                    count += 1
                }
                return count
            })
        // The ceilings a put of fresh bytes works against: copying the same array into memory
        // already mapped and touched, on one thread, then spread over the cores as Shoal's large
        // puts and gets copy.
        var target = [Float](repeating: 0, count: large.count)
        for (name, spread) in [("memcpy of the same array, one thread", false), ("memcpy of the same array, all cores", true)] {
            rows.append(
                try await gigabytes(name) { deadline in
                    var count = 0
                    while ContinuousClock.now < deadline {
                        target.withUnsafeMutableBytes { destination in
                            large.withUnsafeBytes { source in
                                if spread { LargeCopy.copy(source, into: destination) } else { destination.copyMemory(from: source) }
                            }
                        }
                        count += 1
                    }
                    return count
                })
        }
        // The ceiling for a get of a new array: the same copy into a newly allocated array, whose
        // pages the kernel must first hand out zeroed, spread over the cores.
        rows.append(
            try await gigabytes("copy into a new array, all cores") { deadline in
                var count = 0
                while ContinuousClock.now < deadline {
                    let copy = large.withUnsafeBufferPointer { LargeCopy.array(copying: $0) }
                    guard copy.count == large.count else { throw CommandFailure("a copy has \(copy.count) floats") }
                    count += 1
                }
                return count
            })
        var clients: [Cluster] = []
        for _ in 0..<cpus { clients.append(try await Cluster.connect(address: cluster.address)) }
        let row = try await gigabytes("multi client put gigabytes") { deadline in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for client in clients {
                    group.addTask {
                        var count = 0
                        while ContinuousClock.now < deadline {
                            _ = try await client.put(large)
                            count += 1
                        }
                        return count
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        rows.append(row)
        for client in clients { await client.shutdown() }
        return rows
    }

    /// n clients, each its own driver connection, each calling its own actor.
    private func nToN(_ cluster: Cluster) async throws -> [Row] {
        var clients: [Cluster] = []
        var actors: [BenchActor] = []
        for _ in 0..<cpus {
            let client = try await Cluster.connect(address: cluster.address)
            clients.append(client)
            actors.append(try await client.spawn(BenchmarkTasks.actor, 0))
        }
        var arguments: [ObjectRef<Int>] = []
        for client in clients { arguments.append(try await client.put(0)) }
        func run(_ name: String, withArgument: Bool) async throws -> Row {
            try await rate(name) { deadline in
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for (index, (client, actor)) in zip(clients, actors).enumerated() {
                        let argument = arguments[index]
                        group.addTask {
                            try await client.onDriverLoop {
                                var count = 0
                                while ContinuousClock.now < deadline {
                                    count += try await withThrowingTaskGroup(of: Int.self) { calls in
                                        for _ in 0..<1000 {
                                            calls.addTask {
                                                withArgument ? try await actor.take(argument) : try await actor.small()
                                            }
                                        }
                                        return try await calls.reduce(0) { total, _ in total + 1 }
                                    }
                                }
                                return count
                            }
                        }
                    }
                    return try await group.reduce(0, +)
                }
            }
        }
        let rows = [
            try await run("n:n actor calls async", withArgument: false),
            try await run("n:n actor calls with arg async", withArgument: true),
        ]
        for client in clients { await client.shutdown() }
        return rows
    }

    /// Round trips of 64 bytes to a bare ZeroMQ ROUTER echo in another process, in microseconds.
    private func zmqRoundTrips(count: Int) throws -> [Double] {
        let output = Pipe()
        let echo = Process()
        echo.executableURL = URL(fileURLWithPath: ChildProcess.currentExecutable)
        echo.arguments = ["zmq-echo", "--count", String(count + 100)]
        echo.standardOutput = output
        try echo.run()
        defer { echo.terminate() }
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw CommandFailure("the ZeroMQ echo process exited early") }
            line.append(chunk)
        }
        let endpoint = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let socket = try Socket(.dealer)
        try socket.connect(endpoint)
        let payload = [UInt8](repeating: 7, count: 64)
        var times: [Double] = []
        for index in 0..<(count + 100) {
            let start = ContinuousClock.now
            try socket.send([payload], blocking: true)
            guard try socket.receive(timeout: .seconds(10)) != nil else {
                throw CommandFailure("the ZeroMQ echo stopped answering")
            }
            if index >= 100 { times.append(Double((ContinuousClock.now - start).nanoseconds) / 1000) }
        }
        return times.sorted()
    }

    /// Submits `memoryTasks` trivial tasks in waves and reports the peak RSS of every Shoal
    /// process: this driver (with the embedded head and node) and its executors.
    private func memoryRun(_ cluster: Cluster) async throws -> [Row] {
        let start = ContinuousClock.now
        var done = 0
        while done < memoryTasks {
            let wave = min(10_000, memoryTasks - done)
            let refs = try (0..<wave).map { try cluster.submit(BenchmarkTasks.noop, $0) }
            done += try await cluster.get(refs).count
            if done % 100_000 < wave {
                let rate = Double(done) / (ContinuousClock.now - start).seconds
                let eta = Double(memoryTasks - done) / rate
                FileHandle.standardError.write(Data("  \(done)/\(memoryTasks) tasks, \(Int(rate))/s, ETA \(Int(eta)) s\n".utf8))
            }
        }
        let elapsed = (ContinuousClock.now - start).seconds
        let peak =
            ProcessMemory.peakRSS(of: getpid())
            + ProcessMemory.descendants(of: getpid()).reduce(0) { $0 + ProcessMemory.peakRSS(of: $1) }
        return [
            Row(name: "\(memoryTasks) tasks in waves", mean: Double(memoryTasks) / elapsed, deviation: 0, unit: "per second"),
            Row(name: "peak RSS of all Shoal processes", mean: Double(peak) / 1_048_576, deviation: 0, unit: "MiB"),
        ]
    }

    private func format(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: "%.2f", value)
    }

    private func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
