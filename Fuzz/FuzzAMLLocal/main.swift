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

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    switch target {
    case "multipart": multipart(bytes)
    case "unzip": unzip(bytes)
    default: fatalError("unknown MLHOOK_FUZZ_TARGET \(target)")
    }
    return 0
}
