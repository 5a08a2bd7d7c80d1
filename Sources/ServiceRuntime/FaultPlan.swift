/// Failures injected on purpose, for tests and demos: each saga step can be made to fail
/// for a share of sagas or for one named saga. The decision is a hash of step and saga, so
/// a redelivered event gets the same answer and a run can be reproduced.
///
/// Syntax (flag `--fault`, env `COMMERCE_FAULTS`): `step=rate` or `step=sagaId`, comma-separated;
/// `*` names every step. Example: `stock.decrease=0.1,payment.complete=pay-7`.
public struct FaultPlan: Sendable, Equatable, CustomStringConvertible {
    /// The steps that can fail, in saga order.
    public static let steps = ["stock.decrease", "cart.remove", "order.place", "balance.deduct", "order.pay", "payment.complete"]

    enum Rule: Sendable, Equatable {
        case rate(Double)
        case saga(String)
    }

    private(set) var rules: [String: [Rule]] = [:]

    public init() {}

    public init(parsing text: String) throws(FaultPlanError) {
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            let pieces = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pieces.count == 2, !pieces[1].isEmpty else { throw FaultPlanError("fault '\(part)' must be step=rate or step=sagaId") }
            let step = pieces[0]
            guard step == "*" || Self.steps.contains(step) else {
                throw FaultPlanError("unknown fault step '\(step)'; steps are \(Self.steps.joined(separator: ", ")) or *")
            }
            let rule: Rule
            if let rate = Double(pieces[1]) {
                guard (0...1).contains(rate) else { throw FaultPlanError("fault rate for '\(step)' must be 0-1, got \(pieces[1])") }
                rule = .rate(rate)
            } else {
                rule = .saga(pieces[1])
            }
            for s in step == "*" ? Self.steps : [step] { rules[s, default: []].append(rule) }
        }
    }

    public var isEmpty: Bool { rules.isEmpty }

    /// Whether `step` fails for `sagaId`.
    public func fails(_ step: String, saga sagaId: String) -> Bool {
        guard let stepRules = rules[step] else { return false }
        return stepRules.contains { rule in
            switch rule {
            case .saga(let id): id == sagaId
            case .rate(let rate): Self.unitHash("\(step)|\(sagaId)") < rate
            }
        }
    }

    public var description: String {
        rules.keys.sorted().map { step in
            rules[step]!.map { rule in
                switch rule {
                case .rate(let r): "\(step)=\(r)"
                case .saga(let s): "\(step)=\(s)"
                }
            }.joined(separator: ",")
        }.joined(separator: ",")
    }

    /// FNV-1a, then a 64-bit finalizer (FNV alone leaves the top bits of "order-1" and
    /// "order-2" nearly equal), mapped to [0, 1): stable across runs, unlike `Hasher`.
    static func unitHash(_ text: String) -> Double {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
        hash ^= hash >> 31
        return Double(hash >> 11) / Double(1 << 53)
    }
}

public struct FaultPlanError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ message: String) { description = message }
}
