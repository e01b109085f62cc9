// A job binary for the integration tests: its tasks, and driver programs chosen by argument.
// Each mode prints lines the tests read.
import Foundation
import Shoal

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

let failTally = RemoteTask("test.failTally") { (message: String) -> Tally in
    throw Failure(description: message)
}

await Shoal.bootstrap(tasks: [square, merge, slow, sleepy, fail, failTally, gpuDevices])

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

case "hold":
    _ = try await cluster.get(try cluster.submit(square, 1))
    print("ready")
    flushStandardOutput()
    try await Task.sleep(for: .seconds(count))

default:
    print("unknown mode \(mode)")
}
await cluster.shutdown()
