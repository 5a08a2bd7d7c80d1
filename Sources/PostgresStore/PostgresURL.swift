import Foundation

/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE[&sslrootcert=FILE]]`, the only
/// form the services take. The modes are libpq's, except the two that may fall back to plaintext
/// (`allow`, `prefer`): a connection is encrypted or not, as asked.
public struct PostgresURL: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int
    public let user: String
    public let password: String?
    public let database: String
    public let sslMode: SSLMode
    /// The CA certificates (PEM) that sign the server's certificate; `verify-ca` and `verify-full` need it.
    public let sslRootCert: String?

    public enum SSLMode: String, Sendable, CaseIterable {
        /// Plaintext (the default).
        case disable
        /// Encrypted, the server's certificate unchecked (libpq's `require` without a root certificate).
        case require
        /// Encrypted, the server's certificate signed by `sslrootcert`; any host name.
        case verifyCA = "verify-ca"
        /// Encrypted, the certificate signed by `sslrootcert` and naming the URL's host.
        case verifyFull = "verify-full"
    }

    public init(_ text: String) throws {
        guard let url = URLComponents(string: text), ["postgres", "postgresql"].contains(url.scheme ?? "") else {
            throw URLError("a PostgreSQL URL starts with postgres://, got '\(Self.redacted(text))'")
        }
        guard let host = url.host, !host.isEmpty else { throw URLError("no host in '\(Self.redacted(text))'") }
        guard let user = url.user, !user.isEmpty else { throw URLError("no user in '\(Self.redacted(text))' (postgres://USER@HOST/DATABASE)") }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw URLError("no database in '\(Self.redacted(text))'") }
        var sslMode = SSLMode.disable
        var sslRootCert: String?
        let items = url.queryItems ?? []
        // A second sslmode would silently override the first: which one was meant is not ours to guess.
        if let repeated = items.map(\.name).enumerated().first(where: { i, name in items[..<i].contains { $0.name == name } })?.element {
            throw URLError("option '\(repeated)' is given twice in '\(Self.redacted(text))'")
        }
        for item in items {
            switch (item.name, item.value ?? "") {
            case ("sslmode", let value):
                guard let mode = SSLMode(rawValue: value) else {
                    let modes = SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw URLError(
                        "sslmode '\(value)' in '\(Self.redacted(text))' is not one of \(modes) (allow and prefer may fall back to plaintext)")
                }
                sslMode = mode
            case ("sslrootcert", let value):
                guard !value.isEmpty else { throw URLError("sslrootcert is empty in '\(Self.redacted(text))'") }
                sslRootCert = value
            default:
                throw URLError("unsupported option '\(item.name)' in '\(Self.redacted(text))': only sslmode and sslrootcert are understood")
            }
        }
        if sslMode == .disable && sslRootCert != nil {
            throw URLError("sslrootcert in '\(Self.redacted(text))' asks for a checked server, but sslmode is disable (the default): give sslmode")
        }
        if [.verifyCA, .verifyFull].contains(sslMode) && sslRootCert == nil {
            throw URLError(
                "sslmode=\(sslMode.rawValue) in '\(Self.redacted(text))' needs sslrootcert=FILE, the CA that signs the server's certificate")
        }
        let port = url.port ?? 5432
        guard (1...65535).contains(port) else { throw URLError("port \(port) is out of range") }
        self.host = host
        self.port = port
        // URLComponents has decoded them already.
        self.user = user
        self.password = url.password
        self.database = database
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
    }

    public var description: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)\(sslMode == .disable ? "" : "?sslmode=\(sslMode.rawValue)")"
    }

    /// The URL with everything between "//" and the last "@" masked: it holds the password.
    public static func redacted(_ text: String) -> String {
        guard let at = text.range(of: "@", options: .backwards) else { return text }
        // Without "://" ("postgres:/u:pw@h") the credentials' start is unknown: all before the '@' goes.
        guard let scheme = text.range(of: "://"), at.lowerBound > scheme.upperBound else { return "***" + text[at.lowerBound...] }
        return text[..<scheme.upperBound] + "***" + text[at.lowerBound...]
    }

    public struct URLError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
