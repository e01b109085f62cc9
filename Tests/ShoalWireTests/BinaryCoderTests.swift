import Foundation
import Testing

@testable import ShoalWire

struct Trade: Codable, Equatable {
    enum Side: String, Codable { case buy, sell }
    var symbol: String
    var price: Double
    var quantity: Int32
    var side: Side
    var note: String?
    var fills: [Double]
    var tags: [String]
    var legs: [Leg]
    var flags: [Int: Bool]
}

struct Leg: Codable, Equatable {
    var venue: String
    var weight: Float?
}

/// Encodes fields in the order opposite to the one it decodes them in.
struct Reordered: Codable, Equatable {
    var a: Int
    var b: String
    enum CodingKeys: String, CodingKey { case a, b }
    init(a: Int, b: String) { self.a = a; self.b = b }
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        b = try container.decode(String.self, forKey: .b)
        a = try container.decode(Int.self, forKey: .a)
    }
}

/// Uses nested containers, whose end the Encoder API never announces.
struct Nested: Codable, Equatable {
    var x: Int
    var ys: [Int]
    enum Outer: String, CodingKey { case inner, after }
    enum Inner: String, CodingKey { case x }
    init(x: Int, ys: [Int]) { self.x = x; self.ys = ys }
    func encode(to encoder: any Encoder) throws {
        var outer = encoder.container(keyedBy: Outer.self)
        var inner = outer.nestedContainer(keyedBy: Inner.self, forKey: .inner)
        var list = outer.nestedUnkeyedContainer(forKey: .after)
        for y in ys { try list.encode(y) }
        try inner.encode(x, forKey: .x)
    }
    init(from decoder: any Decoder) throws {
        let outer = try decoder.container(keyedBy: Outer.self)
        x = try outer.nestedContainer(keyedBy: Inner.self, forKey: .inner).decode(Int.self, forKey: .x)
        var list = try outer.nestedUnkeyedContainer(forKey: .after)
        var ys: [Int] = []
        while !list.isAtEnd { ys.append(try list.decode(Int.self)) }
        self.ys = ys
    }
}

@Suite struct BinaryCoderTests {
    let sample = Trade(
        symbol: "BTC-USD", price: 43_250.5, quantity: 7, side: .sell, note: nil,
        fills: [1.5, 2.25, -3], tags: ["a", "", "ünïcode"],
        legs: [Leg(venue: "X", weight: 0.5), Leg(venue: "Y", weight: nil)], flags: [1: true, 2: false])

    @Test func roundTripsNestedStructsOptionalsAndCollections() throws {
        let bytes = try BinaryEncoder().encode(sample)
        #expect(try BinaryDecoder().decode(Trade.self, from: bytes) == sample)
    }

    @Test func roundTripsTopLevelScalarsStringsAndOptionals() throws {
        #expect(try BinaryDecoder().decode(Int.self, from: BinaryEncoder().encode(-42)) == -42)
        #expect(try BinaryDecoder().decode(String.self, from: BinaryEncoder().encode("héllo")) == "héllo")
        let some: Int? = 5
        let none: Int? = nil
        #expect(try BinaryDecoder().decode(Int?.self, from: BinaryEncoder().encode(some)) == 5)
        #expect(try BinaryDecoder().decode(Int?.self, from: BinaryEncoder().encode(none)) == nil)
        let optionals: [Int?] = [1, nil, 3]
        #expect(try BinaryDecoder().decode([Int?].self, from: BinaryEncoder().encode(optionals)) == optionals)
    }

    @Test func writesNumericArraysAsRawBytes() throws {
        let values = (0..<1000).map { Float($0) * 0.5 }
        let bytes = try BinaryEncoder().encode(values)
        #expect(bytes.count == 8 + 4 * values.count)
        #expect(try BinaryDecoder().decode([Float].self, from: bytes) == values)
        let doubles: [Double] = [.pi, -0.0, .infinity]
        #expect(try BinaryDecoder().decode([Double].self, from: BinaryEncoder().encode(doubles)) == doubles)
    }

    @Test func decodesKeysInAnyOrder() throws {
        let value = Reordered(a: 9, b: "nine")
        #expect(try BinaryDecoder().decode(Reordered.self, from: BinaryEncoder().encode(value)) == value)
    }

    @Test func splicesNestedContainersInPlace() throws {
        let value = [Nested(x: 3, ys: [1, 2]), Nested(x: -1, ys: [])]
        #expect(try BinaryDecoder().decode([Nested].self, from: BinaryEncoder().encode(value)) == value)
    }

    @Test func truncatedInputIsAnErrorNotACrash() throws {
        let bytes = try BinaryEncoder().encode(sample)
        for length in stride(from: 0, to: bytes.count, by: 3) {
            #expect(throws: BinaryCodingError.self) {
                try BinaryDecoder().decode(Trade.self, from: Array(bytes.prefix(length)))
            }
        }
    }

    @Test func garbageInputIsAnErrorNotACrash() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let garbage = (0..<Int.random(in: 0..<64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator)
            }
            _ = try? BinaryDecoder().decode(Trade.self, from: garbage)
            _ = try? BinaryDecoder().decode([String].self, from: garbage)
        }
    }

    @Test func missingKeyNamesTheKey() throws {
        struct Small: Codable { var a: Int }
        struct Large: Codable { var a: Int; var b: Int }
        let bytes = try BinaryEncoder().encode(Small(a: 1))
        do {
            _ = try BinaryDecoder().decode(Large.self, from: bytes)
            Issue.record("decoding should fail")
        } catch let error as BinaryCodingError {
            #expect(error.isKeyNotFound)
            #expect(error.description.contains("'b'"))
        }
    }
}
