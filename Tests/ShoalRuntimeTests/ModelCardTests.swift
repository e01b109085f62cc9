import Foundation
import Testing

@testable import ShoalRuntime

/// The registry's own JSON writing (model cards, stored parameters) and reading (parameters),
/// checked against Foundation's parser and encoder.
@Suite struct ModelCardTests {
    static let awkward = [
        "", "plain", "quote \" and backslash \\", "slash / tab \t newline \n return \r", "bell \u{07} nul \u{00} unit \u{1F}",
        "é中文", "emoji 🚀 and flags 🇫🇷", "\u{7F} delete",
    ]

    @Test func stringsRoundTripThroughFoundationsParser() throws {
        for value in Self.awkward {
            var text = JSONText(pretty: false)
            text.string(value)
            let parsed = try JSONSerialization.jsonObject(with: Data(text.output.utf8), options: [.fragmentsAllowed])
            #expect(parsed as? String == value, "\(text.output)")
        }
    }

    @Test func flatObjectsRoundTripAndReadWhatJSONEncoderWrites() throws {
        let members = Dictionary(uniqueKeysWithValues: Self.awkward.enumerated().map { ("key\($0.offset)", $0.element) })
        let written = JSONText.flatObject(members)
        #expect(JSONText.parseFlatObject(written) == members)
        #expect(try JSONDecoder().decode([String: String].self, from: Data(written.utf8)) == members)
        // Another encoder's escapes: \/ and \u with a surrogate pair.
        let encoded = String(decoding: try JSONEncoder().encode(members), as: UTF8.self)
        #expect(JSONText.parseFlatObject(encoded) == members)
        #expect(JSONText.parseFlatObject(#"{ "a" : "\ud83d\ude80\u00e9\/" , "b":"" }"#) == ["a": "🚀é/", "b": ""])
        #expect(JSONText.parseFlatObject(" {} ") == [:])
        #expect(JSONText.parseFlatObject(#"{"e":"e\u0301","a":"1","a":"2"}"#) == ["e": "e\u{301}", "a": "2"])
        #expect(JSONText.flatObject([:]) == "{}")
    }

    @Test func anythingButAFlatObjectOfStringsIsNotRead() {
        for text in [
            "", "[]", #"{"a":1}"#, #"{"a":"b""#, #"{"a":"b",}"#, #"{"a" "b"}"#, #"{"a":"b"} x"#, #"{"a":"\q"}"#,
            #"{"a":"\ud83d"}"#, #"{"a":"\u12"}"#, #"{"a":"\ud83d \ude80"}"#, #"{"a":"\ud83d\ ude80"}"#, #"{"a":"\ude80"}"#, "{\"a\":\"line\nbreak\"}", #"{"a":{"b":"c"}}"#,
        ] {
            #expect(JSONText.parseFlatObject(text) == nil, "\(text)")
        }
    }

    @Test func aCardIsJSONWithItsContentAndSortedKeys() throws {
        let card = ModelCard(
            model: "hybrid", version: 3, description: "CNN \"and\" LSTM",
            config: try ModelCard.configuration(#"{"hidden": 64, "rate": 0.5, "layers": [1.5, "lstm", null, true, {"k": -3}], "empty": {}}"#),
            parameters: ["lr": "0.001", "batch": "32"],
            metrics: ["loss": 0.25, "steps": 1000, "tiny": 1e-7, "zero": -0.0, "huge": 1e300, "big": 2.5e15],
            lineage: .init(job_id: "job-1", task_id: "7", data_sha256: "", code_sha256: "", parent_version: 2),
            artifact: .init(sha256: String(repeating: "a", count: 64), size: 2 << 20, format: "safetensors"),
            registered_by: "alice"
        ).json()
        #expect(card.contains("\"hidden\" : 64"), "\(card)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(card.utf8)) as? [String: Any])
        #expect(object["model"] as? String == "hybrid" && object["version"] as? Int == 3)
        #expect(object["description"] as? String == "CNN \"and\" LSTM")
        #expect(
            object["metrics"] as? [String: Double] == ["loss": 0.25, "steps": 1000, "tiny": 1e-7, "zero": 0, "huge": 1e300, "big": 2.5e15])
        #expect(object["parameters"] as? [String: String] == ["lr": "0.001", "batch": "32"])
        let config = try #require(object["config"] as? [String: Any])
        #expect(config["hidden"] as? Int == 64 && config["rate"] as? Double == 0.5)
        #expect((config["layers"] as? [Any])?.count == 5 && (config["empty"] as? [String: Any])?.isEmpty == true)
        #expect((object["artifact"] as? [String: Any])?["size"] as? Int == 2 << 20)
        #expect((object["lineage"] as? [String: Any])?["parent_version"] as? Int == 2)
        // Keys in order at the top level.
        let keys = card.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.dropFirst(3).prefix { $0 != "\"" } }
        #expect(keys == keys.sorted() && keys.count == 9, "\(keys)")
    }
}
