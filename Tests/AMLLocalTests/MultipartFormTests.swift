import Foundation
@testable import AMLLocal
import Testing

/// aml-local's `startrun` upload, parsed by MultipartKit: parts come back byte for byte, and a malformed body is a
/// 400 that says why, never a crash (an empty boundary traps MultipartParser, so it is refused first).
@Suite struct MultipartFormTests {
    static let zip: [UInt8] = [0x50, 0x4B, 0x03, 0x04] + Array("\r\n--not-the-boundary\r\n".utf8) + (0..<512).map { UInt8(truncatingIfNeeded: $0) }

    func body(_ boundary: String, closing: Bool = true) -> [UInt8] {
        var b: [UInt8] = []
        b += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"runDefinitionFile\"; filename=\"definition.json\"\r\nContent-Type: application/json\r\n\r\n{\"Configuration\":{}}\r\n".utf8)
        b += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"projectZipFile\"; filename=\"project.zip\"\r\nContent-Type: application/zip\r\n\r\n".utf8)
        b += Self.zip + Array("\r\n".utf8)
        if closing { b += Array("--\(boundary)--\r\n".utf8) }
        return b
    }

    @Test func partsComeBackByteForByte() throws {
        let form = try MultipartForm(contentType: "multipart/form-data; boundary=\"b0und\"", body: body("b0und"))
        #expect(form.part("projectzipfile")?.body == Self.zip)
        #expect(form.part("projectZipFile")?.filename == "project.zip")
        #expect(form.part("runDefinitionFile")?.body == Array(#"{"Configuration":{}}"#.utf8))
    }

    @Test func malformedBodiesAreRefusedWithTheReason() {
        func reason(_ contentType: String, _ body: [UInt8]) -> String? {
            do { _ = try MultipartForm(contentType: contentType, body: body); return nil } catch { return error.message }
        }
        #expect(reason("multipart/form-data; boundary=", body("x"))?.contains("1 to 70") == true)
        #expect(reason("multipart/form-data; boundary=\"\"", body("x"))?.contains("1 to 70") == true)
        #expect(reason("application/json", body("x"))?.contains("multipart/form-data") == true)
        #expect(reason("multipart/form-data; boundary=b0und", body("b0und", closing: false))?.contains("truncated") == true)
        #expect(reason("multipart/form-data; boundary=b0und", Array("no parts at all".utf8)) != nil)
        let unnamed = Array("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n".utf8)
        #expect(reason("multipart/form-data; boundary=b", unnamed)?.contains("no Content-Disposition name") == true)
    }

    /// Found by scripts/fuzz.sh (multipart): MultipartKit 4.7.1 trapped on a byte over 0x7F in a part's header
    /// name, which took aml-local, and `mlhook serve` with it, down on one upload.
    @Test func aNonASCIIHeaderNameIsRefusedNotACrash() throws {
        var crash = Array("--b0und\r\nContent-Di".utf8) + [0x84, 0x8F, 0x90] + Array("n: form-data; name=\"x\"\r\n\r\nbody\r\n--b0und--\r\n".utf8)
        #expect(throws: AMLError.self) { try MultipartForm(contentType: "multipart/form-data; boundary=b0und", body: crash) }
        // Non-ASCII in a header value (a UTF-8 file name) is still accepted.
        crash = Array("--b0und\r\nContent-Disposition: form-data; name=\"x\"; filename=\"caf\u{e9}.py\"\r\n\r\nbody\r\n--b0und--\r\n".utf8)
        let form = try MultipartForm(contentType: "multipart/form-data; boundary=b0und", body: crash)
        #expect(form.part("x")?.body == Array("body".utf8))
    }

    /// Found by scripts/fuzz.sh (multipart), after the fix above: a first delimiter after a bare LF in the preamble,
    /// then a non-ASCII header name. MultipartKit reads the delimiter wherever it is, so the check does too.
    /// And a third: a header value ended by a bare LF, so the next header name starts where a line-based scan does
    /// not look. The check now asks MultipartKit itself (on a copy it cannot trap on), so its paths are the parser's.
    @Test(arguments: ["bXVsdGlwYXJ0L2Zvcm0tZGF0YTtuOiBmb3JtLWRhdGE7IGJvdW5kYXJ5PSJiMHVuZCIKLSBib3WGZGFyeT0iYjB1bmQiCi0tYjB1bmQNCkNvbnRlbnQtRGlzcG9zaXRpb246IGZvcm0tZGF0YTsgYm91bmRhcnk9ImIwdW5kIgotLWIwdW5kDQpDb270ZW50LURuIjp7fX0NCi0tYjB1bmQNCkNvbnRlbnQtb2plY3QuemlwIg0KDQpQSwMEDQotLWIwdW5kLS0NCg==", "bXVsdGlwYXJ0L2Zvcm0tZGF0YTsgYm91bmRhcnk9ImIwdW5kIgotLWIwdW5kDQpDb25SUlJSUmVudC1SUlJSUmVudC1EaXNwb3NpdGlvbjogZgoNClVuc2FmZVJhbS1kYXRhUmVudC1EaXNwb3NpdEludDpzcG9zaXQKUEsDBA0K09Kdz4qRm29udAo="])
    func headerNamesAreCheckedWhereverTheParserReadsThem(_ base64: String) throws {
        let input = [UInt8](try #require(Data(base64Encoded: base64)))
        let newline = try #require(input.firstIndex(of: 0x0A))
        let contentType = String(decoding: input[..<newline], as: UTF8.self)
        #expect(throws: AMLError.self) { try MultipartForm(contentType: contentType, body: Array(input[(newline + 1)...])) }
    }
}
