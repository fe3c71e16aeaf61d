// bench/crc32.sh compiles this: the hand-written slicing-by-8 CRC-32 against zlib's crc32, per buffer size.
import Foundation
import CZlibCRC
/// The slicing-by-8 CRC-32 the body log used before zlib (kept here only to compare).
enum CRC32 {
    /// `tables[k][b]`: the CRC of byte `b` followed by `k` zero bytes, flattened (k * 256 + b).
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for n in 0..<256 {
            var c = UInt32(n)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[n] = c
        }
        for n in 0..<256 {
            for k in 1..<8 { t[k * 256 + n] = (t[(k - 1) * 256 + n] >> 8) ^ t[Int(t[(k - 1) * 256 + n] & 0xFF)] }
        }
        return t
    }()

    static func checksum(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        data.withUnsafeBytes { raw in
            tables.withUnsafeBufferPointer { t in
                var i = 0
                let n = raw.count
                while i + 8 <= n {
                    let lo = crc ^ (UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)
                    let hi = UInt32(raw[i + 4]) | UInt32(raw[i + 5]) << 8 | UInt32(raw[i + 6]) << 16 | UInt32(raw[i + 7]) << 24
                    crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int(lo >> 8 & 0xFF)] ^ t[5 * 256 + Int(lo >> 16 & 0xFF)]
                        ^ t[4 * 256 + Int(lo >> 24)] ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int(hi >> 8 & 0xFF)]
                        ^ t[256 + Int(hi >> 16 & 0xFF)] ^ t[Int(hi >> 24)]
                    i += 8
                }
                while i < n {
                    crc = t[Int((crc ^ UInt32(raw[i])) & 0xFF)] ^ (crc >> 8)
                    i += 1
                }
            }
        }
        return crc ^ 0xFFFF_FFFF
    }
}

let n = Int(CommandLine.arguments[1]) ?? 7324
let iterations = 200_000_000 / max(n, 1)
let data = Data((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
func zlib(_ d: Data) -> UInt32 {
    d.withUnsafeBytes { raw in UInt32(crc32(0, raw.bindMemory(to: Bytef.self).baseAddress, uInt(raw.count))) }
}
precondition(zlib(data) == CRC32.checksum(data))
var sink: UInt32 = 0
var t = ContinuousClock.now
for _ in 0..<iterations { sink ^= CRC32.checksum(data) }
let hand = ContinuousClock.now - t
t = ContinuousClock.now
for _ in 0..<iterations { sink ^= zlib(data) }
let z = ContinuousClock.now - t
func us(_ d: Duration) -> Double { Double(d.components.seconds) * 1e6 / Double(iterations) + Double(d.components.attoseconds) / 1e12 / Double(iterations) }
print(String(format: "%7d bytes: slicing-by-8 %.2f us, zlib crc32 %.2f us per buffer (%d buffers; sink %u)", n, us(hand), us(z), iterations, sink))
