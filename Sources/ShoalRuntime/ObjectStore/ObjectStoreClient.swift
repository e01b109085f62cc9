import ShoalWire

/// A process that can place objects in its node's store and map objects from it: a driver or
/// an executor, each through its own node daemon.
protocol ObjectStoreClient: Sendable {
    /// Maps an object, pulling it from its node or restoring it from disk as needed.
    func map(_ location: Shoal_V1_ObjectLocation) async throws -> MappedObject
}

/// What an object is, to its owner: inline bytes, or a location in a node's store.
enum ObjectContents: Sendable {
    case inline([UInt8])
    case stored(Shoal_V1_ObjectLocation)
}

/// Objects at or under this size travel inline with tasks and results instead of through a
/// node's store.
public let inlineObjectLimit = 100 * 1024

extension ObjectContents {
    /// Decodes the value, mapping stored objects without copying their bytes first.
    func decode<Value: Decodable>(_ type: Value.Type, using client: (any ObjectStoreClient)?) async throws -> Value {
        switch self {
        case .inline(let bytes):
            return try BinaryDecoder().decode(Value.self, from: bytes)
        case .stored(let location):
            guard let client else {
                throw ClusterError.notFound("object \(location.key) is stored, and this process has no node to map it from")
            }
            let mapped = try await client.map(location)
            // Arrays of scalars: one copy out of the mapping, not a decode call per element.
            if let raw = Value.self as? any RawArrayConvertible.Type, let value = try raw.copied(from: mapped) as? Value {
                return value
            }
            return try BinaryDecoder().decode(Value.self, from: mapped.bytes)
        }
    }
}
