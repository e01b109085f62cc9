import Foundation
import ShoalWire

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
        let layout: SafeTensorsLayout
        do {
            layout = try SafeTensorsLayout.parse(bytes)
        } catch let error as SafeTensorsLayoutError {
            throw SafeTensorsError("\(source): \(error.message)")
        }
        var tensors: [String: Tensor] = [:]
        for entry in layout.entries {
            guard entry.dtype == "F32" else {
                throw SafeTensorsError(
                    "\(source): tensor '\(entry.name)' is \(entry.dtype); Shoal reads F32 (save with .float() first)")
            }
            let count = entry.shape.reduce(1, *)
            var scalars = [Float](repeating: 0, count: count)
            scalars.withUnsafeMutableBytes { out in
                bytes.withUnsafeBytes { raw in
                    if count > 0 {
                        out.copyMemory(
                            from: UnsafeRawBufferPointer(
                                rebasing: raw[
                                    (layout.dataStart + entry.range.lowerBound)..<(layout.dataStart + entry.range.upperBound)]))
                    }
                }
            }
            tensors[entry.name] = Tensor(shape: entry.shape, scalars: scalars)
        }
        let metadata = layout.metadata
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
