import ShoalWire
import Synchronization

/// A named Swift function that can run on any executor of the cluster.
///
/// Code does not travel: every process of a job runs the same binary, so a task is found by its
/// name in the binary's `TaskRegistry`. Declare tasks as `static let` or global constants and
/// pass them to `Shoal.bootstrap(tasks:)` at the top of `main`.
///
/// ```swift
/// let square = RemoteTask("square") { (x: Int) in x * x }
/// ```
public struct RemoteTask<Input: Codable & Sendable, Output: Codable & Sendable>: Sendable, AnyRemoteTask {
    /// The name the task is registered and sent under.
    public let name: String
    /// Default options for submissions of this task.
    public let options: TaskOptions
    let body: @Sendable (Input) async throws -> Output

    /// Declares a task.
    /// - Parameters:
    ///   - name: unique within the binary.
    ///   - options: defaults for its submissions (resources, retries).
    ///   - body: the function; its input and output travel in Shoal's binary coding.
    public init(
        _ name: String, options: TaskOptions = TaskOptions(),
        _ body: @escaping @Sendable (Input) async throws -> Output
    ) {
        self.name = name
        self.options = options
        self.body = body
    }

    /// The type-erased entry the executor calls.
    public var invoker: TaskInvoker {
        let body = self.body
        return TaskInvoker { payload, resolved in
            var decoder = BinaryDecoder()
            decoder.userInfo[.shoalResolvedObjects] = resolved
            let input: Input
            do {
                input = try payload.withUnsafeBytes { try decoder.decode(Input.self, from: $0) }
            } catch {
                throw TaskInvocationError.badInput("cannot decode input as \(Input.self): \(error)")
            }
            let output = try await body(input)
            return try BinaryEncoder().encode(output)
        }
    }
}

/// A task of any input and output type.
public protocol AnyRemoteTask: Sendable {
    var name: String { get }
    var invoker: TaskInvoker { get }
}

/// Runs a task from its encoded input to its encoded output.
public struct TaskInvoker: Sendable {
    let call: @Sendable ([UInt8], ResolvedObjects) async throws -> [UInt8]
}

enum TaskInvocationError: Error {
    case badInput(String)
}

/// The tasks a binary can run, by name. Filled once by `Shoal.bootstrap(tasks:)`.
public final class TaskRegistry: Sendable {
    private let entries = Mutex<[String: TaskInvoker]>([:])

    /// The process's registry.
    public static let shared = TaskRegistry()

    public init() {}

    /// Registers tasks; a second task with a taken name replaces the first.
    public func register(_ tasks: [any AnyRemoteTask]) {
        entries.withLock { entries in
            for task in tasks { entries[task.name] = task.invoker }
        }
    }

    func invoker(named name: String) -> TaskInvoker? {
        entries.withLock { $0[name] }
    }

    /// The registered names, sorted.
    public var names: [String] { entries.withLock { $0.keys.sorted() } }
}
