// libFuzzer harnesses for what aml-local parses from an upload: the multipart/form-data body and the project zip.
// MLHOOK_FUZZ_TARGET picks the harness (scripts/fuzz.sh sets it). Built only by scripts/fuzz.sh.
import Foundation
@testable import AMLLocal

private let target = ProcessInfo.processInfo.environment["MLHOOK_FUZZ_TARGET"] ?? "multipart"
private let scratch: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("mlhook-fuzz-unzip-\(getpid())")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}()

/// The first line is the Content-Type (so boundaries are fuzzed too), the rest the body.
private func multipart(_ bytes: [UInt8]) {
    let newline = bytes.firstIndex(of: 0x0A) ?? bytes.endIndex
    let contentType = String(decoding: bytes[..<newline], as: UTF8.self)
    let body = newline < bytes.endIndex ? Array(bytes[(newline + 1)...]) : []
    guard let form = try? MultipartForm(contentType: contentType, body: body) else { return }
    for part in form.parts { precondition(part.body.count <= body.count, "a part is larger than the body") }
}

private func unzip(_ bytes: [UInt8]) {
    let dir = scratch.appendingPathComponent("run")
    try? FileManager.default.removeItem(at: dir)
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let limit = 1 << 20
    _ = try? SafeUnzip.extract(bytes, to: dir, maxBytes: limit, maxEntries: 64)
    // Whatever happened, nothing was written outside the directory and no more than the limit inside it.
    var total = 0
    if let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.fileSizeKey, .isSymbolicLinkKey]) {
        for case let url as URL in walker {
            let values = try? url.resourceValues(forKeys: [.fileSizeKey, .isSymbolicLinkKey])
            precondition(values?.isSymbolicLink != true, "a link was extracted: \(url.path)")
            total += values?.fileSize ?? 0
        }
    }
    precondition(total <= limit, "extracted \(total) bytes, over the \(limit) limit")
    let outside = (try? FileManager.default.contentsOfDirectory(atPath: scratch.path)) ?? []
    precondition(outside == ["run"], "something was written beside the run directory: \(outside)")
}

/// A v2 job's command (first line) and an input's value (the rest): substitution never traps, and the value comes
/// back as exactly one shell word that a POSIX shell reads as the value (plain safe characters, or single quotes
/// with `'\\''` for each quote); ISO durations, block lists and environment ids never trap either.
private func command(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    let lines = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
    let template = String(lines[0]), value = lines.count > 1 ? String(lines[1]) : ""
    _ = try? AMLLocalServer.substitute(template, ["inputs.x": value])
    _ = AMLLocalServer.isoSeconds(template)
    _ = AMLLocalServer.blockIDs(text)
    _ = AMLLocalServer.isEnvironmentID(template)
    guard let word = try? AMLLocalServer.substitute("${{inputs.x}}", ["inputs.x": value]) else {
        precondition(value.unicodeScalars.contains("\0"), "a defined input without a NUL was refused")
        return
    }
    precondition(shellWord(word) == value, "\(value.debugDescription) came back as \(word.debugDescription)")
}

/// What a POSIX shell makes of one word made of safe characters and single-quoted parts (nil for anything else).
private func shellWord(_ word: String) -> String? {
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/:=@%+,-".unicodeScalars)
    var out = "", quoted = false, sawAnything = false
    var scalars = word.unicodeScalars.makeIterator()
    while let c = scalars.next() {
        sawAnything = true
        if quoted {
            if c == "'" { quoted = false } else { out.unicodeScalars.append(c) }
        } else if c == "'" {
            quoted = true
        } else if c == "\\" {
            guard let next = scalars.next(), next == "'" else { return nil }
            out += "'"
        } else if safe.contains(c) {
            out.unicodeScalars.append(c)
        } else {
            return nil
        }
    }
    return quoted || !sawAnything ? nil : out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    switch target {
    case "multipart": multipart(bytes)
    case "unzip": unzip(bytes)
    case "command": command(bytes)
    default: fatalError("unknown MLHOOK_FUZZ_TARGET \(target)")
    }
    return 0
}
