import Foundation
import ShoalWire

extension Head {
    /// Answers the key-value store's requests; false for any other message.
    func handleKeyValueMessage(_ incoming: Incoming) throws -> Bool {
        let requestID = incoming.envelope.requestID
        var reply = Shoal_V1_KvReply()
        do {
            switch incoming.envelope.body {
            case .kvPut(let put):
                try check(put.namespace, put.key, size: put.value.count)
                try keyValues.put(namespace: put.namespace, key: put.key, value: Array(put.value))
                reply.found = true
            case .kvGet(let get):
                try check(get.namespace, get.key)
                if let value = try keyValues.get(namespace: get.namespace, key: get.key) {
                    reply.found = true
                    reply.value = Data(value)
                }
            case .kvList(let list):
                try check(list.namespace, "-")
                reply.keys = try keyValues.keys(namespace: list.namespace, prefix: list.prefix)
                reply.found = true
            case .kvDelete(let delete):
                try check(delete.namespace, delete.key)
                reply.found = try keyValues.delete(namespace: delete.namespace, key: delete.key)
            default:
                return false
            }
        } catch let refused as JobRequestError {
            throw refused
        } catch {
            throw JobRequestError(code: .unavailable, message: "the head's key-value store: \(error)")
        }
        try send(Envelope(requestID, .kvReply(reply)), to: incoming.sender)
        return true
    }

    private func check(_ namespace: String, _ key: String, size: Int = 0) throws {
        if let problem = KeyValueStore.problem(namespace: namespace, key: key, value: size) {
            throw JobRequestError(code: .invalidArgument, message: problem)
        }
    }
}
