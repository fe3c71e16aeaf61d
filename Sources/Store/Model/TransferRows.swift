import Foundation

/// One stored row in a backend-neutral form, for moving a store from one backend to another
/// (`mlhook store migrate`): every column that carries state, by name, with the event body inline.
public typealias TransferRow = [String: TransferValue]

/// A column value.
public enum TransferValue: Sendable, Equatable, Hashable {
    case null
    case int(Int)
    case double(Double)
    case text(String)
    case bytes([UInt8])

    /// The canonical bytes checksums are computed over.
    var canonical: [UInt8] {
        switch self {
        case .null: [0]
        case .int(let v): [1] + Array(String(v).utf8)
        case .double(let v): [2] + Array(String(v.bitPattern).utf8)
        case .text(let v): [3] + Array(String(v.utf8.count).utf8) + [58] + Array(v.utf8)
        case .bytes(let v): [4] + Array(String(v.count).utf8) + [58] + v
        }
    }
}

/// The tables a store moves, in the order they are copied, with their columns and kinds. Rows are copied oldest
/// first, so each table's order (its ids' order in listings and pages) is kept.
public enum TransferTable: String, Sendable, CaseIterable {
    case events, jobs, jobAttempts = "job_attempts", callbacks

    public enum Kind: Sendable { case text, int, double, bytes, bool }

    /// Every column that carries state (never a backend's own bookkeeping: row numbers, body-log offsets).
    public var columns: [(name: String, kind: Kind)] {
        switch self {
        case .events:
            [("id", .text), ("source", .text), ("kind", .text), ("delivery_id", .text), ("headers", .text), ("content_type", .text),
             ("body", .bytes), ("received_at", .double), ("state", .text), ("plan", .text), ("explanation", .text)]
        case .jobs:
            [("id", .text), ("idempotency_key", .text), ("event_id", .text), ("rule", .text), ("action_index", .int), ("action", .text),
             ("parameters", .text), ("state", .text), ("attempts", .int), ("max_attempts", .int), ("created_at", .double),
             ("next_attempt_at", .double), ("lease_until", .double), ("lease_token", .text), ("lease_owner", .text), ("last_error", .text),
             ("result", .text), ("supersede_scope", .text), ("cancel_requested", .bool), ("delivery_id", .text), ("retries", .int), ("context", .text), ("parked", .bool)]
        case .jobAttempts:
            [("job_id", .text), ("number", .int), ("started_at", .double), ("ended_at", .double), ("outcome", .text), ("error", .text)]
        case .callbacks:
            [("id", .text), ("job_id", .text), ("event_id", .text), ("rule", .text), ("target_index", .int), ("phase", .text), ("kind", .text),
             ("url", .text), ("credential", .text), ("body", .text), ("state", .text), ("attempts", .int), ("next_attempt_at", .double),
             ("last_status", .int), ("last_error", .text), ("created_at", .double)]
        }
    }
}

/// A running count and digest (FNV-1a 64, twice with different seeds) of a table's rows in order:
/// what `mlhook store migrate` compares between the source and the copy.
public struct TransferChecksum: Sendable, Equatable, CustomStringConvertible {
    public private(set) var rows = 0
    private var a: UInt64 = 0xcbf2_9ce4_8422_2325
    private var b: UInt64 = 0x8422_2325_cbf2_9ce4

    public init() {}

    public mutating func add(_ row: TransferRow, _ table: TransferTable) {
        rows += 1
        for (name, _) in table.columns {
            for byte in (row[name] ?? .null).canonical + [0xff] {
                a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
                b = (b ^ UInt64(byte ^ 0x5a)) &* 0x0000_0100_0000_01b3
            }
        }
    }

    /// The count and the 32-hex-digit digest (each half zero-padded: a half below 2^60 printed 15 digits before).
    public var description: String { "\(rows) rows, digest \(Self.hex(a))\(Self.hex(b))" }

    static func hex(_ v: UInt64) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
