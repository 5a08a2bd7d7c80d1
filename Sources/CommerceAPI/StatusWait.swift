import Foundation
import Hummingbird
import SQLStore
import ServiceRuntime

/// `GET /orders/{id}` and `GET /payments/{id}` as long polls: `?timeoutMs=N` and/or
/// `?waitFor=S1,S2` make the request wait, up to `timeoutMs`, for the resource's status to be
/// one of the wanted ones, instead of the client asking again and again.
///
/// - `waitFor`: comma-separated statuses of the resource; without it, every status but the
///   initial one (PENDING for orders, REQUESTED for payments): "until the saga moved".
/// - `timeoutMs`: 0-30000, default 10000 when only `waitFor` is given; 0 answers at once.
/// - The answer is 200 with the resource as it is when the status is wanted, when the status is
///   final (it can never become a wanted one: CANCELLED, COMPLETED, FAILED), or at the timeout;
///   404 if it does not exist. A bad parameter is a 400; when the process already holds its
///   limit of waiting requests, a 503 `too_many_waiters` with `Retry-After: 1`.
///
/// Waiting holds no thread, database connection or transaction: the handler suspends on a
/// continuation that the service's write path resumes right after the commit that changed the
/// resource (`ServiceNode.readAwaitingChange`).
public struct StatusWait: Sendable {
    public static let maxTimeoutMs = 30_000
    public static let defaultTimeoutMs = 10_000

    public let wanted: Set<String>
    public let timeoutMs: Int

    /// The wait a request asks for; nil for a plain GET.
    /// - Parameters:
    ///   - statuses: every status of the resource, for validating `waitFor`.
    ///   - initial: the status a new resource has.
    public static func parse(_ request: Request, resource: String, statuses: [String], initial: String) throws -> StatusWait? {
        let query = request.uri.queryParameters
        let waitFor = query[values: "waitFor"], timeout = query[values: "timeoutMs"]
        guard !waitFor.isEmpty || !timeout.isEmpty else { return nil }
        guard waitFor.count <= 1, timeout.count <= 1 else { throw APIError.badRequest("waitFor and timeoutMs may each be given once") }
        var timeoutMs = defaultTimeoutMs
        if let raw = timeout.first {
            guard let value = Int(raw), (0...maxTimeoutMs).contains(value) else {
                throw APIError.badRequest("timeoutMs must be an integer 0-\(maxTimeoutMs), got '\(raw.prefix(40))'")
            }
            timeoutMs = value
        }
        var wanted = Set(statuses.filter { $0 != initial })
        if let raw = waitFor.first {
            let names = raw.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let unknown = names.first(where: { !statuses.contains($0) }) else {
                wanted = Set(names)
                return StatusWait(wanted: wanted, timeoutMs: timeoutMs)
            }
            throw APIError.badRequest(
                "waitFor must be a comma-separated list of \(resource) statuses (\(statuses.joined(separator: ", "))), got '\(unknown.prefix(40))'")
        }
        return StatusWait(wanted: wanted, timeoutMs: timeoutMs)
    }
}

extension ServiceNode {
    /// Reads a resource whose status can be waited for; with a wait, answers once its status is
    /// wanted or final, or at the timeout. nil when it does not exist.
    public func read<T: Sendable>(
        _ subject: String, waiting wait: StatusWait?, final: Set<String>, status: @escaping @Sendable (T) -> String,
        _ body: @escaping @Sendable (any SQLDatabase) throws -> T?
    ) async throws -> T? {
        guard let wait, wait.timeoutMs > 0 else { return try await read(body) }
        do {
            return try await readAwaitingChange(of: subject, timeout: .milliseconds(wait.timeoutMs), body) { value in
                guard let value else { return true }
                let s = status(value)
                return wait.wanted.contains(s) || final.contains(s)
            }
        } catch let error as ChangeWaiters.LimitReached {
            throw APIError(
                .serviceUnavailable, code: "too_many_waiters",
                "\(error); retry later, or read without waitFor and timeoutMs", headers: [.retryAfter: "1"])
        }
    }
}
