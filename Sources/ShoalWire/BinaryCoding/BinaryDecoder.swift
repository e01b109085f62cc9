/// Decodes values written by `BinaryEncoder`. Malformed or truncated input is an error, never a
/// crash or a read past the end.
public struct BinaryDecoder: Sendable {
    /// Values the decoded types can read through `Decoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    public init() {}

    /// Decodes a value of `type` from `bytes`.
    /// - Throws: `BinaryCodingError` when the bytes do not hold a `type`.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a value of `type` from raw bytes; the bytes are not kept after it returns.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        var reader = BinaryReader(bytes)
        if let raw = T.self as? any BinaryRaw.Type {
            let value = try raw.readRaw(from: &reader)
            guard let typed = value as? T else {
                throw BinaryCodingError.invalidValue("decoded \(Swift.type(of: value)), not \(T.self)", path: [])
            }
            return typed
        }
        return try T(from: BinaryDecodingState(reader: reader, codingPath: [], userInfo: userInfo))
    }
}

/// The `Decoder` handed to values: a region of the input and where it sits in the value.
struct BinaryDecodingState: Decoder {
    let reader: BinaryReader
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    init(reader: BinaryReader, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: any Sendable]) {
        self.reader = reader
        self.codingPath = codingPath
        self.userInfo = userInfo
    }

    init(reader: BinaryReader, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]) {
        self.reader = reader
        self.codingPath = codingPath
        self.userInfo = userInfo
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(BinaryKeyedDecoder<Key>(state: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        BinaryUnkeyedDecoder(state: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        BinarySingleValueDecoder(state: self)
    }

    func child(_ reader: BinaryReader, key: any CodingKey) -> BinaryDecodingState {
        BinaryDecodingState(reader: reader, codingPath: codingPath + [key], userInfo: userInfo)
    }

    /// Decodes a value that fills `reader` entirely (a keyed entry or a single value).
    func decodeWhole<T: Decodable>(_ type: T.Type, from reader: BinaryReader, key: (any CodingKey)?) throws -> T {
        let path = key.map { codingPath + [$0] } ?? codingPath
        if let raw = T.self as? any BinaryRaw.Type {
            var cursor = reader
            do {
                let value = try raw.readRaw(from: &cursor)
                if let typed = value as? T { return typed }
            } catch let error as BinaryCodingError {
                throw BinaryCodingError.invalidValue(error.message, path: path)
            }
            throw BinaryCodingError.invalidValue("expected \(T.self)", path: path)
        }
        return try T(from: BinaryDecodingState(reader: reader, codingPath: path, userInfo: userInfo))
    }
}

struct BinaryKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let state: BinaryDecodingState
    /// Where the next entry starts: synthesised `init(from:)` reads keys in the order they were
    /// written, so the usual look-up succeeds without a scan.
    private let cursor: KeyCursor
    var codingPath: [any CodingKey] { state.codingPath }

    init(state: BinaryDecodingState) {
        self.state = state
        cursor = KeyCursor(state.reader.offset)
    }

    private struct Entry {
        var value: BinaryReader
        var next: Int
    }

    /// Reads the entry at `offset`; returns it with its key bytes.
    private func entry(at offset: Int) throws -> (key: UnsafeRawBufferPointer, entry: Entry) {
        var reader = BinaryReader(base: state.reader.base, offset: offset, end: state.reader.end)
        let keyLength = Int(clamping: try reader.readVarint())
        let key = try reader.readBytes(count: keyLength, what: "a key")
        let value = try reader.readRegion(what: "a keyed value")
        return (key, Entry(value: value, next: reader.offset))
    }

    private static func matches(_ bytes: UnsafeRawBufferPointer, _ key: Key) -> Bool {
        var name = key.stringValue
        return name.withUTF8 { utf8 in
            utf8.count == bytes.count && (utf8.isEmpty || memcmpEqual(utf8.baseAddress!, bytes.baseAddress!, utf8.count))
        }
    }

    private func find(_ key: Key) throws -> BinaryReader? {
        if cursor.offset < state.reader.end {
            let (bytes, found) = try entry(at: cursor.offset)
            if Self.matches(bytes, key) {
                cursor.offset = found.next
                return found.value
            }
        }
        var offset = state.reader.offset
        while offset < state.reader.end {
            let (bytes, found) = try entry(at: offset)
            if Self.matches(bytes, key) {
                cursor.offset = found.next
                return found.value
            }
            offset = found.next
        }
        return nil
    }

    private func require(_ key: Key) throws -> BinaryReader {
        guard let value = try find(key) else { throw BinaryCodingError.keyNotFound(key, path: codingPath) }
        return value
    }

    var allKeys: [Key] {
        var keys: [Key] = []
        var offset = state.reader.offset
        while offset < state.reader.end, let (bytes, found) = try? entry(at: offset) {
            if let name = String(validating: bytes, as: UTF8.self), let key = Key(stringValue: name) {
                keys.append(key)
            }
            offset = found.next
        }
        return keys
    }

    func contains(_ key: Key) -> Bool {
        let saved = cursor.offset
        defer { cursor.offset = saved }
        return (try? find(key)) != nil
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try require(key).remaining == 0
    }

    private func scalar<T: BinaryRaw & Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        try state.decodeWhole(T.self, from: try require(key), key: key)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try scalar(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try scalar(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try scalar(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try scalar(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try scalar(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try scalar(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try scalar(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try scalar(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try scalar(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try scalar(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try scalar(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try scalar(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try scalar(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try scalar(type, key) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try state.decodeWhole(T.self, from: try require(key), key: key)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        KeyedDecodingContainer(BinaryKeyedDecoder<NestedKey>(state: state.child(try nestedRegion(key), key: key)))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        BinaryUnkeyedDecoder(state: state.child(try nestedRegion(key), key: key))
    }

    /// A nested container's bytes are the entry's value.
    private func nestedRegion(_ key: Key) throws -> BinaryReader {
        try require(key)
    }

    func superDecoder() throws -> any Decoder {
        guard let key = Key(stringValue: "super") else {
            throw BinaryCodingError.invalidValue("no 'super' key", path: codingPath)
        }
        return try superDecoder(forKey: key)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        state.child(try nestedRegion(key), key: key)
    }
}

/// The keyed decoder's position; the protocol's methods are not `mutating`.
final class KeyCursor {
    var offset: Int
    init(_ offset: Int) { self.offset = offset }
}

@inline(__always)
private func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
    for index in 0..<count where a.load(fromByteOffset: index, as: UInt8.self) != b.load(fromByteOffset: index, as: UInt8.self) {
        return false
    }
    return true
}

struct BinaryUnkeyedDecoder: UnkeyedDecodingContainer {
    let state: BinaryDecodingState
    private var reader: BinaryReader
    private(set) var currentIndex = 0
    var codingPath: [any CodingKey] { state.codingPath }
    var count: Int? { nil }
    var isAtEnd: Bool { reader.isAtEnd }

    init(state: BinaryDecodingState) {
        self.state = state
        reader = state.reader
    }

    private mutating func next<T: BinaryRaw>(_ type: T.Type) throws -> T {
        do {
            let value = try T.readRaw(from: &reader)
            currentIndex += 1
            return value
        } catch let error as BinaryCodingError {
            throw BinaryCodingError.invalidValue(error.message, path: codingPath + [IndexKey(currentIndex)])
        }
    }

    mutating func decodeNil() throws -> Bool {
        guard reader.remaining >= 4 else { return false }
        var peek = reader
        if try peek.readScalar(UInt32.self) == 0 {
            reader = peek
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type) }
    mutating func decode(_ type: String.Type) throws -> String { try next(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try next(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if let raw = T.self as? any BinaryRaw.Type {
            let value = try readRaw(raw)
            guard let typed = value as? T else {
                throw BinaryCodingError.invalidValue("expected \(T.self)", path: codingPath + [IndexKey(currentIndex)])
            }
            return typed
        }
        let key = IndexKey(currentIndex)
        let region: BinaryReader
        do {
            region = try reader.readRegion(what: "an element")
        } catch let error as BinaryCodingError {
            throw BinaryCodingError.invalidValue(error.message, path: codingPath + [key])
        }
        currentIndex += 1
        return try T(from: state.child(region, key: key))
    }

    private mutating func readRaw<R: BinaryRaw>(_ type: R.Type) throws -> R { try next(type) }

    private mutating func region() throws -> BinaryReader {
        let found = try reader.readRegion(what: "a nested container")
        currentIndex += 1
        return found
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey>
    {
        let key = IndexKey(currentIndex)
        return KeyedDecodingContainer(BinaryKeyedDecoder<NestedKey>(state: state.child(try region(), key: key)))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let key = IndexKey(currentIndex)
        return BinaryUnkeyedDecoder(state: state.child(try region(), key: key))
    }

    mutating func superDecoder() throws -> any Decoder {
        let key = IndexKey(currentIndex)
        return state.child(try region(), key: key)
    }
}

struct BinarySingleValueDecoder: SingleValueDecodingContainer {
    let state: BinaryDecodingState
    var codingPath: [any CodingKey] { state.codingPath }

    func decodeNil() -> Bool { state.reader.remaining == 0 }

    private func whole<T: Decodable>(_ type: T.Type) throws -> T {
        try state.decodeWhole(type, from: state.reader, key: nil)
    }

    func decode(_ type: Bool.Type) throws -> Bool { try whole(type) }
    func decode(_ type: String.Type) throws -> String { try whole(type) }
    func decode(_ type: Double.Type) throws -> Double { try whole(type) }
    func decode(_ type: Float.Type) throws -> Float { try whole(type) }
    func decode(_ type: Int.Type) throws -> Int { try whole(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try whole(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try whole(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try whole(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try whole(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try whole(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try whole(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try whole(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try whole(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try whole(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try whole(type) }
}
