import ArgumentParser
import Foundation
import Logging
import Shoal

struct RegistryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry", abstract: "Run the model registry on its own.", subcommands: [Serve.self])

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the model registry alone (the head hosts one by default).",
            discussion: "Clients reach it with `cluster models --address HOST:PORT …`.")
        @Option(help: "The port (0 picks a free one).") var port = 6391
        @Option(name: .customLong("node-ip-address"), help: "The address clients reach it at.") var host = "127.0.0.1"
        @Option(help: "Its store: a SQLite file or a postgres:// URL (default: registry.sqlite in the session folder).")
        var storage: String?
        @Option(help: "The artifact folder (a shared path serves several hosts).") var artifacts: String?

        func run() async throws {
            Shoal.setUpLogging(defaultLevel: .info)
            installStopSignalHandlers()
            try refusePassword(inStore: storage)
            umask(0o077)
            let session = Session()
            do {
                try session.prepare()
            } catch let error as SessionError {
                throw ValidationError(error.description)
            }
            var location = try StorageLocation(parsing: storage ?? "registry.sqlite")
            if case .sqlite(let path) = location, !path.hasPrefix("/") {
                location = .sqlite(path: session.directory + "/" + path)
            }
            let service = try openRegistry(storage: location, artifacts: artifacts, session: session)
            let server = try RegistryServer(service: service, bind: "tcp://\(host):\(port)", advertisedHost: host)
            print("Shoal model registry at \(server.address) (store \(location), artifacts \(service.artifacts.root))")
            flushStandardOutput()
            await waitForStopRequest()
            server.shutdown()
        }
    }
}

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "The model registry: list, show, register, approve, alias, download, compare, audit.",
        discussion: "Changes are recorded as SHOAL_IDENTITY (default user@host), or --identity.",
        subcommands: [
            List.self, Show.self, Register.self, Approve.self, Alias.self, Download.self, Compare.self, Audit.self, Tag.self,
            Archive.self, Bench.self,
        ]
    )

    struct Connection: ParsableArguments {
        @Option(help: "The head (or registry server), HOST:PORT.") var address: String?
        @Option(help: "Who you are, for the audit log and approvals (default: SHOAL_IDENTITY or user@host).") var identity:
            String?

        @Option(help: "Seconds to wait for the registry's answer.") var timeout: Double = 60

        func validate() throws {
            guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a number of seconds above 0") }
        }

        func registry() throws -> ModelRegistry {
            try ModelRegistry(
                address: try headAddress(address), identity: identity ?? ModelRegistry.defaultIdentity,
                timeout: .milliseconds(Int(timeout * 1000)))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered models (optionally with a tag).")
        @OptionGroup var connection: Connection
        @Option(help: "Only models with this tag, KEY or KEY=VALUE.") var tag: String?

        func run() async throws {
            let parts = tag?.split(separator: "=", maxSplits: 1).map(String.init)
            let models = try connection.registry().models(tag: parts?.first, value: parts.flatMap { $0.count > 1 ? $0[1] : nil })
            guard !models.isEmpty else {
                print("No models.")
                return
            }
            var rows = [["MODEL", "VERSIONS", "ALIASES", "TAGS", "CREATED BY", "DESCRIPTION"]]
            for model in models {
                rows.append([
                    model.name, String(model.latestVersion),
                    model.aliases.sorted { $0.key < $1.key }.map { "\($0.key)→\($0.value)" }.joined(separator: " "),
                    model.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "), model.createdBy,
                    String(model.description.prefix(50)),
                ])
            }
            print(table(rows))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A model's versions, or one version with its model card.")
        @OptionGroup var connection: Connection
        @Argument(help: "The model.") var model: String
        @Argument(help: "A version number (default: the model's versions).") var version: Int?
        @Option(help: "The version an alias points at.") var alias: String?

        func run() async throws {
            let registry = try connection.registry()
            if version == nil && alias == nil {
                let model = try registry.model(self.model)
                print("Model \(model.name): \(model.latestVersion) versions; created by \(model.createdBy)")
                if !model.description.isEmpty { print(model.description) }
                var rows = [["VERSION", "STATUS", "ALIASES", "CREATED BY", "ARTIFACT", "METRICS"]]
                for found in try registry.search(VersionFilter(model: model.name, includeArchived: true, limit: 1000)) {
                    rows.append([
                        String(found.version), found.status, found.aliases.joined(separator: ","), found.createdBy,
                        "\(found.artifactSHA256.prefix(12)) \(found.artifactSize) B",
                        found.metrics.keys.sorted().prefix(4).map { "\($0)=\(format(found.lastValue(of: $0)))" }.joined(
                            separator: " "),
                    ])
                }
                print(table(rows))
                return
            }
            let found = try registry.version(model, number: version, alias: alias)
            print("\(found.model) version \(found.version) [\(found.status)] by \(found.createdBy)")
            if !found.aliases.isEmpty { print("Aliases: \(found.aliases.joined(separator: ", "))") }
            for approval in found.approvals { print("Approved for \(approval.alias) by \(approval.by): \(approval.reason)") }
            print("Model card:")
            print(found.modelCard)
        }
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a new version from a weights file.")
        @OptionGroup var connection: Connection
        @Argument(help: "The model (created if new).") var model: String
        @Option(help: "The artifact file (safetensors unless --format binary).") var artifact: String
        @Option(help: "safetensors or binary.") var format = "safetensors"
        @Option(help: "A metric, NAME=VALUE (repeatable).") var metric: [String] = []
        @Option(help: "A parameter, NAME=VALUE (repeatable).") var param: [String] = []
        @Option(help: "A tag, KEY=VALUE (repeatable).") var tag: [String] = []
        @Option(help: "What this version is.") var description = ""
        @Option(help: "The version it was fine-tuned or derived from.") var parent: Int?
        @Option(help: "A JSON file with the model's configuration, for the model card.") var config: String?
        @Option(name: .customLong("data-sha256"), help: "The training data's hash.") var dataSHA256 = ""
        @Option(name: .customLong("code-sha256"), help: "The code's hash.") var codeSHA256 = ""

        func pairs(_ entries: [String], _ flag: String) throws -> [String: String] {
            var result: [String: String] = [:]
            for entry in entries {
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--\(flag) '\(entry)' is not NAME=VALUE") }
                result[parts[0]] = parts[1]
            }
            return result
        }

        func run() async throws {
            guard FileManager.default.isReadableFile(atPath: artifact) else {
                throw CommandFailure("cannot read the artifact file \(artifact)")
            }
            var metrics: [String: Double] = [:]
            for (name, text) in try pairs(metric, "metric") {
                guard let value = Double(text), value.isFinite else {
                    throw ValidationError("--metric \(name)=\(text): not a number")
                }
                metrics[name] = value
            }
            var configJSON = ""
            if let config {
                guard let data = FileManager.default.contents(atPath: config) else {
                    throw ValidationError("cannot read --config \(config)")
                }
                configJSON = String(decoding: data, as: UTF8.self)
            }
            let environment = ProcessInfo.processInfo.environment
            // Read a piece at a time: a model of several GiB is never whole in memory.
            let version = try connection.registry().register(
                model: model, artifactAt: artifact, format: format, description: description,
                parameters: try pairs(param, "param"),
                metrics: metrics, tags: try pairs(tag, "tag"),
                lineage: .init(
                    jobID: environment["SHOAL_JOB_ID"] ?? "", dataSHA256: dataSHA256, codeSHA256: codeSHA256,
                    parentVersion: parent),
                configJSON: configJSON)
            print(
                "Registered \(version.model) version \(version.version) (artifact \(version.artifactSHA256.prefix(16)), \(version.artifactSize) bytes)."
            )
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve a version for an alias (not your own).")
        @OptionGroup var connection: Connection
        @Argument var model: String
        @Argument var version: Int
        @Option(help: "The alias the approval is for.") var alias = "production"
        @Option(help: "Why.") var reason = ""

        func run() async throws {
            try connection.registry().approve(model, version: version, for: alias, reason: reason)
            print("Approved \(model) version \(version) for '\(alias)'.")
        }
    }

    struct Alias: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Point an alias at a version (production needs an approval).")
        @OptionGroup var connection: Connection
        @Argument var model: String
        @Argument var alias: String
        @Argument(help: "The version; leave out with --remove.") var version: Int?
        @Flag(help: "Remove the alias.") var remove = false
        @Option(help: "Why.") var reason = ""

        func validate() throws {
            guard remove == (version == nil) else { throw ValidationError("give a version, or --remove") }
        }

        func run() async throws {
            try connection.registry().moveAlias(model, alias, to: version, reason: reason)
            print(remove ? "Removed \(model)@\(alias)." : "\(model)@\(alias) → version \(version ?? 0).")
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch a version's artifact (checked against its hash) and model card.")
        @OptionGroup var connection: Connection
        @Argument var model: String
        @Argument(help: "A version number (default: latest, or --alias).") var version: Int?
        @Option(help: "The version an alias points at.") var alias: String?
        @Option(help: "The folder to write <model>-v<version>.<format> and its .card.json into.") var output = "."

        func run() async throws {
            // A piece at a time into the file, which appears once all of it matched its hash.
            let (found, file) = try connection.registry().download(name: model, version: version, alias: alias, into: output)
            let base = "\(output)/\(found.model)-v\(found.version)"
            try Data(found.modelCard.utf8).write(to: URL(fileURLWithPath: base + ".card.json"))
            print("Wrote \(file) (\(found.artifactSize) bytes, sha256 \(found.artifactSHA256.prefix(16))…) and \(base).card.json")
        }
    }

    struct Compare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Two versions' metrics and parameters side by side.")
        @OptionGroup var connection: Connection
        @Argument var model: String
        @Argument var left: Int
        @Argument var right: Int

        func run() async throws {
            let comparison = try connection.registry().compare(model, left, right)
            var rows = [["", "v\(left)", "v\(right)", "Δ"]]
            for metric in comparison.metrics {
                let delta = metric.left.flatMap { l in metric.right.map { format($0 - l) } } ?? ""
                rows.append(["metric \(metric.name)", format(metric.left), format(metric.right), delta])
            }
            for parameter in comparison.parameters {
                rows.append([
                    "param \(parameter.name)", parameter.left ?? "—", parameter.right ?? "—",
                    parameter.left == parameter.right ? "" : "≠",
                ])
            }
            print(table(rows))
        }
    }

    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The append-only audit log: who changed what, when and why.")
        @OptionGroup var connection: Connection
        @Argument(help: "A model (default: all).") var model: String?
        @Option(help: "The most entries to show.") var limit = 1000

        func run() async throws {
            let entries = try connection.registry().audit(model: model, limit: limit)
            let formatter = ISO8601DateFormatter()
            var rows = [["#", "WHEN", "WHO", "ACTION", "MODEL", "VERSION", "DETAILS", "WHY"]]
            for entry in entries {
                rows.append([
                    String(entry.id), formatter.string(from: entry.at), entry.actor, entry.action, entry.model,
                    entry.version == 0 ? "" : String(entry.version), entry.details, entry.reason,
                ])
            }
            print(table(rows))
        }
    }

    struct Tag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set (KEY=VALUE) or remove (-KEY) tags of a model or a version.")
        @OptionGroup var connection: Connection
        @Argument var model: String
        @Option(help: "The version (default: the model itself).") var version: Int?
        @Argument(help: "KEY=VALUE to set, -KEY to remove.") var changes: [String]
        @Option(help: "Why.") var reason = ""

        func run() async throws {
            var set: [String: String] = [:]
            var remove: [String] = []
            for change in changes {
                if change.hasPrefix("-") {
                    remove.append(String(change.dropFirst()))
                } else {
                    let parts = change.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { throw ValidationError("'\(change)' is neither KEY=VALUE nor -KEY") }
                    set[parts[0]] = parts[1]
                }
            }
            try connection.registry().setTags(model, version: version, set, removing: remove, reason: reason)
            print("Tags of \(model)\(version.map { " version \($0)" } ?? "") updated.")
        }
    }

    struct Archive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Archive a version (it stays, and stays downloadable).")
        @OptionGroup var connection: Connection
        @Argument var model: String
        @Argument var version: Int
        @Option(help: "Why.") var reason = ""

        func run() async throws {
            try connection.registry().archive(model, version: version, reason: reason)
            print("Archived \(model) version \(version).")
        }
    }
}

