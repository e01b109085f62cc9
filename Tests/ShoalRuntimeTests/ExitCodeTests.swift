import Foundation
import ShoalTestSupport
import Testing

/// Wrong arguments print the message and the usage block and exit 64; a failure of the work
/// (a missing file, a bad value in a file, no head answering) prints the message alone and exits 1.
@Suite struct ExitCodeTests {
    func run(_ binary: String, _ arguments: [String]) async throws -> (status: Int32, text: String) {
        let process = try RunningProcess(
            binaryPath(binary), arguments, environment: ["SHOAL_SESSION_DIR": NSTemporaryDirectory() + "shoal-exit-none"])
        let status = try await process.waitForExit(timeout: .seconds(60))
        return (status, process.output.joined(separator: "\n"))
    }

    @Test func failuresOfTheWorkExitOneWithoutUsage() async throws {
        let bad = NSTemporaryDirectory() + "shoal-bad-\(UInt32.random(in: 0...UInt32.max)).csv"
        try Data("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,abc,10\n".utf8).write(
            to: URL(fileURLWithPath: bad))
        defer { try? FileManager.default.removeItem(atPath: bad) }
        let cases: [(String, [String], String)] = [
            ("trading", ["data", "features", "/nonexistent.csv"], "cannot read /nonexistent.csv"),
            ("trading", ["data", "features", bad], "'abc' in column close is not a number"),
            ("trading", ["model", "train", "--config", "/nonexistent.json"], "cannot read the training configuration"),
            ("cluster", ["status", "--address", "127.0.0.1:1"], "no head answered"),
            ("cluster", ["models", "list", "--address", "127.0.0.1:1", "--timeout", "1"], "no registry answered"),
        ]
        for (binary, arguments, message) in cases {
            let (status, text) = try await run(binary, arguments)
            #expect(status == 1, "\(binary) \(arguments): \(status)\n\(text)")
            #expect(text.contains(message), "\(binary) \(arguments): \(text)")
            #expect(!text.contains("Usage:"), "\(binary) \(arguments) printed the usage block for a failure of the work:\n\(text)")
        }
    }

    @Test func wrongArgumentsExitSixtyFourWithUsage() async throws {
        let cases: [(String, [String], String)] = [
            ("trading", ["data", "features"], "Missing expected argument"),
            ("trading", ["model", "train", "--workers", "0"], "--workers must be at least 1"),
            ("trading", ["model", "train", "--alias", "staging"], "--alias names the version --register makes"),
            ("cluster", ["start"], "exactly one of --head and --address"),
            ("cluster", ["status", "--bogus"], "Unknown option"),
        ]
        for (binary, arguments, message) in cases {
            let (status, text) = try await run(binary, arguments)
            #expect(status == 64, "\(binary) \(arguments): \(status)\n\(text)")
            #expect(text.contains(message) && text.contains("Usage:"), "\(binary) \(arguments): \(text)")
        }
    }
}
