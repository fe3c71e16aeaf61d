import Foundation
import ZIPFoundation

/// Zips a source folder for `startrun`: deflate, `.git` skipped, links that leave the folder refused, a size
/// limit, and deterministic bytes (sorted entries, fixed timestamps), so the same tree zips identically.
public enum SourceZipper {
    /// Why a folder cannot be zipped.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// What went wrong.
        public let description: String
    }

    /// The zip of `directory`'s contents, entries relative to it.
    /// - Throws: `Failure` naming the offending path.
    public static func zip(directory: URL, maxBytes: Int = 200 << 20) throws(Failure) -> [UInt8] {
        let root = directory.standardizedFileURL.resolvingSymlinksInPath()
        var files: [(path: String, url: URL)] = []
        var total = 0
        func walk(_ dir: URL, _ prefix: String) throws(Failure) {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() } catch {
                throw Failure(description: "cannot read \(dir.path): \(error)")
            }
            for name in names where name != ".git" {
                let url = dir.appendingPathComponent(name)
                let rel = prefix.isEmpty ? name : prefix + "/" + name
                let resolved = url.resolvingSymlinksInPath()
                guard resolved.path == root.path || resolved.path.hasPrefix(root.path + "/") else {
                    throw Failure(description: "\(rel) is a link that leaves \(directory.path)")
                }
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: resolved.path, isDirectory: &isDir) else {
                    throw Failure(description: "\(rel) is a broken link")
                }
                if isDir.boolValue {
                    try walk(url, rel)
                } else {
                    let size = ((try? FileManager.default.attributesOfItem(atPath: resolved.path))?[.size] as? Int) ?? 0
                    total += size
                    guard total <= maxBytes else { throw Failure(description: "\(directory.path) is larger than \(maxBytes) bytes") }
                    files.append((rel, resolved))
                }
            }
        }
        try walk(root, "")
        do {
            let archive = try Archive(data: Data(), accessMode: .create)
            let epoch = Date(timeIntervalSince1970: 315_532_800)  // 1980-01-01, the earliest zip date
            for (path, url) in files {
                let data = try Data(contentsOf: url)
                try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(data.count), modificationDate: epoch,
                                     compressionMethod: .deflate) { position, size in
                    data.subdata(in: Int(position)..<Int(position) + size)
                }
            }
            return [UInt8](archive.data ?? Data())
        } catch {
            throw Failure(description: "cannot zip \(directory.path): \(error)")
        }
    }
}
