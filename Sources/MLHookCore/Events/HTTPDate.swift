import Foundation

/// Dates as HTTP headers write them (RFC 9110 IMF-fixdate: `Tue, 01 Dec 2026 10:00:00 GMT`), as Azure Blob's
/// `x-ms-date` and `Last-Modified` use them.
public enum HTTPDate {
    public static func string(_ date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f.string(from: date)
    }
}
