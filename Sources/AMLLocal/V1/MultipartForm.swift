import Foundation
import MultipartKit

/// A `multipart/form-data` body split into its named parts, parsed by MultipartKit's `MultipartParser`.
struct MultipartForm {
    struct Part {
        let name: String
        let filename: String?
        let body: [UInt8]
    }

    let parts: [Part]

    /// The first part named `name`, case-insensitively.
    func part(_ name: String) -> Part? { parts.first { $0.name.caseInsensitiveCompare(name) == .orderedSame } }

    /// Parses a body.
    /// - Parameter contentType: The request's Content-Type, with its `boundary` parameter.
    /// - Throws: `AMLError` (400) naming what is malformed.
    init(contentType: String, body: [UInt8]) throws(AMLError) {
        guard contentType.lowercased().hasPrefix("multipart/form-data"),
              let raw = contentType.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) })
                .first(where: { $0.lowercased().hasPrefix("boundary=") })?.dropFirst(9) else {
            throw AMLError.validation("Content-Type must be multipart/form-data with a boundary")
        }
        let boundary = raw.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        // RFC 2046: 1 to 70 characters. MultipartParser traps on an empty one.
        guard (1...70).contains(boundary.utf8.count) else {
            throw AMLError.validation("the multipart boundary must be 1 to 70 characters")
        }
        // MultipartKit 4.7.1 traps (reads past its 128-entry table) on a byte over 0x7F in a part's header name.
        guard Self.headerNamesAreASCII(body, boundary: boundary) else {
            throw AMLError.validation("malformed multipart body (a part's header name is not ASCII)")
        }
        let parser = MultipartParser(boundary: boundary)
        var parts: [Part] = []
        var headers: [(String, String)] = []
        var content: [UInt8] = []
        var unnamed = false
        parser.onHeader = { name, value in headers.append((name, value)) }
        parser.onBody = { buffer in content.append(contentsOf: buffer.readableBytesView) }
        parser.onPartComplete = {
            let disposition = headers.first { $0.0.caseInsensitiveCompare("Content-Disposition") == .orderedSame }?.1 ?? ""
            if let name = Self.parameter("name", in: disposition) {
                parts.append(Part(name: name, filename: Self.parameter("filename", in: disposition), body: content))
            } else {
                unnamed = true
            }
            headers = []
            content = []
        }
        do { try parser.execute(body) } catch {
            throw AMLError.validation("malformed multipart body")
        }
        guard !unnamed else { throw AMLError.validation("a multipart part has no Content-Disposition name") }
        guard !parts.isEmpty else { throw AMLError.validation("the multipart body has no complete part") }
        // The body must end with the closing boundary (a truncated upload is not a shorter file).
        var end = body.count
        while end > 0, [UInt8(ascii: "\r"), UInt8(ascii: "\n"), UInt8(ascii: " "), UInt8(ascii: "\t")].contains(body[end - 1]) { end -= 1 }
        let closing = Array("--\(boundary)--".utf8)
        guard end >= closing.count, body[(end - closing.count)..<end].elementsEqual(closing) else {
            throw AMLError.validation("the multipart body is truncated (no closing boundary)")
        }
        self.parts = parts
    }

    /// Whether MultipartKit can read `body` without reaching a byte over 0x7F where it expects a header name (its
    /// 128-entry table traps there). Decided by MultipartKit itself, on a copy where every such byte is 0x01: a
    /// byte it reads the same way everywhere else (body, value, preamble) but refuses in a header name. So the copy
    /// fails exactly where the original would trap, whatever path its state machine takes to get there.
    static func headerNamesAreASCII(_ body: [UInt8], boundary: String) -> Bool {
        guard body.contains(where: { $0 >= 0x80 }) else { return true }
        let parser = MultipartParser(boundary: boundary)
        do { try parser.execute(body.map { $0 >= 0x80 ? 0x01 : $0 }) } catch { return false }
        return true
    }

    private static func parameter(_ key: String, in line: String) -> String? {
        for piece in line.split(separator: ";") {
            let kv = piece.trimmingCharacters(in: .whitespaces)
            if kv.lowercased().hasPrefix(key + "=") {
                return String(kv.dropFirst(key.count + 1)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }
}
