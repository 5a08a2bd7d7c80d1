/// Topic names of the contract (shared/contract.md §3).
public enum Topic {
    public static let order = "commerce.order"
    public static let product = "commerce.product"
    public static let balance = "commerce.balance"
    public static let payment = "commerce.payment"
    public static let compensation = "archive.compensation"
    public static let deadLetters = "archive.dlq"
}

/// Event `type` values of the contract.
public enum EventType {
    public static let orderRequested = "commerce.order.requested"
    public static let orderPlaced = "commerce.order.placed"
    public static let orderCancelled = "commerce.order.cancelled"
    public static let orderPaid = "commerce.order.paid"
    public static let orderStatusChangeFailed = "commerce.order.status-change-failed"
    public static let orderStatusRestored = "commerce.order.status-restored"
    public static let stockDecreased = "commerce.stock.decreased"
    public static let stockDecreaseFailed = "commerce.stock.decrease-failed"
    public static let stockRestored = "commerce.stock.restored"
    public static let cartRemoved = "commerce.cart.removed"
    public static let cartRemoveFailed = "commerce.cart.remove-failed"
    public static let cartRestored = "commerce.cart.restored"
    public static let balanceCharged = "commerce.balance.charged"
    public static let balanceDeducted = "commerce.balance.deducted"
    public static let balanceDeductFailed = "commerce.balance.deduct-failed"
    public static let balanceRestored = "commerce.balance.restored"
    public static let paymentRequested = "commerce.payment.requested"
    public static let paymentCompleted = "commerce.payment.completed"
    public static let paymentFailed = "commerce.payment.failed"
    public static let historyDeleted = "archive.history.deleted"

    /// A saga step that failed: the events that start a compensation.
    public static func isFailure(_ type: String) -> Bool { type.hasSuffix("-failed") || type == paymentFailed }

    /// Every type above.
    public static let all: Set<String> = [
        orderRequested, orderPlaced, orderCancelled, orderPaid, orderStatusChangeFailed, orderStatusRestored,
        stockDecreased, stockDecreaseFailed, stockRestored, cartRemoved, cartRemoveFailed, cartRestored,
        balanceCharged, balanceDeducted, balanceDeductFailed, balanceRestored,
        paymentRequested, paymentCompleted, paymentFailed, historyDeleted,
    ]
}

/// Dead-letter header names (contract §6).
public enum DeadLetterHeader {
    public static let originalTopic = "x-original-topic"
    public static let originalPartition = "x-original-partition"
    public static let originalOffset = "x-original-offset"
    public static let errorKind = "x-error-kind"
    public static let errorMessage = "x-error-message"
    public static let attempts = "x-attempts"
    public static let failedAt = "x-failed-at"
    /// Only on a dead letter too large for the broker: its value is truncated, and the whole
    /// message is kept in MongoDB under `payloadRef`, with its original size and SHA-256.
    public static let originalSize = "x-original-size"
    public static let originalSHA256 = "x-original-sha256"
    public static let payloadRef = "x-payload-ref"
}
