/// An error from `BinaryEncoder` or `BinaryDecoder`, naming what was wrong and where.
public struct BinaryCodingError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable {
        case truncated
        case keyNotFound
        case invalidValue
        case tooLarge
    }

    private let code: Code
    /// What went wrong, in words.
    public let message: String
    /// The coding path, joined with dots.
    public let path: String

    private init(_ code: Code, _ message: String, path: [any CodingKey]) {
        self.code = code
        self.message = message
        self.path = path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    /// The input ended before the value did.
    public static func truncated(_ what: String, path: [any CodingKey]) -> Self {
        Self(.truncated, "input ended while reading \(what)", path: path)
    }

    /// A keyed container has no entry for the key.
    public static func keyNotFound(_ key: any CodingKey, path: [any CodingKey]) -> Self {
        Self(.keyNotFound, "no value for key '\(key.stringValue)'", path: path)
    }

    /// The bytes do not form a valid value of the type.
    public static func invalidValue(_ message: String, path: [any CodingKey]) -> Self {
        Self(.invalidValue, message, path: path)
    }

    /// A value is past what the format can frame.
    public static func tooLarge(_ message: String, path: [any CodingKey]) -> Self {
        Self(.tooLarge, message, path: path)
    }

    public var description: String {
        path.isEmpty ? "binary coding: \(message)" : "binary coding at \(path): \(message)"
    }

    /// A keyed container had no entry for a key the type needs.
    public var isKeyNotFound: Bool { code == .keyNotFound }
}