extension ModelsCommand {
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Time the registry: register a version with 10 metrics and a 2 MB artifact, move an alias to it, fetch it by alias.",
            discussion: """
                Without --address, runs against a registry of its own on loopback with a SQLite store and a local artifact \
                folder in a temporary directory (the setup MLflow's local client has). Every artifact is new bytes, so \
                nothing is deduplicated; every fetch checks the artifact's SHA-256. The client writes and reads the \
                artifact store itself when it sees it (as here), unless --through-registry sends every artifact through \
                the registry's socket.
                """)
        @Option(help: "A running head or registry, HOST:PORT (default: one of its own).") var address: String?
        @Option(help: "Iterations after one warm-up.") var count = 200
        @Option(help: "Artifact size in bytes.") var size = 2 << 20
        @Option(help: "Write the figures as JSON here.") var json: String?
        @Flag(help: "Send artifacts through the registry's socket even where the client sees the artifact store.")
        var throughRegistry = false
        @Flag(help: "Skip timing new probe files after the cycles (a harness that probes the machine itself).")
        var noProbes = false
        @Option(
            help: ArgumentHelp(
                "A new folder for the registry's store and the probe files, left in place afterwards (default: a temporary one, removed).",
                discussion:
                    "Removing thousands of files makes the next new files slower to create on ext4 without a journal (recently deleted inodes are skipped for up to minutes), so a comparison run removes its folders only after every system has run."
            ))
        var folder: String?

        func validate() throws {
            guard count > 0, size >= 8 else { throw ValidationError("--count must be above 0 and --size at least 8") }
        }

        func run() async throws {
            var server: RegistryServer?
            let folder = self.folder ?? NSTemporaryDirectory() + "shoal-registry-bench-\(getpid())"
            guard !FileManager.default.fileExists(atPath: folder) else {
                throw ValidationError("--folder \(folder) exists already; name a new one")
            }
            defer {
                server?.shutdown()
                if self.folder == nil { try? FileManager.default.removeItem(atPath: folder) }
            }
            let target: String
            if let address {
                target = address
            } else {
                let service = try RegistryService(
                    storage: .sqlite(path: folder + "/registry.sqlite"), artifacts: try ArtifactStore(root: folder + "/artifacts")
                )
                let started = try RegistryServer(service: service, bind: "tcp://127.0.0.1:0", advertisedHost: "127.0.0.1")
                server = started
                target = started.address
            }
            let registry = try ModelRegistry(address: target, identity: "bench", sharedStore: !throughRegistry)
            let shared = registry.usesSharedStore
            printError(
                "  artifacts \(shared ? "written and read in the shared artifact store" : "sent through the registry's socket")")
            // Random bytes from SplitMix64 seeded by the system: one system call, not one per word.
            var state = UInt64.random(in: 0...UInt64.max)
            var artifact = [UInt8](repeating: 0, count: size)
            artifact.withUnsafeMutableBytes { raw in
                for offset in stride(from: 0, to: raw.count, by: 8) {
                    state &+= 0x9E37_79B9_7F4A_7C15
                    var word = (state ^ (state >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    word = (word ^ (word >> 27)) &* 0x94D0_49BB_1331_11EB
                    word ^= word >> 31
                    withUnsafeBytes(of: word) { bytes in
                        for index in 0..<min(8, raw.count - offset) { raw[offset + index] = bytes[index] }
                    }
                }
            }
            let model = "bench-\(UInt32.random(in: 0...UInt32.max))"
            var registerTimes: [Double] = []
            var fetchTimes: [Double] = []
            let clock = ContinuousClock()
            for iteration in 0...count {
                // New bytes every time: a counter in the first eight.
                withUnsafeBytes(of: UInt64(iteration)) { raw in for offset in 0..<8 { artifact[offset] = raw[offset] } }
                var metrics: [String: Double] = [:]
                for metric in 0..<10 { metrics["metric_\(metric)"] = Double(iteration) + Double(metric) / 10 }
                let start = clock.now
                let version = try registry.register(model: model, artifact: artifact, format: "binary", metrics: metrics)
                try registry.moveAlias(model, "champion", to: version.version)
                let registered = clock.now
                let fetched = try registry.load(name: model, alias: "champion")
                let done = clock.now
                guard fetched.artifact.count == size, fetched.version.version == version.version else {
                    throw CommandFailure("fetched version \(fetched.version.version), \(fetched.artifact.count) bytes")
                }
                if iteration > 0 {
                    registerTimes.append((registered - start).seconds)
                    fetchTimes.append((done - registered).seconds)
                }
                if iteration > 0, iteration % 50 == 0 || iteration == count {
                    let rate = Double(registerTimes.count) / max(1e-9, registerTimes.reduce(0, +) + fetchTimes.reduce(0, +))
                    printError(
                        String(
                            format: "  %d/%d cycles  %.0f cycles/s  ETA %.1f s", iteration, count, rate,
                            Double(count - iteration) / max(rate, 1e-9)))
                }
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            // One SHA-256 pass over the artifact, for the report's account of where the time goes.
            var hashTimes: [Double] = []
            for _ in 0..<20 {
                let start = clock.now
                _ = ArtifactStore.address(of: artifact)
                hashTimes.append((clock.now - start).seconds)
            }
            // Writing the artifact to a new file of its own, for the same account: a new file takes
            // new pages from the kernel. The files stay until all are written, so that none reuses
            // another's freed pages.
            var writeTimes: [Double] = []
            let probes = folder + "/probes"
            try FileManager.default.createDirectory(atPath: probes, withIntermediateDirectories: true)
            for index in 0..<(noProbes ? 0 : 20) {
                let path = probes + "/\(index)"
                let start = clock.now
                let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                // 256 KiB a call, as the artifact store writes.
                let written = artifact.withUnsafeBytes { raw in
                    var done = 0
                    while done < raw.count {
                        let got = write(descriptor, raw.baseAddress! + done, min(raw.count - done, 256 << 10))
                        guard got > 0 else { break }
                        done += got
                    }
                    return done
                }
                if descriptor >= 0 { close(descriptor) }
                writeTimes.append((clock.now - start).seconds)
                guard written == artifact.count else { throw CommandFailure("cannot write a probe file at \(path)") }
            }
            let result: [String: Double] = [
                "register_ms": median(registerTimes) * 1000, "fetch_ms": median(fetchTimes) * 1000,
                "cycle_per_second": Double(count) / (registerTimes.reduce(0, +) + fetchTimes.reduce(0, +)),
                "register_per_second": Double(count) / registerTimes.reduce(0, +),
                "fetch_per_second": Double(count) / fetchTimes.reduce(0, +), "count": Double(count),
                "sha256_ms": median(hashTimes) * 1000, "new_file_ms": noProbes ? 0 : median(writeTimes) * 1000,
                "shared_store": shared ? 1 : 0,
            ]
            print(
                String(
                    format: "register + alias: %.2f ms median (%.0f/s)   fetch by alias: %.2f ms median (%.0f/s)   cycle: %.0f/s",
                    result["register_ms"] ?? 0, result["register_per_second"] ?? 0, result["fetch_ms"] ?? 0,
                    result["fetch_per_second"] ?? 0,
                    result["cycle_per_second"] ?? 0))
            if let json {
                // Each cycle's times too, for a harness that pools several runs.
                var written: [String: Any] = result
                written["register_times_ms"] = registerTimes.map { $0 * 1000 }
                written["fetch_times_ms"] = fetchTimes.map { $0 * 1000 }
                try JSONSerialization.data(withJSONObject: written, options: [.sortedKeys, .prettyPrinted]).write(
                    to: URL(fileURLWithPath: json))
            }
        }
    }
}

private func format(_ value: Double?) -> String {
    guard let value else { return "—" }
    return String(format: "%.6g", value)
}
