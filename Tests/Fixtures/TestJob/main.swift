// A job binary for the integration tests: its tasks, and driver programs chosen by argument.
// Each mode prints lines the tests read.
import Distributed
import Foundation
import Shoal

#if canImport(Glibc)
    import Glibc
#endif

/// A counter that lives on the cluster.
distributed actor Counter {
    typealias ActorSystem = ClusterActorSystem
    var count: Int
    var kept: ObjectRef<[Float]>?

    init(start: Int, actorSystem: ClusterActorSystem) {
        self.actorSystem = actorSystem
        count = start
    }

    distributed func increment(by amount: Int) -> Int {
        count += amount
        return count
    }

    distributed func node() -> String { ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? "?" }

    distributed func slowIncrement(by amount: Int, seconds: Double) async throws -> Int {
        try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        count += amount
        return count
    }

    distributed func pid() -> Int32 { getpid() }

    distributed func keep(_ values: ObjectRef<[Float]>) { kept = values }

    distributed func keptTotal() async throws -> Double {
        guard let kept else { return -1 }
        return try await kept.get().reduce(0) { $0 + Double($1) }
    }

    distributed func forget() { kept = nil }

    distributed func devices() -> String { ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"] ?? "unset" }

    distributed func total(_ values: ObjectRef<[Float]>) async throws -> Double {
        try await values.get().reduce(0) { $0 + Double($1) }
    }

    distributed func fail(_ message: String) throws -> Int { throw Failure(description: message) }
}

let counterType = ActorType("test.Counter") { (start: Int, system) in Counter(start: start, actorSystem: system) }

/// A partial sum and the nodes that contributed to it.
struct Tally: Codable, Sendable {
    var sum: Int
    var nodes: Set<String>
}

struct Pair: Codable, Sendable {
    var left: ObjectRef<Tally>
    var right: ObjectRef<Tally>
}

struct Failure: Error, CustomStringConvertible {
    var description: String
}

func nodeID() -> String { ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? "?" }

let square = RemoteTask("test.square") { (x: Int) in Tally(sum: x * x, nodes: [nodeID()]) }
let merge = RemoteTask("test.merge") { (pair: Pair) in
    let left = try await pair.left.get()
    let right = try await pair.right.get()
    return Tally(sum: left.sum + right.sum, nodes: left.nodes.union(right.nodes))
}
let slow = RemoteTask("test.slow") { (x: Int) -> Int in
    // Busy for about 20 ms, like a small computation.
    let end = ContinuousClock.now + .milliseconds(20)
    while ContinuousClock.now < end {}
    return x
}
let sleepy = RemoteTask("test.sleepy") { (seconds: Double) -> Int in
    try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
    return 1
}
let fail = RemoteTask("test.fail") { (message: String) -> Int in
    throw Failure(description: message)
}

let gpuDevices = RemoteTask("test.gpuDevices") { (seconds: Double) -> String in
    try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
    return ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"] ?? "unset"
}

/// A fast 64-bit hash of bytes, eight at a time: equal hashes mean equal bytes here.
func wordHash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    let words = bytes.count / 8
    for index in 0..<words {
        hash = (hash ^ bytes.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)) &* 0x0000_0100_0000_01b3
    }
    for index in (words * 8)..<bytes.count { hash = (hash ^ UInt64(bytes[index])) &* 0x0000_0100_0000_01b3 }
    return hash
}

/// Private (anonymous) resident memory of this process, in bytes: copies show here, mapped
/// shared memory does not.
func anonymousRSS() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("RssAnon:") {
        return (line.split(separator: " ").compactMap { Int($0) }.first ?? 0) * 1024
    }
    return 0
}

struct ArrayCheck: Codable, Sendable {
    var array: ObjectRef<[Float]>
    var mapped: Bool
}

struct ArrayReport: Codable, Sendable {
    var node: String
    var hash: UInt64
    var count: Int
    var milliseconds: Double
    var anonymousGrowth: Int
}

