import Foundation
import Shoal

// A second job binary with task types of its own, for the job isolation tests: its tasks must
// never run in the executors of `shoal-testjob`, nor the other way round.

let whoami = RemoteTask("other.whoami") { (milliseconds: Int) -> String in
    try await Task.sleep(for: .milliseconds(milliseconds))
    return ChildProcess.currentExecutable + "|" + (ProcessInfo.processInfo.environment["SHOAL_JOB_ID"] ?? "?")
}

/// A task of `shoal-testjob`, named but not registered here: this binary's executors must refuse it.
let foreign = RemoteTask("test.whoami") { (milliseconds: Int) -> String in "ran in the wrong binary" }

await Shoal.bootstrap(tasks: [whoami], actors: [])

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 40 : 40
let cluster = try await Cluster.connect()
print("connected job=\(cluster.jobID)")
let refs = try (0..<count).map { _ in try cluster.submit(whoami, 30) }
var seen: Set<String> = []
for ref in refs { seen.insert(try await ref.get(timeout: .seconds(120))) }
print("executables=\(Set(seen.map { $0.split(separator: "|")[0] }).sorted().joined(separator: ","))")
print("jobs=\(Set(seen.map { $0.split(separator: "|")[1] }).sorted().joined(separator: ","))")
do {
    let answer = try await cluster.get(try cluster.submit(foreign, 1), timeout: .seconds(60))
    print("foreign=ran \(answer)")
} catch let error as TaskError {
    print("foreign=refused \(error.message)")
}
await cluster.shutdown()
