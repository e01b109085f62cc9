import Foundation
import Shoal
import Testing

/// The head's key-value store through a driver.
@Suite(.serialized) struct KeyValueTests {
    /// Values are stored, replaced, listed by prefix in order, and removed; namespaces keep
    /// keys apart; bad keys and oversized values are refused with the reason.
    @Test func valuesAreStoredListedAndRemoved() async throws {
        let cluster = try await Cluster.connect(localCPUs: 1)
        let store = cluster.keyValues
        try await store.put([1, 2, 3], forKey: "exp/events/00000001", in: "test")
        try await store.put([4], forKey: "exp/events/00000000", in: "test")
        try await store.put([9], forKey: "exp/spec", in: "test")
        try await store.put([7], forKey: "exp/spec", in: "other")
        #expect(try await store.get("exp/events/00000001", in: "test") == [1, 2, 3])
        try await store.put([5, 5], forKey: "exp/events/00000001", in: "test")
        #expect(try await store.get("exp/events/00000001", in: "test") == [5, 5], "a put replaces")
        #expect(try await store.keys(in: "test", prefix: "exp/events/") == ["exp/events/00000000", "exp/events/00000001"])
        #expect(try await store.get("exp/spec", in: "other") == [7])
        #expect(try await store.delete("exp/spec", in: "test"))
        #expect(try await !store.delete("exp/spec", in: "test"))
        #expect(try await store.get("exp/spec", in: "test") == nil)
        await #expect {
            try await store.put([1], forKey: "", in: "test")
        } throws: { "\($0)".contains("must not be empty") }
        await #expect {
            try await store.put([UInt8](repeating: 0, count: (16 << 20) + 1), forKey: "big", in: "test")
        } throws: { "\($0)".contains("at most 16 MiB") }
        await cluster.shutdown()
    }
}
