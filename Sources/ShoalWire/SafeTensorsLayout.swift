import Foundation

/// The layout of a safetensors file (the format PyTorch, JAX and Hugging Face share): an 8-byte
/// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
/// then the tensors' bytes, back to back. Parsing checks the layout and reads no tensor data.
public struct SafeTensorsLayout: Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        /// Byte range within the data (after the header).
        public var range: Range<Int>
    }

    /// In file order.
    public var entries: [Entry]
    public var metadata: [String: String]
    /// Where the data starts in the file.
    public var dataStart: Int

    /// Bytes per element of the dtypes whose sizes are checked.
    static let elementSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    ]

    /// - Throws: `SafeTensorsLayoutError` naming what is wrong: a header that overruns the file
    ///   or is not JSON, an entry without dtype, shape or range, a shape that does not match its
    ///   range, ranges that overlap or leave gaps, bytes after the last tensor.
    public static func parse(_ bytes: [UInt8]) throws -> SafeTensorsLayout {
        try parse(head: bytes[...], fileSize: bytes.count)
    }

    /// The header length a file's first 8 bytes give.
    public static func headerLength(_ first8: ArraySlice<UInt8>) -> UInt64 {
        first8.prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// The largest header accepted.
    public static let maximumHeader: UInt64 = 100 << 20

    /// Parses from the file's first bytes alone: `head` must hold at least the length and the
    /// header (8 + `headerLength` bytes), `fileSize` is the whole file's size.
    public static func parse(head: ArraySlice<UInt8>, fileSize: Int) throws -> SafeTensorsLayout {
        guard fileSize >= 8, head.count >= 8 else { throw SafeTensorsLayoutError("under 8 bytes") }
        let length = headerLength(head)
        guard length <= UInt64(fileSize - 8), length <= maximumHeader else {
            throw SafeTensorsLayoutError("the header length \(length) overruns the file (\(fileSize) bytes)")
        }
        let dataStart = 8 + Int(length)
        guard head.count >= dataStart else { throw SafeTensorsLayoutError("the header was cut short") }
        let start = head.startIndex
        guard let header = try? JSONSerialization.jsonObject(with: Data(head[(start + 8)..<(start + dataStart)])) as? [String: Any]
        else {
            throw SafeTensorsLayoutError("the header is not a JSON object")
        }
        let dataSize = fileSize - dataStart
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let values = value as? [String: String] else {
                    throw SafeTensorsLayoutError("__metadata__ must map strings to strings")
                }
                metadata = values
                continue
            }
            guard let fields = value as? [String: Any], let dtype = fields["dtype"] as? String,
                let shape = fields["shape"] as? [Int],
                let offsets = fields["data_offsets"] as? [Int], offsets.count == 2
            else { throw SafeTensorsLayoutError("tensor '\(name)' lacks dtype, shape or data_offsets") }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataSize else {
                throw SafeTensorsLayoutError("tensor '\(name)' has a bad shape \(shape) or byte range \(offsets)")
            }
            if let size = elementSizes[dtype] {
                let needed = shape.reduce(1, *) * size
                guard offsets[1] - offsets[0] == needed else {
                    throw SafeTensorsLayoutError(
                        "tensor '\(name)' of shape \(shape) needs \(needed) bytes, its range holds \(offsets[1] - offsets[0])")
                }
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, range: offsets[0]..<offsets[1]))
        }
        entries.sort { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
        var position = 0
        for entry in entries {
            guard entry.range.lowerBound == position else {
                throw SafeTensorsLayoutError(
                    "tensor '\(entry.name)' starts at byte \(entry.range.lowerBound); the data has a gap or an overlap at \(position)"
                )
            }
            position = entry.range.upperBound
        }
        guard position == dataSize else { throw SafeTensorsLayoutError("\(dataSize - position) bytes after the last tensor") }
        return SafeTensorsLayout(entries: entries, metadata: metadata, dataStart: dataStart)
    }
}

public struct SafeTensorsLayoutError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
