import Foundation

/// Memory figures from /proc, for benchmarks and tests.
public enum ProcessMemory {
    /// Peak resident set size (VmHWM) of a process, in bytes; 0 when unknown.
    public static func peakRSS(of pid: Int32) -> Int {
        field("VmHWM", of: pid)
    }

    /// Current resident set size (VmRSS) of a process, in bytes; 0 when unknown.
    public static func currentRSS(of pid: Int32) -> Int {
        field("VmRSS", of: pid)
    }

    private static func field(_ name: String, of pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let digits = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return digits * 1024
        }
        return 0
    }

    /// Every live descendant of a process.
    public static func descendants(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var parents: [Int32: Int32] = [:]
        for entry in entries {
            guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8) else {
                continue
            }
            // The command name may hold spaces; the fields after its closing parenthesis do not.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { parents[child] = parent }
        }
        var result: [Int32] = []
        var frontier = [pid]
        while let current = frontier.popLast() {
            for (child, parent) in parents where parent == current {
                result.append(child)
                frontier.append(child)
            }
        }
        return result
    }
}
