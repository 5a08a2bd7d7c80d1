/// Sums, differences and products of numbers that came from events or requests. An overflow
/// means the input was impossible: it is thrown as a DomainError (a consumed event is then kept
/// in `rejected_events` and the consumer moves on) instead of trapping and taking the whole
/// process down, again on every redelivery.
public enum Checked {
    /// `a + b`; `what` names the quantity for the error ("stock of product 3").
    public static func sum(_ a: Int64, _ b: Int64, _ what: @autoclosure () -> String) throws(DomainError) -> Int64 {
        try result(a.addingReportingOverflow(b), what(), "\(a) + \(b)")
    }

    public static func difference(_ a: Int64, _ b: Int64, _ what: @autoclosure () -> String) throws(DomainError) -> Int64 {
        try result(a.subtractingReportingOverflow(b), what(), "\(a) - \(b)")
    }

    public static func product(_ a: Int64, _ b: Int64, _ what: @autoclosure () -> String) throws(DomainError) -> Int64 {
        try result(a.multipliedReportingOverflow(by: b), what(), "\(a) × \(b)")
    }

    private static func result(_ r: (partialValue: Int64, overflow: Bool), _ what: String, _ expression: String) throws(DomainError) -> Int64 {
        guard !r.overflow else { throw DomainError("\(what) overflows Int64: \(expression)") }
        return r.partialValue
    }
}
