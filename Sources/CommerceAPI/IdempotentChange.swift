import Events
import Foundation
import HTTPTypes
import Hummingbird
import SQLStore
import ServiceRuntime

extension ServiceNode {
    /// Makes a POST's change and answers it. With an Idempotency-Key the answer (status and
    /// body) is stored in the change's own transaction, and a retry gets it back without the
    /// change being made again. A 4xx decided inside `change` is an answer too, stored with
    /// the change rolled back; a 5xx is not, so a retry tries again.
    public func respond<Body, Answer: Encodable & Sendable>(
        to post: Post<Body>, status: HTTPResponse.Status = .ok,
        _ change: @escaping @Sendable (any SQLDatabase) throws -> (Answer, [CommerceEvent])
    ) async throws -> Response {
        guard let key = post.key else { return try JSON.response(try await transaction(change), status: status) }
        let elsewhere = try await keySpace.answer(for: key.value, elsewhereThan: name)
        let stored: StoredAnswer
        do { stored = try await answer(to: post, key: key, elsewhere: elsewhere, status: status, change) } catch let error as SQLError
            where error.isUniqueViolation
        {
            // Another replica stored an answer under this key while this one made the change: this
            // one is rolled back, and the key's answer is that one's.
            stored = try await answer(to: post, key: key, elsewhere: elsewhere, status: status, change)
        }
        var response = JSON.response(bytes: stored.body, status: HTTPResponse.Status(code: stored.status))
        // A retry names the trace the first request's events carry, not its own.
        if let traceparent = stored.traceparent { response.headers[.traceresponse] = traceparent }
        return response
    }

    private func answer<Body, Answer: Encodable & Sendable>(
        to post: Post<Body>, key: IdempotencyKey, elsewhere: StoredAnswer?, status: HTTPResponse.Status,
        _ change: @escaping @Sendable (any SQLDatabase) throws -> (Answer, [CommerceEvent])
    ) async throws -> StoredAnswer {
        let trace = TraceParent.current?.text
        return try await transaction { db -> (StoredAnswer, [CommerceEvent]) in
            if let stored = try IdempotencyStore.find(key.value, db) ?? elsewhere {
                guard stored.fingerprint == key.fingerprint else { throw APIError.keyReused(key, firstUsedFor: stored.request) }
                return (stored, [])
            }
            var result: (StoredAnswer, [CommerceEvent])?
            do {
                try db.savepoint {
                    let (value, events) = try change(db)
                    result = (
                        StoredAnswer(
                            request: key.request, fingerprint: key.fingerprint, status: status.code, body: try JSON.bytes(value),
                            traceparent: trace), events
                    )
                }
            } catch let error as APIError where (400..<500).contains(error.status.code) {
                result = (
                    StoredAnswer(
                        request: key.request, fingerprint: key.fingerprint, status: error.status.code, body: try error.bytes(), traceparent: trace),
                    []
                )
            }
            try IdempotencyStore.save(key.value, result!.0, db)
            return result!
        }
    }
}

extension HTTPField.Name {
    /// W3C Trace Context level 3 (draft): the context the server ran the request in.
    public static let traceresponse = Self("traceresponse")!
}
