import Foundation

/// A type the binary coder writes as its raw bytes: fixed-width scalars, and arrays of them as
/// an 8-byte element count followed by the elements' memory, copied in one go.
///
/// Both sides pick this path from the static type alone, so encoder and decoder agree.
protocol BinaryRaw {
    func writeRaw(to sink: BinarySink)
    static func readRaw(from reader: inout BinaryReader) throws -> Self
}

/// Fixed-width little-endian scalars.
protocol BinaryScalar: BinaryRaw, BitwiseCopyable {}

extension BinaryScalar {
    @inline(__always)
    func writeRaw(to sink: BinarySink) { sink.appendScalar(self) }

    @inline(__always)
    static func readRaw(from reader: inout BinaryReader) throws -> Self { try reader.readScalar(Self.self) }
}

extension Int: BinaryScalar {}
extension Int8: BinaryScalar {}
extension Int16: BinaryScalar {}
extension Int32: BinaryScalar {}
extension Int64: BinaryScalar {}
extension UInt: BinaryScalar {}
extension UInt8: BinaryScalar {}
extension UInt16: BinaryScalar {}
extension UInt32: BinaryScalar {}
extension UInt64: BinaryScalar {}
extension Float: BinaryScalar {}
extension Double: BinaryScalar {}

extension Bool: BinaryRaw {
    func writeRaw(to sink: BinarySink) { sink.appendScalar(self ? UInt8(1) : UInt8(0)) }

    static func readRaw(from reader: inout BinaryReader) throws -> Bool {
        switch try reader.readScalar(UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw BinaryCodingError.invalidValue("byte \(other) is not a Bool", path: [])
        }
    }
}

extension String: BinaryRaw {
    func writeRaw(to sink: BinarySink) {
        var copy = self
        copy.withUTF8 { utf8 in
            sink.appendVarint(UInt64(utf8.count))
            sink.append(UnsafeRawBufferPointer(utf8))
        }
    }

    static func readRaw(from reader: inout BinaryReader) throws -> String {
        let count = try reader.readVarint()
        let bytes = try reader.readBytes(count: Int(clamping: count), what: "a string")
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw BinaryCodingError.invalidValue("string is not valid UTF-8", path: [])
        }
        return string
    }
}

extension Array: BinaryRaw where Element: BinaryScalar {
    func writeRaw(to sink: BinarySink) {
        sink.appendScalar(UInt64(count))
        withUnsafeBytes { sink.append($0) }
    }

    static func readRaw(from reader: inout BinaryReader) throws -> [Element] {
        let count = Int(clamping: try reader.readScalar(UInt64.self))
        let byteCount = count.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard !byteCount.overflow else {
            throw BinaryCodingError.invalidValue("array count \(count) is too large", path: [])
        }
        let bytes = try reader.readBytes(count: byteCount.partialValue, what: "an array of \(Element.self)")
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
            initialized = count
        }
    }
}

extension Data: BinaryRaw {
    func writeRaw(to sink: BinarySink) {
        sink.appendScalar(UInt64(count))
        withUnsafeBytes { sink.append($0) }
    }

    static func readRaw(from reader: inout BinaryReader) throws -> Data {
        let count = Int(clamping: try reader.readScalar(UInt64.self))
        return Data(try reader.readBytes(count: count, what: "data"))
    }
}
