/// The growing byte buffer an encoding writes into; containers share one sink.
final class BinarySink {
    var bytes: [UInt8]
    /// Child sinks of nested containers, by the offset where their framed bytes belong.
    var splices: [(offset: Int, child: BinarySink)] = []

    init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Moves the bytes of finished child sinks recorded at or after `start` into place, each
    /// behind a 4-byte length.
    func spliceTail(from start: Int) {
        guard let last = splices.last, last.offset >= start else { return }
        let firstIndex = splices.firstIndex { $0.offset >= start } ?? splices.count
        var merged: [UInt8] = []
        merged.reserveCapacity(bytes.count - start)
        var cursor = start
        for (offset, child) in splices[firstIndex...] {
            merged.append(contentsOf: bytes[cursor..<offset])
            child.spliceTail(from: 0)
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: child.bytes.count).littleEndian) { merged.append(contentsOf: $0) }
            merged.append(contentsOf: child.bytes)
            cursor = offset
        }
        merged.append(contentsOf: bytes[cursor...])
        bytes.removeSubrange(start...)
        bytes.append(contentsOf: merged)
        splices.removeSubrange(firstIndex...)
    }

    @inline(__always)
    func appendScalar<T: BitwiseCopyable>(_ value: T) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    func append(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    func appendVarint(_ value: UInt64) {
        var remaining = value
        while remaining >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        bytes.append(UInt8(remaining))
    }

    /// Reserves a 4-byte length slot and returns its offset, to be filled by `closeLength(at:)`.
    @inline(__always)
    func openLength() -> Int {
        let offset = bytes.count
        bytes.append(contentsOf: [0, 0, 0, 0] as [UInt8])
        return offset
    }

    /// Writes the number of bytes appended since `openLength()` into its slot.
    func closeLength(at offset: Int, path: [any CodingKey]) throws {
        spliceTail(from: offset + 4)
        let length = bytes.count - offset - 4
        guard length <= Int(UInt32.max) else {
            throw BinaryCodingError.tooLarge("a value of \(length) bytes is past the 4 GiB frame limit", path: path)
        }
        withUnsafeBytes(of: UInt32(length).littleEndian) { source in
            bytes.withUnsafeMutableBytes { target in
                target.baseAddress!.advanced(by: offset).copyMemory(from: source.baseAddress!, byteCount: 4)
            }
        }
    }
}

/// A cursor over bytes being decoded. It never reads past `end`.
struct BinaryReader {
    let base: UnsafeRawPointer?
    var offset: Int
    let end: Int

    init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress
        offset = 0
        end = buffer.count
    }

    init(base: UnsafeRawPointer?, offset: Int, end: Int) {
        self.base = base
        self.offset = offset
        self.end = end
    }

    var isAtEnd: Bool { offset >= end }
    var remaining: Int { end - offset }

    @inline(__always)
    mutating func readScalar<T: BitwiseCopyable>(_ type: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size, let base else {
            throw BinaryCodingError.truncated("\(T.self)", path: [])
        }
        let value = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return value
    }

    mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try readScalar(UInt8.self)
            guard shift < 64 else { throw BinaryCodingError.invalidValue("varint is too long", path: []) }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func readBytes(count: Int, what: String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw BinaryCodingError.truncated(what, path: []) }
        guard count > 0, let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let bytes = UnsafeRawBufferPointer(start: base + offset, count: count)
        offset += count
        return bytes
    }

    /// Reads a 4-byte length and returns a reader over that many following bytes.
    mutating func readRegion(what: String) throws -> BinaryReader {
        let length = Int(try readScalar(UInt32.self))
        guard remaining >= length else { throw BinaryCodingError.truncated(what, path: []) }
        let region = BinaryReader(base: base, offset: offset, end: offset + length)
        offset += length
        return region
    }
}
