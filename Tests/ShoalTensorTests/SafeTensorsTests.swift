import Foundation
import Testing

@testable import ShoalTensor

struct SafeTensorsTests {
    @Test func roundTripAndLayout() throws {
        let tensors = [
            "layer.weight": Tensor.randomNormal(shape: [3, 2], seed: 1), "layer.bias": Tensor(shape: [3], scalars: [1, -2, 3.5]),
            "empty": Tensor(shape: [0, 4], scalars: []),
        ]
        let bytes = try SafeTensors.encode(tensors, metadata: ["format": "pt"])
        let length = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        #expect(length % 8 == 0, "the header is padded to 8 bytes")
        let header = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        #expect(header.contains(#""layer.bias":{"data_offsets":[0,12],"dtype":"F32","shape":[3]}"#), "\(header)")
        let decoded = try SafeTensors.decode(bytes)
        #expect(decoded.tensors == tensors)
        #expect(decoded.metadata == ["format": "pt"])
        // Data in sorted-name order: empty (0 bytes), layer.bias, layer.weight.
        #expect(Array(bytes[(8 + length)..<(8 + length + 4)]) == withUnsafeBytes(of: Float(1)) { Array($0) })
    }

    /// A file as the Python library writes it for `{"x": torch.tensor([[1., 2.]])}`.
    @Test func readsAFileWrittenElsewhere() throws {
        let header = #"{"x":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}"#
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8)
        for value: Float in [1, 2] { withUnsafeBytes(of: value) { bytes += $0 } }
        #expect(try SafeTensors.decode(bytes).tensors["x"] == Tensor(shape: [1, 2], scalars: [1, 2]))
    }

    @Test func damagedFilesAreClearErrors() throws {
        func file(_ header: String, data: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
            return bytes + Array(header.utf8) + [UInt8](repeating: 0, count: data)
        }
        let cases: [([UInt8], String)] = [
            ([1, 2, 3], "under 8 bytes"),
            (file("{", data: 0), "not a JSON object"),
            (file(#"{"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, data: 4), "is F16"),
            (file(#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8), "needs 12 bytes"),
            (file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: 4), "bad shape"),
            (file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: 8), "gap or an overlap"),
            (file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 8), "4 bytes after the last tensor"),
        ]
        for (bytes, expected) in cases {
            #expect {
                try SafeTensors.decode(bytes)
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
        var huge: [UInt8] = []
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { huge += $0 }
        #expect(throws: SafeTensorsError.self) { try SafeTensors.decode(huge + [0]) }
    }
}

struct SafeTensorsInteropTests {
    /// Written by the Python `safetensors` package (numpy), committed as a fixture.
    @Test func readsTheReferenceImplementationsFile() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Fixtures/python.safetensors"
        ).path
        let (tensors, metadata) = try SafeTensors.read(path: path)
        #expect(metadata == ["format": "pt"])
        #expect(tensors["layer.weight"] == Tensor(shape: [2, 3], scalars: [0, 0.25, 0.5, 0.75, 1, 1.25]))
        #expect(tensors["layer.bias"] == Tensor(shape: [2], scalars: [0.5, -1]))
        #expect(tensors["scalar"] == Tensor(3.25))
        // Written again by Shoal, the same tensors come out byte for byte in the same layout.
        let bytes = try SafeTensors.encode(tensors, metadata: metadata)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(try SafeTensors.decode(bytes).tensors == tensors)
        #expect(bytes.count == original.count)
    }
}
