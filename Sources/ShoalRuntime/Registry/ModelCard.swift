import Foundation

/// Any JSON value, kept as parsed (integers stay integers), for configurations the registry
/// stores without knowing their shape.
enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// What a version's model card holds: its configuration, parameters, last metrics, lineage and
/// artifact, as pretty-printed JSON with sorted keys.
///
/// Written by `JSONText` rather than an encoder: `JSONSerialization`'s bridging of
/// `[String: Any]` took 70 % of a registration's time in the registry, and `JSONEncoder`'s
/// containers still a fifth of it.
struct ModelCard {
    struct Lineage {
        var job_id: String
        var task_id: String
        var data_sha256: String
        var code_sha256: String
        var parent_version: UInt32
    }

    struct Artifact {
        var sha256: String
        var size: UInt64
        var format: String
    }

    var model: String
    var version: Int64
    var description: String
    var config: JSONValue
    var parameters: [String: String]
    var metrics: [String: Double]
    var lineage: Lineage
    var artifact: Artifact
    var registered_by: String

    /// Parses a client's configuration.
    /// - Throws: `RegistryError.invalid` when it is not JSON.
    static func configuration(_ json: String) throws -> JSONValue {
        guard !json.isEmpty else { return .object([:]) }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        } catch {
            throw RegistryError.invalid("the model configuration is not JSON")
        }
    }

    func json() -> String {
        var text = JSONText()
        text.object([
            ("artifact", { text in
                text.object([
                    ("format", { $0.string(artifact.format) }), ("sha256", { $0.string(artifact.sha256) }),
                    ("size", { $0.raw(String(artifact.size)) }),
                ])
            }),
            ("config", { $0.value(config) }),
            ("description", { $0.string(description) }),
            ("lineage", { text in
                text.object([
                    ("code_sha256", { $0.string(lineage.code_sha256) }), ("data_sha256", { $0.string(lineage.data_sha256) }),
                    ("job_id", { $0.string(lineage.job_id) }), ("parent_version", { $0.raw(String(lineage.parent_version)) }),
                    ("task_id", { $0.string(lineage.task_id) }),
                ])
            }),
            ("metrics", { text in text.object(metrics.sorted { $0.key < $1.key }.map { key, value in (key, { $0.number(value) }) }) }),
            ("model", { $0.string(model) }),
            ("parameters", { text in
                text.object(parameters.sorted { $0.key < $1.key }.map { key, value in (key, { $0.string(value) }) })
            }),
            ("registered_by", { $0.string(registered_by) }),
            ("version", { $0.raw(String(version)) }),
        ])
        return text.output
    }
}

/// Writes JSON a value at a time: objects with their keys in the order given, two spaces a
/// level when `pretty` (`"key" : value`, as `JSONEncoder` prints), else compact.
struct JSONText {
    private(set) var output = ""
    private var depth = 0
    let pretty: Bool

    init(pretty: Bool = true) { self.pretty = pretty }

    mutating func raw(_ text: String) { output += text }

    /// A finite number, integral ones without a fraction (`3`, `0.25`, `1e-05`).
    mutating func number(_ value: Double) {
        if value.isFinite, value == value.rounded(), abs(value) < 9.0e15 {
            output += String(Int64(value))
        } else if value.isFinite {
            output += String(value)
        } else {
            output += "null"
        }
    }

