/// An object's bytes mapped from its node's shared memory: reading them copies nothing.
///
/// The mapping stays valid for the life of this value, even if the store spills or frees the
/// object meanwhile.
public final class MappedObject: @unchecked Sendable {
    // Immutable after init: the mapping, shared with the process's kept store mappings for
    // large files, unmaps when its last holder lets go.
    private let mapping: FileMapping?
    private let base: UnsafeRawPointer?
    /// The object's size in bytes.
    public let count: Int

    init(mapping: FileMapping?, count: Int) {
        self.mapping = mapping
        self.base = mapping.map { UnsafeRawPointer($0.base) }
        self.count = count
    }

    /// The bytes, valid while this value lives.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// The elements of an object holding an array of scalars (`[Float]`, `[Double]` …), read in
    /// place: the array's count, then its elements.
    /// - Throws: when the bytes are not an array of `Element`.
    public func elements<Element: BitwiseCopyable>(of type: Element.Type) throws -> UnsafeBufferPointer<Element> {
        guard count >= 8, let base else { throw ClusterError.invalidArgument("object of \(count) bytes holds no array") }
        let elements = Int(base.loadUnaligned(as: UInt64.self))
        guard elements * MemoryLayout<Element>.stride == count - 8,
            Int(bitPattern: base + 8) % MemoryLayout<Element>.alignment == 0
        else {
            throw ClusterError.invalidArgument("object of \(count) bytes is not an array of \(elements) \(Element.self)")
        }
        return UnsafeBufferPointer(start: (base + 8).assumingMemoryBound(to: Element.self), count: elements)
    }
}
