import Foundation

/// A `multipart/form-data` body split into its named parts.
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
              let b = contentType.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) })
                .first(where: { $0.lowercased().hasPrefix("boundary=") })?.dropFirst(9) else {
            throw AMLError.validation("Content-Type must be multipart/form-data with a boundary")
        }
        let boundary = Array("--\(b.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))".utf8)
        var parts: [Part] = []
        var starts = Self.ranges(of: boundary, in: body)
        guard starts.count >= 2 else { throw AMLError.validation("the multipart body has no complete part") }
        starts.append(body.count)
        for i in 0..<(starts.count - 2) {
            var lo = starts[i] + boundary.count
            let hi = starts[i + 1]
            // Each part: CRLF, headers, CRLF CRLF, content, CRLF, then the next boundary.
            guard lo + 2 <= hi, body[lo] == 13, body[lo + 1] == 10 else { throw AMLError.validation("malformed multipart boundary line") }
            lo += 2
            guard let headerEnd = Self.ranges(of: Array("\r\n\r\n".utf8), in: Array(body[lo..<hi])).first else {
                throw AMLError.validation("a multipart part has no header end")
            }
            let headers = String(decoding: body[lo..<(lo + headerEnd)], as: UTF8.self)
            var contentEnd = hi
            if contentEnd - 2 >= lo + headerEnd + 4, body[contentEnd - 2] == 13, body[contentEnd - 1] == 10 { contentEnd -= 2 }
            let content = Array(body[(lo + headerEnd + 4)..<contentEnd])
            var name: String?, filename: String?
            for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
                name = Self.parameter("name", in: line)
                filename = Self.parameter("filename", in: line)
            }
            guard let name else { throw AMLError.validation("a multipart part has no Content-Disposition name") }
            parts.append(Part(name: name, filename: filename, body: content))
        }
        // The last boundary must be the closing one.
        let last = starts[starts.count - 2] + boundary.count
        guard last + 2 <= body.count, body[last] == UInt8(ascii: "-"), body[last + 1] == UInt8(ascii: "-") else {
            throw AMLError.validation("the multipart body is truncated (no closing boundary)")
        }
        self.parts = parts
    }

    private static func parameter(_ key: String, in line: Substring) -> String? {
        for piece in line.split(separator: ";") {
            let kv = piece.trimmingCharacters(in: .whitespaces)
            if kv.lowercased().hasPrefix(key + "=") {
                return String(kv.dropFirst(key.count + 1)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// Start offsets of `needle` in `hay` (non-overlapping).
    static func ranges(of needle: [UInt8], in hay: [UInt8]) -> [Int] {
        guard !needle.isEmpty, hay.count >= needle.count else { return [] }
        var out: [Int] = []
        var i = 0
        let first = needle[0]
        while i <= hay.count - needle.count {
            if hay[i] == first && hay[i..<(i + needle.count)].elementsEqual(needle) {
                out.append(i)
                i += needle.count
            } else {
                i += 1
            }
        }
        return out
    }
}
