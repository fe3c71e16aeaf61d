import AsyncHTTPClient
import Foundation
import NIOCore

/// The HTTP client for calls that have their own retries (callbacks, with their schedule) or a person waiting
/// (the CLI's `--server`): a refused connection fails at once. `HTTPClient.shared` keeps trying to connect, with
/// backoff, until the request's deadline, so each attempt at a receiver that was down took the whole timeout.
public enum OutboundHTTP {
    public static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// A transport error in words (NIO's read `connection reset (error set): Connection refused) (errno: 111)`).
    public static func describe(_ error: any Error) -> String {
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)).lowercased() }
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "the connection timed out"
            case .deadlineExceeded, .readTimeout: return "no answer in time"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(e)"
            }
        }
        return "\(error)"
    }
}