    mutating func string(_ value: String) {
        output.append("\"")
        var plain = value.utf8.startIndex
        let utf8 = value.utf8
        var index = plain
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == 0x22 || byte == 0x5C || byte < 0x20 {
                output += String(value[plain..<index])
                switch byte {
                case 0x22: output += "\\\""
                case 0x5C: output += "\\\\"
                case 0x0A: output += "\\n"
                case 0x0D: output += "\\r"
                case 0x09: output += "\\t"
                default:
                    let hex = String(byte, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
                plain = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        output += String(value[plain..<utf8.endIndex])
        output.append("\"")
    }

    mutating func object(_ members: [(key: String, write: (inout JSONText) -> Void)]) {
        guard !members.isEmpty else {
            output += "{}"
            return
        }
        output += "{"
        depth += 1
        for (index, member) in members.enumerated() {
            if index > 0 { output += "," }
            newline()
            string(member.key)
            output += pretty ? " : " : ":"
            member.write(&self)
        }
        depth -= 1
        newline()
        output += "}"
    }

    mutating func array(_ count: Int, _ write: (inout JSONText, Int) -> Void) {
        guard count > 0 else {
            output += "[]"
            return
        }
        output += "["
        depth += 1
        for index in 0..<count {
            if index > 0 { output += "," }
            newline()
            write(&self, index)
        }
        depth -= 1
        newline()
        output += "]"
    }

    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: output += "null"
        case .bool(let flag): output += flag ? "true" : "false"
        case .integer(let number): output += String(number)
        case .number(let number): self.number(number)
        case .string(let text): string(text)
        case .array(let items): array(items.count) { text, index in text.value(items[index]) }
        case .object(let members):
            object(members.sorted { $0.key < $1.key }.map { key, member in (key, { $0.value(member) }) })
        }
    }

    private mutating func newline() {
        guard pretty else { return }
        output += "\n" + String(repeating: "  ", count: depth)
    }

    /// `{"key":"value",…}` for a flat object of strings, compact, keys sorted: stored text that
    /// compares equal when its content does.
    static func flatObject(_ members: [String: String]) -> String {
        var text = JSONText(pretty: false)
        text.object(members.sorted { $0.key < $1.key }.map { key, value in (key, { $0.string(value) }) })
        return text.output
    }

    /// Reads a flat JSON object of strings (what `flatObject` writes, or any encoder): nil when
    /// the text is anything else.
    static func parseFlatObject(_ text: String) -> [String: String]? {
        var bytes = Array(text.utf8)[...]
        func skipSpace() { while let byte = bytes.first, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { bytes.removeFirst() } }
        func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard bytes.first == byte else { return false }
            bytes.removeFirst()
            return true
        }
        func hex4() -> UInt32? {
            guard bytes.count >= 4 else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes.removeFirst()
                let digit: UInt8
                switch byte {
                case 0x30...0x39: digit = byte - 0x30
                case 0x41...0x46: digit = byte - 0x37
                case 0x61...0x66: digit = byte - 0x57
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
        func string() -> String? {
            guard take(0x22) else { return nil }
            var decoded: [UInt8] = []
            while let byte = bytes.first {
                bytes.removeFirst()
                switch byte {
                case 0x22: return String(validating: decoded, as: UTF8.self)
                case 0x5C:
                    guard let escape = bytes.first else { return nil }
                    bytes.removeFirst()
                    switch escape {
                    case 0x22, 0x5C, 0x2F: decoded.append(escape)
                    case 0x62: decoded.append(0x08)
                    case 0x66: decoded.append(0x0C)
                    case 0x6E: decoded.append(0x0A)
                    case 0x72: decoded.append(0x0D)
                    case 0x74: decoded.append(0x09)
                    case 0x75:
                        guard var scalar = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(scalar) {
                            // The low half must follow at once (`take` would skip spaces).
                            guard bytes.starts(with: [0x5C, 0x75]) else { return nil }
                            bytes.removeFirst(2)
                            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { return nil }
                        decoded += Array(String(Character(unicode)).utf8)
                    default: return nil
                    }
                case 0..<0x20: return nil
                default: decoded.append(byte)
                }
            }
            return nil
        }
        guard take(0x7B) else { return nil }
        var members: [String: String] = [:]
        if take(0x7D) {
            skipSpace()
            return bytes.isEmpty ? members : nil
        }
        repeat {
            guard let key = string(), take(0x3A), let value = string() else { return nil }
            members[key] = value
        } while take(0x2C)
        guard take(0x7D) else { return nil }
        skipSpace()
        return bytes.isEmpty ? members : nil
    }
}