let checkArray = RemoteTask("test.checkArray") { (check: ArrayCheck) -> ArrayReport in
    let before = anonymousRSS()
    let start = ContinuousClock.now
    let hash: UInt64
    let count: Int
    let after: Int
    if check.mapped {
        let mapping = try await check.array.mapped()
        let floats = try mapping.elements(of: Float.self)
        hash = wordHash(UnsafeRawBufferPointer(floats))
        count = floats.count
        after = anonymousRSS()
    } else {
        let floats = try await check.array.get()
        hash = floats.withUnsafeBytes { wordHash($0) }
        count = floats.count
        after = anonymousRSS()
    }
    let elapsed = ContinuousClock.now - start
    let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    return ArrayReport(node: nodeID(), hash: hash, count: count, milliseconds: milliseconds, anonymousGrowth: after - before)
}

func pattern(_ count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        for index in 0..<buffer.count { buffer[index] = Float(bitPattern: UInt32(truncatingIfNeeded: index &* 2_654_435_761)) }
        initialized = buffer.count
    }
}

let makeArray = RemoteTask("test.makeArray") { (count: Int) in pattern(count) }

let nodeOf = RemoteTask("test.nodeOf") { (_: Int) in nodeID() }

/// Which binary and which job this task ran in: for the job isolation tests.
let whoami = RemoteTask("test.whoami") { (milliseconds: Int) -> String in
    try await Task.sleep(for: .milliseconds(milliseconds))
    return ChildProcess.currentExecutable + "|" + (ProcessInfo.processInfo.environment["SHOAL_JOB_ID"] ?? "?")
}

let failTally = RemoteTask("test.failTally") { (message: String) -> Tally in
    throw Failure(description: message)
}

// Line-buffered output: a driver that hangs shows how far it got.
lineBufferStandardOutput()

await Shoal.bootstrap(
    tasks: [square, merge, slow, sleepy, fail, failTally, gpuDevices, checkArray, nodeOf, makeArray, whoami],
    actors: [counterType])

let arguments = Array(CommandLine.arguments.dropFirst())
let mode = arguments.first ?? "mapreduce"
let count = arguments.count > 1 ? Int(arguments[1]) ?? 100 : 100
let cluster = try await Cluster.connect()
print("connected job=\(cluster.jobID)")
flushStandardOutput()

