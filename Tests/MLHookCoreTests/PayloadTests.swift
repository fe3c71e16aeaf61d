import Foundation
import MLHookCore
import TestSupport
import Testing

@Suite struct PayloadTests {
    func check(_ text: String, depth: Int = 128) -> JSONValidator.Failure? {
        Array(text.utf8).withUnsafeBytes { raw in
            do throws(JSONValidator.Failure) { try JSONValidator.validateObject(raw, maxDepth: depth); return nil } catch { return error }
        }
    }

    @Test(arguments: ["github", "gitlab", "gitea", "bitbucket", "bitbucket-server"])
    func everyRealJSONFixtureValidates(provider: String) throws {
        let names = try Fixtures.names(provider).filter { $0.hasSuffix(".json") }
        #expect(!names.isEmpty)
        for name in names {
            let bytes = try Fixtures.webhook(provider, name)
            let failure = check(String(decoding: bytes, as: UTF8.self))
            #expect(failure == nil, "\(provider)/\(name): \(String(describing: failure))")
            // And Foundation agrees that it is JSON.
            #expect((try? JSONSerialization.jsonObject(with: Data(bytes))) != nil)
        }
    }

    @Test func acceptsTheGrammar() {
        for ok in [#"{}"#, #" {"a":[1,-2.5e+3,0,true,false,null,"x\u00e9\n"],"b":{}} "#, #"{"a":[[],[{}]]}"#, #"{"":-0.0E-1}"#] {
            #expect(check(ok) == nil, "\(ok)")
        }
    }

    @Test func rejectsWhatIsNotJSON() {
        for bad in [#"{"a":1,}"#, #"{"a" 1}"#, #"{"a":01}"#, #"{"a":1.}"#, #"{"a":tru}"#, #"{"a":"x"#, #"{"a":"\q"}"#,
                    "{\"a\":\"tab\there\"}", #"{"a":1}x"#, #"{"a":[1,2}"#, #"{'a':1}"#, #"{"a":1"#, #"{"a":"\u12"}"#] {
            #expect(check(bad) != nil, "\(bad)")
        }
        #expect(check("[1,2]") == .notAnObject)
        #expect(check("") == .notAnObject)
    }

    @Test func deepNestingFailsFastWithoutRecursion() {
        let deep = "{\"a\":" + String(repeating: "[", count: 1_000_000) + String(repeating: "]", count: 1_000_000) + "}"
        #expect(check(deep) == .tooDeep(limit: 128))
        let ok = "{\"a\":" + String(repeating: "[", count: 127) + String(repeating: "]", count: 127) + "}"
        #expect(check(ok) == nil)
    }

    @Test func utf8IsValidatedInsideStrings() {
        func bytes(_ b: [UInt8]) -> JSONValidator.Failure? {
            (Array(#"{"a":""#.utf8) + b + Array(#""}"#.utf8)).withUnsafeBytes { raw in
                do throws(JSONValidator.Failure) { try JSONValidator.validateObject(raw); return nil } catch { return error }
            }
        }
        #expect(bytes(Array("é€𝄞".utf8)) == nil)
        for bad: [UInt8] in [[0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3], [0xFF], [0x80]] {
            guard case .invalidUTF8 = bytes(bad) else {
                Issue.record("accepted invalid UTF-8 \(bad)")
                continue
            }
        }
        // Outside strings, a high byte is a syntax error.
        #expect(check("{\"a\":1 \u{e9}}") != nil)
    }

    @Test func jsonTextEscapesAndRoundTrips() throws {
        let tricky = "quote\" back\\ nl\n tab\t bell\u{07} é 𝄞"
        var j = JSONText()
        j.add("s", tricky)
        j.add("n", 42)
        j.add("b", false)
        let decoded = try JSONSerialization.jsonObject(with: Data(j.text.utf8)) as? [String: Any]
        #expect(decoded?["s"] as? String == tricky && decoded?["n"] as? Int == 42 && decoded?["b"] as? Bool == false)
        #expect(JSONText.object(["b": "2", "a": "1"]) == #"{"a":"1","b":"2"}"#)
    }

    @Test func formDecoding() throws {
        let fields = try FormURLEncoded.dictionary("command=%2Faml&text=scale+gpu+4&user_id=U1&empty=&flag")
        #expect(fields["command"] == "/aml" && fields["text"] == "scale gpu 4" && fields["empty"] == "" && fields["flag"] == "")
        #expect(throws: FormURLEncoded.Failure.self) { try FormURLEncoded.decode("a=%zz") }
        #expect(throws: FormURLEncoded.Failure.self) { try FormURLEncoded.decode("a=%ff%fe") }
        let escaped = FormURLEncoded.escape("/aml run é&=")
        #expect(try FormURLEncoded.dictionary("t=" + escaped)["t"] == "/aml run é&=")
    }

    @Test func eventIDsAreUniqueAndSortByTime() {
        let a = EventID.make(at: Date(timeIntervalSince1970: 1_700_000_000))
        let b = EventID.make(at: Date(timeIntervalSince1970: 1_700_000_001))
        #expect(a.count == 30 && a.hasPrefix("evt_") && a < b)
        let many = Set((0..<10_000).map { _ in EventID.make() })
        #expect(many.count == 10_000)
    }
}

/// The direct parser agrees with Foundation on every real payload, and handles escapes and surrogates.
@Suite struct JSONValueParsingTests {
    @Test(arguments: ["github", "gitlab", "gitea", "bitbucket", "bitbucket-server"])
    func agreesWithJSONDecoderOnEveryFixture(provider: String) throws {
        for name in try Fixtures.names(provider) where name.hasSuffix(".json") {
            let bytes = try Fixtures.webhook(provider, name)
            let fast = JSONValue.parse(bytes)
            let reference = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
            #expect(fast == reference, "\(provider)/\(name)")
        }
    }

    @Test func escapesNumbersAndErrors() {
        #expect(JSONValue.parse(Array(#"{"a":"x\"y\\z\n\u00e9\ud83d\ude00","n":-1.5e2,"t":true,"z":null,"l":[1,{}]}"#.utf8))
                == ["a": "x\"y\\z\né😀", "n": -150.0, "t": true, "z": nil, "l": [1, [:]]])
        // Nested objects keep their own members; a repeated key keeps its last value.
        #expect(JSONValue.parse(Array(#"{"a":{"b":1,"b":2,"c":{"d":[{"e":1},{"f":{"g":3}}]}},"h":{}}"#.utf8))
                == ["a": ["b": 2, "c": ["d": [["e": 1], ["f": ["g": 3]]]]], "h": [:]])
        for bad in [#"{"a":}"#, #"{"a":1"#, #"[1,]"#, #""\x""#, #"{"a":1} x"#, "nul", "-"] {
            #expect(JSONValue.parse(Array(bad.utf8)).map { "\($0)" } == Optional<String>.none, "\(bad)")
        }
        let doc: JSONValue = ["list": [1, 2]]
        #expect(doc.value(at: "list.1") == 2 && doc.value(at: "list.5").map { "\($0)" } == Optional<String>.none, "out of range is missing, not null")
        let deep = Array((String(repeating: "[", count: 200) + String(repeating: "]", count: 200)).utf8)
        #expect(JSONValue.parse(deep).map { "\($0)" } == Optional<String>.none, "nesting beyond the limit is refused, not recursed into")
    }
}
