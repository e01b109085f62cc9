import Foundation
import ShoalWire

extension DriverCore {
    /// Stores `value` under `key` in the head's key-value store, replacing what was there.
    /// - Throws: `ClusterError` for an empty or over-long namespace or key, a value over 16 MiB,
    ///   or a head that does not answer.
    public func keyValuePut(namespace: String, key: String, value: [UInt8]) async throws {
        var put = Shoal_V1_KvPut()
        put.namespace = namespace
        put.key = key
        put.value = Data(value)
        _ = try await keyValueRequest(.kvPut(put), what: "storing '\(key)' in the head's key-value store")
    }

    /// The value under `key`, or nil.
    public func keyValueGet(namespace: String, key: String) async throws -> [UInt8]? {
        var get = Shoal_V1_KvGet()
        get.namespace = namespace
        get.key = key
        let reply = try await keyValueRequest(.kvGet(get), what: "reading '\(key)' from the head's key-value store")
        return reply.found ? Array(reply.value) : nil
    }

    /// The namespace's keys that start with `prefix`, in order.
    public func keyValueKeys(namespace: String, prefix: String = "") async throws -> [String] {
        var list = Shoal_V1_KvList()
        list.namespace = namespace
        list.prefix = prefix
        return try await keyValueRequest(.kvList(list), what: "listing the head's key-value store").keys
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    public func keyValueDelete(namespace: String, key: String) async throws -> Bool {
        var delete = Shoal_V1_KvDelete()
        delete.namespace = namespace
        delete.key = key
        return try await keyValueRequest(.kvDelete(delete), what: "removing '\(key)' from the head's key-value store").found
    }

    private func keyValueRequest(_ body: Envelope.OneOf_Body, what: String) async throws -> Shoal_V1_KvReply {
        let reply = try await request(body, timeout: .seconds(30), what: what)
        guard case .kvReply(let answer) = reply.body else { throw ClusterError.peerError("\(what): an unexpected reply") }
        return answer
    }
}
