/// Where a test disturbs the archiver between two of its writes, to show that a crash or a
/// racing instance there loses nothing. Production runs with none set: each point is one nil check.
struct ArchiverFaults: Sendable {
    /// After a batch's compensation lookup, before its history is written.
    var beforeWritingHistory: (@Sendable (BatchPlan) async throws -> Void)?
    /// After a compensation listed the saga's documents (by saga id), before it deletes them.
    var beforeDeletingHistory: (@Sendable (String) async throws -> Void)?
}
