import ShoalTransport
import ShoalWire

extension DriverCore {
    /// Stores a value and returns a reference to it. Values past `inlineObjectLimit` go to the
    /// object store of this machine's node daemon, in shared memory; arrays of scalars are
    /// written there straight from their own memory.
    /// - Parameter inObjectStore: store it in the node's object store even when small.
    public nonisolated func put<Value: Codable & Sendable>(
        _ value: Value, inObjectStore: Bool = false
    ) async throws -> ObjectRef<Value> {
        let id = nextObjectIDValue()
        let storage = RefStorage(owner: self, id: id)
        if let raw = value as? any RawArrayConvertible, inObjectStore || raw.rawByteCount + 8 > inlineObjectLimit {
            let location = try await store(key: objectKeyPrefix + String(id), size: UInt64(raw.rawByteCount + 8)) { target in
                raw.writeRaw(into: target)
            }
            await record(id, .stored(location))
            return ObjectRef(id: id, storage: storage)
        }
        let bytes = try BinaryEncoder().encode(value)
        if inObjectStore || bytes.count > inlineObjectLimit {
            let location = try await store(key: objectKeyPrefix + String(id), size: UInt64(bytes.count)) { target in
                bytes.withUnsafeBytes { LargeCopy.copy($0, into: target) }
            }
            await record(id, .stored(location))
        } else if !recordOnLoop(id, .inline(bytes)) {
            await record(id, .inline(bytes))
        }
        return ObjectRef(id: id, storage: storage)
    }

    /// Waits for several objects and decodes them, in order.
    public nonisolated func values<Value: Decodable>(
        of ids: [ObjectID], as type: Value.Type, timeout: Duration?
    ) async throws -> [Value] {
        var values: [Value] = []
        values.reserveCapacity(ids.count)
        for contents in try await self.values(of: ids, timeout: timeout) {
            values.append(try await contents.decode(Value.self, using: self))
        }
        return values
    }

    func record(_ id: ObjectID, _ contents: ObjectContents) {
        var entry = ObjectEntry()
        entry.state = .ready(contents)
        objects[id] = entry
    }

    /// Reserves space in the local node's store, writes into its mapping, and seals it.
    private func store(
        key: String, size: UInt64, write: (UnsafeMutableRawBufferPointer) -> Void
    ) async throws -> Shoal_V1_ObjectLocation {
        var create = Shoal_V1_CreateObject()
        create.key = key
        create.size = size
        create.jobID = jobID
        let reply = try await request(
            .createObject(create), timeout: .seconds(60), what: "placing object \(key)", toLocalNode: true)
        guard case .objectPlaced(let placed) = reply.body else {
            throw ClusterError.peerError("placing object \(key): unexpected reply")
        }
        try storeMappings.write(path: placed.path, count: Int(size), write)
        var seal = Shoal_V1_SealObject()
        seal.key = key
        try sendToLocalNode(Envelope(0, .sealObject(seal)))
        var location = Shoal_V1_ObjectLocation()
        location.key = key
        location.nodeID = localNodeIDValue
        location.nodeAddress = localNodeAddressValue
        location.size = size
        return location
    }

    public func map(_ location: Shoal_V1_ObjectLocation) async throws -> MappedObject {
        var get = Shoal_V1_GetObject()
        get.key = location.key
        get.source = location
        get.jobID = jobID
        let reply = try await request(
            .getObject(get), timeout: .seconds(300), what: "mapping object \(location.key)", toLocalNode: true)
        guard case .objectPlaced(let placed) = reply.body else {
            throw ClusterError.peerError("mapping object \(location.key): unexpected reply")
        }
        return try storeMappings.read(path: placed.path, count: Int(placed.size))
    }
}

/// Arrays of scalars, which `put` writes into shared memory straight from their storage and
/// `get` copies out of a mapping in one piece, in the layout `BinaryEncoder` uses (an 8-byte
/// count, then the elements).
protocol RawArrayConvertible {
    var rawByteCount: Int { get }
    func writeRaw(into target: UnsafeMutableRawBufferPointer)
    /// The array a stored object holds, checked against the object's size.
    static func copied(from mapped: MappedObject) throws -> Self
}

/// Scalars whose arrays `BinaryEncoder` writes as raw memory.
protocol RawScalar: BitwiseCopyable {}

extension Float: RawScalar {}
extension Double: RawScalar {}
extension Int: RawScalar {}
extension Int8: RawScalar {}
extension Int16: RawScalar {}
extension Int32: RawScalar {}
extension Int64: RawScalar {}
extension UInt: RawScalar {}
extension UInt8: RawScalar {}
extension UInt16: RawScalar {}
extension UInt32: RawScalar {}
extension UInt64: RawScalar {}

extension Array: RawArrayConvertible where Element: RawScalar {
    var rawByteCount: Int { count * MemoryLayout<Element>.stride }

    func writeRaw(into target: UnsafeMutableRawBufferPointer) {
        target.storeBytes(of: UInt64(count).littleEndian, as: UInt64.self)
        withUnsafeBytes { source in
            LargeCopy.copy(source, into: UnsafeMutableRawBufferPointer(rebasing: target[8...]))
        }
    }

    static func copied(from mapped: MappedObject) throws -> [Element] {
        LargeCopy.array(copying: try mapped.elements(of: Element.self))
    }
}
