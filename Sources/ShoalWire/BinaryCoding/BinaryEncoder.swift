/// Encodes `Encodable` values into Shoal's compact binary format.
///
/// The format, for a reader of the bytes:
/// - scalars are fixed-width little-endian; `Bool` is one byte; strings are a varint byte count
///   and UTF-8;
/// - arrays of scalars (`[Float]`, `[Int]` …) and `Data` are an 8-byte element count followed by
///   the elements' raw memory: no per-element coding;
/// - a keyed container is a sequence of entries `varint key length, key UTF-8, 4-byte value length,
///   value`; an absent value (`nil`) has length 0;
/// - an unkeyed container is its elements in order; elements that are not scalars, strings or raw
///   arrays carry a 4-byte length.
///
/// It is not self-describing: the decoder must be given the same type.
public struct BinaryEncoder: Sendable {
    /// Values the encoded types can read through `Encoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    public init() {}

    /// Encodes a value to bytes.
    /// - Throws: `BinaryCodingError` or any error the value's `encode(to:)` throws.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let sink = BinarySink()
        try encode(value, into: sink)
        sink.spliceTail(from: 0)
        return sink.bytes
    }

    func encode<T: Encodable>(_ value: T, into sink: BinarySink) throws {
        if T.self is any BinaryRaw.Type, let raw = value as? any BinaryRaw {
            raw.writeRaw(to: sink)
            return
        }
        try value.encode(to: BinaryEncodingState(sink: sink, codingPath: [], userInfo: userInfo))
    }
}

/// The `Encoder` handed to values; every container writes straight into the shared sink.
struct BinaryEncodingState: Encoder {
    let sink: BinarySink
    var codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    init(sink: BinarySink, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: any Sendable]) {
        self.sink = sink
        self.codingPath = codingPath
        self.userInfo = userInfo
    }

    init(sink: BinarySink, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]) {
        self.sink = sink
        self.codingPath = codingPath
        self.userInfo = userInfo
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(BinaryKeyedEncoder<Key>(state: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        BinaryUnkeyedEncoder(state: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        BinarySingleValueEncoder(state: self)
    }

    /// Writes a value that is not a scalar: raw arrays as themselves, anything else inside a
    /// length-framed region.
    func encodeNested<T: Encodable>(_ value: T, key: (any CodingKey)?, framed: Bool) throws {
        if T.self is any BinaryRaw.Type, let raw = value as? any BinaryRaw {
            raw.writeRaw(to: sink)
            return
        }
        var path = codingPath
        if let key { path.append(key) }
        let nested = BinaryEncodingState(sink: sink, codingPath: path, userInfo: userInfo)
        if framed {
            let slot = sink.openLength()
            try value.encode(to: nested)
            try sink.closeLength(at: slot, path: path)
        } else {
            try value.encode(to: nested)
        }
    }
}

struct BinaryKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: BinaryEncodingState
    var codingPath: [any CodingKey] { state.codingPath }

    @inline(__always)
    private func writeKey(_ key: Key) {
        key.stringValue.writeRaw(to: state.sink)
    }

    private func writeEntry(_ key: Key, _ body: () throws -> Void) throws {
        writeKey(key)
        let slot = state.sink.openLength()
        try body()
        try state.sink.closeLength(at: slot, path: codingPath + [key])
    }

    mutating func encodeNil(forKey key: Key) throws {
        writeKey(key)
        state.sink.appendScalar(UInt32(0))
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: String, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: Double, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: Float, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: Int, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try writeEntry(key) { value.writeRaw(to: state.sink) } }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try writeEntry(key) { try state.encodeNested(value, key: key, framed: false) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        writeKey(key)
        return KeyedEncodingContainer(BinaryKeyedEncoder<NestedKey>(state: state.spliced(key: key)))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        writeKey(key)
        return BinaryUnkeyedEncoder(state: state.spliced(key: key))
    }

    mutating func superEncoder() -> any Encoder {
        superEncoder(forKey: Key(stringValue: "super") ?? Key(intValue: 0)!)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        writeKey(key)
        return state.spliced(key: key)
    }
}

extension BinaryEncodingState {
    /// An encoder for a nested container whose end the Encoder API never announces: it writes
    /// into a child sink that is framed and spliced in when its enclosing value is finished.
    func spliced(key: any CodingKey) -> BinaryEncodingState {
        let child = BinarySink()
        sink.splices.append((sink.bytes.count, child))
        return BinaryEncodingState(sink: child, codingPath: codingPath + [key], userInfo: userInfo)
    }
}

struct BinaryUnkeyedEncoder: UnkeyedEncodingContainer {
    let state: BinaryEncodingState
    private(set) var count = 0
    var codingPath: [any CodingKey] { state.codingPath }

    init(state: BinaryEncodingState) {
        self.state = state
    }

    mutating func encodeNil() throws { state.sink.appendScalar(UInt32(0)); count += 1 }
    mutating func encode(_ value: Bool) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: String) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: Double) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: Float) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: Int) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: Int8) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: Int16) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: Int32) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: Int64) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: UInt) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: UInt8) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: UInt16) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: UInt32) throws { value.writeRaw(to: state.sink); count += 1 }
    mutating func encode(_ value: UInt64) throws { value.writeRaw(to: state.sink); count += 1 }

    mutating func encode<T: Encodable>(_ value: T) throws {
        if T.self is any BinaryRaw.Type, let raw = value as? any BinaryRaw {
            raw.writeRaw(to: state.sink)
        } else {
            try state.encodeNested(value, key: IndexKey(count), framed: true)
        }
        count += 1
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        count += 1
        return KeyedEncodingContainer(BinaryKeyedEncoder<NestedKey>(state: state.spliced(key: IndexKey(count - 1))))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        count += 1
        return BinaryUnkeyedEncoder(state: state.spliced(key: IndexKey(count - 1)))
    }

    mutating func superEncoder() -> any Encoder {
        count += 1
        return state.spliced(key: IndexKey(count - 1))
    }
}

struct BinarySingleValueEncoder: SingleValueEncodingContainer {
    let state: BinaryEncodingState
    var codingPath: [any CodingKey] { state.codingPath }

    mutating func encodeNil() throws {}
    mutating func encode(_ value: Bool) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: String) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: Double) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: Float) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: Int) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: Int8) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: Int16) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: Int32) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: Int64) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: UInt) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: UInt8) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: UInt16) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: UInt32) throws { value.writeRaw(to: state.sink) }
    mutating func encode(_ value: UInt64) throws { value.writeRaw(to: state.sink) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try state.encodeNested(value, key: nil, framed: false)
    }
}

/// An integer coding key for positions in unkeyed containers.
struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { String(intValue ?? 0) }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { intValue = Int(stringValue) }
    init?(intValue: Int) { self.intValue = intValue }
}
