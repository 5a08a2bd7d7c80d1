import Foundation

/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, the only form the services take (no TLS:
/// the database is expected on a private network or a local socket's host).
public struct PostgresURL: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int
    public let user: String
    public let password: String?
    public let database: String

    public init(_ text: String) throws {
        guard let url = URLComponents(string: text), ["postgres", "postgresql"].contains(url.scheme ?? "") else {
            throw URLError("a PostgreSQL URL starts with postgres://, got '\(Self.redacted(text))'")
        }
        guard let host = url.host, !host.isEmpty else { throw URLError("no host in '\(Self.redacted(text))'") }
        guard let user = url.user, !user.isEmpty else { throw URLError("no user in '\(Self.redacted(text))' (postgres://USER@HOST/DATABASE)") }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw URLError("no database in '\(Self.redacted(text))'") }
        if let items = url.queryItems, let other = items.first(where: { !($0.name == "sslmode" && $0.value == "disable") }) {
            throw URLError("unsupported option '\(other.name)' in '\(Self.redacted(text))': only sslmode=disable is understood")
        }
        let port = url.port ?? 5432
        guard (1...65535).contains(port) else { throw URLError("port \(port) is out of range") }
        self.host = host
        self.port = port
        // URLComponents has decoded them already.
        self.user = user
        self.password = url.password
        self.database = database
    }

    public var description: String { "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)" }

    /// The URL with everything between "//" and the last "@" masked: it holds the password.
    public static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text.range(of: "@", options: .backwards), at.lowerBound > scheme.upperBound else {
            return text
        }
        return text[..<scheme.upperBound] + "***" + text[at.lowerBound...]
    }

    public struct URLError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