switch mode {
case "mapreduce":
    // count squares, reduced pairwise: a DAG of 2 × count − 1 tasks.
    var level = try (0..<count).map { try cluster.submit(square, $0) }
    while level.count > 1 {
        var next: [ObjectRef<Tally>] = []
        for index in stride(from: 0, to: level.count - 1, by: 2) {
            next.append(try cluster.submit(merge, Pair(left: level[index], right: level[index + 1])))
        }
        if level.count % 2 == 1 { next.append(level[level.count - 1]) }
        level = next
    }
    let total = try await cluster.get(level[0], timeout: .seconds(300))
    print("sum=\(total.sum) nodes=\(total.nodes.sorted().joined(separator: ","))")

case "slow":
    let refs = try (0..<count).map { try cluster.submit(slow, $0) }
    print("submitted \(refs.count)")
    flushStandardOutput()
    var seen: [Int] = []
    for (index, ref) in refs.enumerated() {
        seen.append(try await ref.get(timeout: .seconds(120)))
        if index % 100 == 99 {
            print("progress \(index + 1)")
            flushStandardOutput()
        }
    }
    print("done count=\(seen.count) distinct=\(Set(seen).count) sum=\(seen.reduce(0, +)) inorder=\(seen == Array(0..<count))")

case "errors":
    do {
        _ = try await cluster.get(try cluster.submit(fail, "bad tick at row 7"))
        print("remote: no error")
    } catch let error as TaskError {
        print("remote: isRemote=\(error.isRemote) task=\(error.taskName) message=\(error.message)")
    }
    do {
        let options = TaskOptions(resources: Resources(cpu: 1, custom: ["unobtainium": 1]))
        _ = try await cluster.get(try cluster.submit(square, 3, options: options), timeout: .seconds(10))
        print("infeasible: no error")
    } catch let error as TaskError {
        print("infeasible: isInfeasible=\(error.isInfeasible)")
    }
    do {
        _ = try await cluster.get(try cluster.submit(sleepy, 5), timeout: .milliseconds(200))
        print("timeout: no error")
    } catch let error as ClusterError {
        print("timeout: isTimeout=\(error.isTimeout)")
    }
    let long = try cluster.submit(sleepy, 30)
    try await Task.sleep(for: .milliseconds(300))
    await cluster.cancel(long)
    do {
        _ = try await cluster.get(long, timeout: .seconds(10))
        print("cancel: no error")
    } catch let error as TaskError {
        print("cancel: isCancelled=\(error.isCancelled)")
    }
    let quick = try cluster.submit(sleepy, 0.05)
    let slowRef = try cluster.submit(sleepy, 3)
    let (ready, pending) = try await cluster.wait([quick, slowRef], numReturns: 1, timeout: .seconds(2))
    print("wait: ready=\(ready.map(\.id) == [quick.id]) pending=\(pending.map(\.id) == [slowRef.id]) \(ready) \(pending)")
    let dependent = try cluster.submit(
        merge, Pair(left: try cluster.submit(square, 2), right: try cluster.submit(failTally, "upstream")))
    do {
        _ = try await cluster.get(dependent, timeout: .seconds(10))
        print("dependency: no error")
    } catch let error as TaskError {
        print("dependency: isDependencyFailure=\(error.isDependencyFailure)")
    }
    do {
        _ = try cluster.submit(square, 1, options: TaskOptions(resources: Resources(cpu: -1)))
        print("badoptions: no error")
    } catch let error as ClusterError {
        print("badoptions: isInvalidArgument=\(error.isInvalidArgument)")
    }

case "gpus":
    let options = TaskOptions(resources: Resources(cpu: 0, gpu: 1))
    let refs = try (0..<2).map { _ in try cluster.submit(gpuDevices, 1.0, options: options) }
    let devices = try await cluster.get(refs, timeout: .seconds(60))
    print("gpus=\(devices.sorted().joined(separator: ","))")
    let gpuActors = [
        try await cluster.spawn(counterType, 0, options: ActorOptions(resources: Resources(gpu: 1))),
        try await cluster.spawn(counterType, 0, options: ActorOptions(resources: Resources(gpu: 1))),
    ]
    var actorDevices: [String] = []
    for actor in gpuActors { actorDevices.append(try await actor.devices()) }
    print("actor gpus=\(actorDevices.sorted().joined(separator: ","))")

case "actors":
    let counter = try await cluster.spawn(counterType, 0)
    var last = 0
    for _ in 0..<1000 { last = try await counter.increment(by: 1) }
    print("count=\(last)")
    let small = try await cluster.put([Float](repeating: 0.5, count: 1000))
    let large = try await cluster.put([Float](repeating: 0.25, count: 1 << 20))
    print("refs: small=\(try await counter.total(small)) large=\(try await counter.total(large))")
    do {
        _ = try await counter.fail("no such ticker")
        print("fail: no error")
    } catch let error as TaskError {
        print("fail: isRemote=\(error.isRemote) message=\(error.message)")
    }
    // An actor keeps a reference to a stored object the driver then drops: the object lives on
    // until the actor lets go of it too.
    func storedObjects() async throws -> UInt64 {
        try await Task.sleep(for: .milliseconds(700))
        return try await cluster.status().nodes.reduce(0) { $0 + $1.objectCount }
    }
    var lent: ObjectRef<[Float]>? = try await cluster.put([Float](repeating: 2, count: 1 << 20))
    if let lent { try await counter.keep(lent) }
    lent = nil
    let whileKept = try await storedObjects()
    print("kept total=\(try await counter.keptTotal())")
    try await counter.forget()
    let afterForgetting = try await storedObjects()
    print("kept freed=\(whileKept - afterForgetting)")
    let doomed = try await cluster.spawn(counterType, 0)
    _ = try await doomed.increment(by: 1)
    try await cluster.kill(doomed)
    do {
        _ = try await doomed.increment(by: 1)
        print("killed: no error")
    } catch let error as ActorDiedError {
        print("killed: \(error.reason)")
    }
    do {
        _ = try await cluster.spawn(counterType, 0, options: ActorOptions(resources: Resources(custom: ["unobtainium": 1])))
        print("infeasible: no error")
    } catch let error as ClusterError {
        print("infeasible: \(error.message.contains("infeasible"))")
    }

case "detached":
    // Spawns a detached named counter, uses it, and leaves: it must outlive this job.
    let name = arguments.count > 2 ? arguments[2] : "shared"
    let counter = try await cluster.spawn(counterType, 100, options: ActorOptions(name: name, lifetime: .detached))
    for _ in 0..<count { _ = try await counter.increment(by: 1) }
    print("spawned \(name) on \(try await counter.node())")

case "lookup":
    let name = arguments.count > 2 ? arguments[2] : "shared"
    let counter = try await cluster.actor(named: name, as: Counter.self)
    print("found count=\(try await counter.increment(by: count))")

case "restart":
    // Two counters on the victim node: one may restart once, the other may not.
    let victim = arguments.count > 2 ? arguments[2] : "victim"
    let placement = TaskOptions.Strategy.nodeAffinity(nodeID: victim, soft: true)
    let phoenix = try await cluster.spawn(counterType, 0, options: ActorOptions(maxRestarts: 1, strategy: placement))
    let mortal = try await cluster.spawn(counterType, 0, options: ActorOptions(maxRestarts: 0, strategy: placement))
    let patient = try await cluster.spawn(
        counterType, 0, options: ActorOptions(maxRestarts: 1, maxTaskRetries: 2, strategy: placement))
    for _ in 0..<5 {
        _ = try await phoenix.increment(by: 1)
        _ = try await mortal.increment(by: 1)
        _ = try await patient.increment(by: 1)
    }
    print("placed phoenix=\(try await phoenix.node()) mortal=\(try await mortal.node())")
    // In flight when the node dies: sent again to the rebuilt actor, which starts from 0.
    let inFlight = Task { try await patient.slowIncrement(by: 1, seconds: 3) }
    try await Task.sleep(for: .milliseconds(300))
    print("ready")
    flushStandardOutput()
    let deadline = ContinuousClock.now + .seconds(60)
    var restarted = false
    while ContinuousClock.now < deadline && !restarted {
        do {
            let value = try await phoenix.increment(by: 1)
            let node = try await phoenix.node()
            if node != victim {
                print("phoenix restarted on \(node) count=\(value)")
                restarted = true
            }
        } catch let error as ActorDiedError {
            print("phoenix call failed while restarting: \(error.reason)")
        }
        try await Task.sleep(for: .milliseconds(100))
    }
    do {
        print("patient retried call returned \(try await inFlight.value)")
    } catch {
        print("patient retried call failed: \(error)")
    }
    do {
        _ = try await mortal.increment(by: 1)
        print("mortal: no error")
    } catch let error as ActorDiedError {
        print("mortal: ActorDiedError \(error.actorID == mortal.id)")
    }

case "many":
    // count actors in one process; each answers one call; memory per actor from its host's RSS.
    let first = try await cluster.spawn(counterType, 0)
    let pid = try await first.pid()
    _ = try await first.increment(by: 1)
    try await Task.sleep(for: .milliseconds(200))
    let before = ProcessMemory.currentRSS(of: pid)
    let start = ContinuousClock.now
    var counters: [Counter] = []
    try await withThrowingTaskGroup(of: [Counter].self) { group in
        let batches = 8
        for batch in 0..<batches {
            group.addTask {
                var made: [Counter] = []
                for _ in stride(from: batch, to: count - 1, by: batches) { made.append(try await cluster.spawn(counterType, 0)) }
                return made
            }
        }
        for try await made in group { counters.append(contentsOf: made) }
    }
    let created = ContinuousClock.now
    var answered = 0
    var pids: Set<Int32> = [pid]
    try await withThrowingTaskGroup(of: (Int, Int32).self) { group in
        for (index, counter) in counters.enumerated() {
            group.addTask { (try await counter.increment(by: 1), index % 500 == 0 ? try await counter.pid() : pid) }
        }
        for try await (value, host) in group {
            if value == 1 { answered += 1 }
            pids.insert(host)
        }
    }
    try await Task.sleep(for: .milliseconds(200))
    let after = ProcessMemory.currentRSS(of: pid)
    let seconds = Double((created - start).components.seconds) + Double((created - start).components.attoseconds) / 1e18
    print(
        "many actors=\(counters.count + 1) answered=\(answered + 1) processes=\(pids.count) bytesPerActor=\((after - before) / max(1, counters.count)) createdPerSecond=\(Int(Double(counters.count) / seconds))"
    )

case "bigput":
    // A count-MiB [Float] put here, read by a task on the named node: mapped, and copied.
    let target = arguments.count > 2 ? arguments[2] : "head"
    let floats = [Float](unsafeUninitializedCapacity: count << 18) { buffer, initialized in
        for index in 0..<buffer.count { buffer[index] = Float(bitPattern: UInt32(truncatingIfNeeded: index &* 2_654_435_761)) }
        initialized = buffer.count
    }
    let expected = floats.withUnsafeBytes { wordHash($0) }
    let ref = try await cluster.put(floats)
    let options = TaskOptions(strategy: .nodeAffinity(nodeID: target, soft: false))
    for mapped in [true, false] {
        let report = try await cluster.get(
            try cluster.submit(checkArray, ArrayCheck(array: ref, mapped: mapped), options: options))
        print(
            "bigput \(mapped ? "mapped" : "copied") node=\(report.node) match=\(report.hash == expected && report.count == floats.count)"
                + " ms=\(Int(report.milliseconds)) anonMiB=\(report.anonymousGrowth >> 20)")
    }

case "spill":
    // count objects of 64 MiB: first dropping each ref, then holding them all.
    let elements = 16 << 20
    for index in 0..<count {
        let ref = try await cluster.put([Float](repeating: Float(index), count: elements))
        _ = ref
    }
    let afterDropping = try await cluster.status().nodes.first { $0.id == "head" }
    print("dropping spills=\(afterDropping?.spills ?? 99) ")
    var refs: [ObjectRef<[Float]>] = []
    for index in 0..<count { refs.append(try await cluster.put([Float](repeating: Float(index), count: elements))) }
    var verified = 0
    for (index, ref) in refs.enumerated() {
        let mapping = try await ref.mapped()
        let floats = try mapping.elements(of: Float.self)
        let probes = stride(from: 0, to: floats.count, by: 4099).map { $0 } + [floats.count - 1]
        if floats.count == elements && probes.allSatisfy({ floats[$0] == Float(index) }) { verified += 1 }
    }
    try await Task.sleep(for: .milliseconds(600))
    let node = try await cluster.status().nodes.first { $0.id == "head" }
    print(
        "holding verified=\(verified) spilledSome=\((node?.spills ?? 0) > 0) underLimit=\((node?.objectStoreUsed ?? .max) <= (node?.objectStoreCapacity ?? 0))"
    )

case "bigresult":
    // A count-MiB output made on the named node stays in that node's store; the driver and a
    // task on the head's node read it from there.
    let maker = arguments.count > 2 ? arguments[2] : "second"
    let expected = pattern(count << 18).withUnsafeBytes { wordHash($0) }
    let made = try cluster.submit(
        makeArray, count << 18, options: TaskOptions(strategy: .nodeAffinity(nodeID: maker, soft: false)))
    let fetched = try await cluster.get(made)
    print("bigresult driver match=\(fetched.withUnsafeBytes { wordHash($0) } == expected)")
    let report = try await cluster.get(
        try cluster.submit(
            checkArray, ArrayCheck(array: made, mapped: false),
            options: TaskOptions(strategy: .nodeAffinity(nodeID: "head", soft: false))))
    print("bigresult task node=\(report.node) match=\(report.hash == expected)")

case "waitwarn":
    // Every CPU reserved by a group: a task outside it waits (the driver warns that it does),
    // and runs once the group is removed.
    let group = try await cluster.placementGroup([Resources(cpu: 2)], strategy: .strictPack)
    let waiting = try cluster.submit(nodeOf, 0)
    try await Task.sleep(for: .milliseconds(1500))
    try await cluster.remove(group)
    print("ran after removal on=\(try await cluster.get(waiting, timeout: .seconds(60)))")

case "lostobject":
    // A count-MiB output made on node "second"; once it is done the test kills that node, then
    // the driver asks for the output, which cannot come any more.
    let made = try cluster.submit(
        makeArray, count << 18, options: TaskOptions(strategy: .nodeAffinity(nodeID: "second", soft: false)))
    _ = try await cluster.wait([made], timeout: .seconds(60))
    print("made on second")
    if let pause = ProcessInfo.processInfo.environment["SHOAL_TEST_PAUSE_FILE"] {
        while !FileManager.default.fileExists(atPath: pause) { try await Task.sleep(for: .milliseconds(10)) }
    }
    let asked = ContinuousClock.now
    do {
        _ = try await cluster.get(made, timeout: .seconds(120))
        print("lost object: fetched")
    } catch {
        print("lost object: failed after \(Int((ContinuousClock.now - asked).seconds)) s: \(error)")
    }

case "pg":
    let spread = try await cluster.placementGroup([Resources(cpu: 1), Resources(cpu: 1)], strategy: .strictSpread)
    print("strictSpread nodes=\(Set(spread.bundleNodes).count)")
    // A test that stalls a node first says when to go on, by making this file.
    if let pause = ProcessInfo.processInfo.environment["SHOAL_TEST_PAUSE_FILE"] {
        while !FileManager.default.fileExists(atPath: pause) { try await Task.sleep(for: .milliseconds(10)) }
    }
    var ran: [String] = []
    for bundle in 0..<2 {
        ran.append(try await cluster.get(try cluster.submit(nodeOf, 0, options: TaskOptions(strategy: spread.bundle(bundle)))))
    }
    print("bundles ran on their nodes=\(ran == spread.bundleNodes)")
    let counter = try await cluster.spawn(
        counterType, 0, options: ActorOptions(resources: Resources(cpu: 1), strategy: spread.bundle(1)))
    print("actor in bundle 1 on its node=\(try await counter.node() == spread.bundleNodes[1])")
    let busy = try await cluster.status()
    let cpusInUse = busy.nodes.reduce(0.0) { $0 + $1.total[Resources.cpu] - $1.available[Resources.cpu] }
    print("cpus reserved=\(Int(cpusInUse)) groups=\(busy.placementGroups)")
    do {
        _ = try await cluster.placementGroup([Resources(cpu: 1), Resources(cpu: 1), Resources(cpu: 1)], strategy: .strictSpread)
        print("three on two nodes: no error")
    } catch let error as ClusterError {
        print("three on two nodes: infeasible=\(error.message.contains("can never fit"))")
    }
    do {
        _ = try await cluster.placementGroup([Resources(cpu: 2), Resources(cpu: 2)], strategy: .strictPack)
        print("strictPack too big: no error")
    } catch let error as ClusterError {
        print("strictPack too big: infeasible=\(error.message.contains("can never fit"))")
    }
    do {
        _ = try await cluster.get(
            try cluster.submit(nodeOf, 0, options: TaskOptions(resources: Resources(cpu: 2), strategy: spread.bundle(0))),
            timeout: .seconds(10))
        print("too big for its bundle: no error")
    } catch let error as TaskError {
        print("too big for its bundle: infeasible=\(error.isInfeasible)")
    }
    try await cluster.remove(spread)
    do {
        _ = try await counter.increment(by: 1)
        print("actor after removal: no error")
    } catch let error as ActorDiedError {
        print("actor after removal: died=\(error.reason.contains("placement group"))")
    }
    try await Task.sleep(for: .milliseconds(600))
    let freed = try await cluster.status()
    let cpusAfter = freed.nodes.reduce(0.0) { $0 + $1.total[Resources.cpu] - $1.available[Resources.cpu] }
    print("after removal cpus reserved=\(Int(cpusAfter)) groups=\(freed.placementGroups)")
    let packed = try await cluster.placementGroup([Resources(cpu: 1), Resources(cpu: 1)], strategy: .strictPack)
    print("strictPack nodes=\(Set(packed.bundleNodes).count)")
    try await cluster.remove(packed)

case "whoami":
    // `count` tasks of 30 ms each; reports the executables and job ids that ran them.
    let refs = try (0..<count).map { _ in try cluster.submit(whoami, 30) }
    var seen: Set<String> = []
    for ref in refs { seen.insert(try await ref.get(timeout: .seconds(120))) }
    print("executables=\(Set(seen.map { $0.split(separator: "|")[0] }).sorted().joined(separator: ","))")
    print("jobs=\(Set(seen.map { $0.split(separator: "|")[1] }).sorted().joined(separator: ","))")

case "register":
    // A training job's last step: its weights into the head's registry, with the job as lineage.
    let registry = try cluster.registry(identity: "trainer")
    let weights = pattern(count).withUnsafeBytes { Array($0) }
    let version = try registry.register(
        model: "from-job", artifact: weights, format: "binary", metrics: ["accuracy": 0.5],
        lineage: .init(jobID: cluster.jobID, taskID: "final"))
    let loaded = try registry.load(name: "from-job", version: version.version)
    print("registered version=\(version.version) job=\(version.lineage.jobID) intact=\(loaded.artifact == weights)")

case "abandon":
    // Leaves `count` half-second tasks queued and disconnects: the head must drop their lease
    // requests, not place them for a job that has ended.
    for _ in 0..<count { _ = try cluster.submit(sleepy, 0.5) }
    try await Task.sleep(for: .milliseconds(100))
    print("abandoning")

case "fail-after-output":
    print("about to fail")
    flushStandardOutput()
    FileHandle.standardError.write(Data("fatal: the data file is corrupt\n".utf8))
    exit(4)

case "wait-long":
    // Waits on a task that outlives the head the test kills: the wait must end with an error.
    let long = try cluster.submit(sleepy, 60)
    print("waiting")
    flushStandardOutput()
    do {
        _ = try await cluster.get(long)
        print("finished")
    } catch {
        print("lost: \(error)")
        flushStandardOutput()
        // Later calls fail at once too, and shutting down returns.
        do {
            _ = try await cluster.get(try cluster.submit(square, 2))
            print("after: answered")
        } catch {
            print("after: \(error)")
        }
        await cluster.shutdown()
        print("shut down")
        flushStandardOutput()
        exit(3)
    }

case "hold":
    _ = try await cluster.get(try cluster.submit(square, 1))
    print("ready")
    flushStandardOutput()
    try await Task.sleep(for: .seconds(count))

default:
    print("unknown mode \(mode)")
}
await cluster.shutdown()
