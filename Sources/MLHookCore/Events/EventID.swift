import Foundation

/// Identifiers of stored records: a prefix (`evt_` events, `job_` jobs, `msg_` callbacks) followed by a
/// 26-character ULID (48-bit millisecond time, 80 random bits).
///
/// They sort by arrival time, which keeps listings and the SQLite index in insertion order, and they carry no
/// information from the request.
public enum EventID {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// A new identifier for `date`.
    /// - Parameters:
    ///   - prefix: What the id names, without the underscore: `evt`, `job` or `msg`.
    ///   - date: The time the id sorts by.
    public static func make(_ prefix: String = "evt", at date: Date = Date()) -> String {
        var rng = SystemRandomNumberGenerator()
        let millis = UInt64(max(0, date.timeIntervalSince1970 * 1000))
        let hi = rng.next() as UInt64
        let lo = rng.next() as UInt16
        // 128 bits: 48 time bits, then 80 random bits.
        let top = (millis << 16) | UInt64(lo)
        let bottom = hi
        var out = [UInt8](repeating: 0, count: 26)
        // Encode 130 bits (2 leading zero bits + 128) as 26 base-32 digits.
        var value = (top, bottom)
        for i in stride(from: 25, through: 0, by: -1) {
            out[i] = alphabet[Int(value.1 & 31)]
            value.1 = (value.1 >> 5) | ((value.0 & 31) << 59)
            value.0 >>= 5
        }
        return prefix + "_" + String(decoding: out, as: UTF8.self)
    }
}
