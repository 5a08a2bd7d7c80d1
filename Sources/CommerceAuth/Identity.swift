/// Who a request acts as, read from its bearer token: one user, or an operator (staff or a
/// tool) who may manage products, charge balances and act for any user.
public enum Identity: Sendable, Hashable, CustomStringConvertible {
    case user(Int64)
    case `operator`(String)

    /// The scope that makes a token an operator's (RFC 8693's space-separated `scope` claim).
    public static let operatorScope = "commerce:operator"

    /// Whether this identity may act for, or read what belongs to, user `id`.
    public func mayActFor(user id: Int64) -> Bool {
        switch self {
        case .user(let own): own == id
        case .operator: true
        }
    }

    public var isOperator: Bool {
        if case .operator = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .user(let id): "user \(id)"
        case .operator(let name): "operator '\(name)'"
        }
    }
}
