import Foundation
import NIOSSL
import PostgresNIO

extension PostgresURL {
    /// PostgresNIO's TLS for the URL's `sslmode`: one context per store, shared by its connections.
    /// A file that cannot be read or holds no certificate is refused here, before any connection.
    func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable: return .disable
        // libpq's rule: `require` with a root certificate checks the chain as `verify-ca` does.
        case .require where sslRootCert == nil: tls.certificateVerification = .none
        case .require, .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        if let file = sslRootCert {
            guard FileManager.default.isReadableFile(atPath: file) else { throw URLError("sslrootcert \(file) cannot be read") }
            guard let certificates = try? NIOSSLCertificate.fromPEMFile(file), !certificates.isEmpty else {
                throw URLError("sslrootcert \(file) holds no PEM certificate")
            }
            tls.trustRoots = .certificates(certificates)
        }
        return .require(try NIOSSLContext(configuration: tls))
    }

    /// Which TLS check refused the server, in words; nil for an error that is not TLS's.
    func tlsFailure(_ error: any Error) -> String? {
        guard sslMode != .disable else { return nil }
        let underlying = (error as? PSQLError)?.underlying ?? error
        if let psql = error as? PSQLError, psql.code == .sslUnsupported {
            return "the server does not offer TLS, and sslmode=\(sslMode.rawValue) never falls back to plaintext"
        }
        if let extra = underlying as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "the server's certificate does not name the host '\(host)' (sslmode=verify-full)"
        }
        if case .handshakeFailed(let reason)? = underlying as? NIOSSLError {
            if "\(reason)".contains("CERTIFICATE_VERIFY_FAILED") {
                return "the server's certificate is not signed by a CA in sslrootcert \(sslRootCert ?? "")"
            }
            return "TLS handshake failed: \(reason)"
        }
        return nil
    }
}
