import Foundation

/// The safetensors file format (shared by PyTorch, JAX and Hugging Face): an 8-byte
/// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
/// padded with spaces to a multiple of 8, then the tensors' bytes. Shoal writes and reads F32.
public enum SafeTensors {
    /// The bytes of a file holding `tensors` (names sorted, as the Python library writes them)
    /// and string `metadata`.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            guard let tensor = tensors[name] else { continue }
            guard name != "__metadata__", !name.isEmpty else { throw SafeTensorsError("'\(name)' cannot name a tensor") }
            let size = tensor.count * 4
            header[name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + size]]
            offset += size
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes += $0 }
        bytes += json
        for name in names {
            guard let tensor = tensors[name] else { continue }
            tensor.scalars.withUnsafeBytes { raw in
                // Float32 little-endian, as on every machine Shoal runs on.
                bytes += raw
            }
        }
        return bytes
    }

    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        do {
            try Data(try encode(tensors, metadata: metadata)).write(to: URL(fileURLWithPath: path))
        } catch let error as SafeTensorsError {
            throw error
        } catch {
            throw SafeTensorsError("cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// The tensors and metadata in safetensors bytes.
    /// - Throws: `SafeTensorsError` naming what is wrong: a header that overruns the file or is
    ///   not JSON, an unsupported dtype, a shape that does not match its byte range, ranges that
    ///   overlap or leave gaps.
    public static func decode(
        _ bytes: [UInt8], source: String = "the file"
    ) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw SafeTensorsError("\(source) is not safetensors: under 8 bytes") }
        let length = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(bytes.count - 8), length <= 100 << 20 else {
            throw SafeTensorsError("\(source): the header length \(length) overruns the file (\(bytes.count) bytes)")
        }
        let headerEnd = 8 + Int(length)
        guard let header = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])) as? [String: Any] else {
            throw SafeTensorsError("\(source): the header is not a JSON object")
        }
        let dataSize = bytes.count - headerEnd
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        var ranges: [(Int, Int, String)] = []
        for (name, entry) in header {
            if name == "__metadata__" {
                guard let values = entry as? [String: String] else {
                    throw SafeTensorsError("\(source): __metadata__ must map strings to strings")
                }
                metadata = values
                continue
            }
            guard let fields = entry as? [String: Any], let dtype = fields["dtype"] as? String,
                let shape = fields["shape"] as? [Int],
                let offsets = fields["data_offsets"] as? [Int], offsets.count == 2
            else { throw SafeTensorsError("\(source): tensor '\(name)' lacks dtype, shape or data_offsets") }
            guard dtype == "F32" else {
                throw SafeTensorsError("\(source): tensor '\(name)' is \(dtype); Shoal reads F32 (save with .float() first)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataSize else {
                throw SafeTensorsError("\(source): tensor '\(name)' has a bad shape \(shape) or byte range \(offsets)")
            }
            let count = shape.reduce(1, *)
            guard offsets[1] - offsets[0] == count * 4 else {
                throw SafeTensorsError(
                    "\(source): tensor '\(name)' of shape \(shape) needs \(count * 4) bytes, its range holds \(offsets[1] - offsets[0])"
                )
            }
            var scalars = [Float](repeating: 0, count: count)
            scalars.withUnsafeMutableBytes { out in
                bytes.withUnsafeBytes { raw in
                    if count > 0 {
                        out.copyMemory(
                            from: UnsafeRawBufferPointer(rebasing: raw[(headerEnd + offsets[0])..<(headerEnd + offsets[1])]))
                    }
                }
            }
            tensors[name] = Tensor(shape: shape, scalars: scalars)
            ranges.append((offsets[0], offsets[1], name))
        }
        ranges.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var position = 0
        for (start, end, name) in ranges {
            guard start == position else {
                throw SafeTensorsError(
                    "\(source): tensor '\(name)' starts at byte \(start); the data has a gap or an overlap at \(position)")
            }
            position = end
        }
        guard position == dataSize else {
            throw SafeTensorsError("\(source): \(dataSize - position) bytes after the last tensor")
        }
        return (tensors, metadata)
    }

    public static func read(path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw SafeTensorsError("cannot read \(path)") }
        return try decode([UInt8](data), source: path)
    }
}

public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
