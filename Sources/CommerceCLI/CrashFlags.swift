import Foundation
import ServiceRuntime

extension ServiceFaults {
    /// What `serve --crash-after-commit` and `--crash-after-publish` ask, for the fault-scenario
    /// tests that kill the process: it exits at once (status 70) after committing, or after the
    /// broker acknowledged, an event of one of these types.
    static func crashing(afterCommitOf committed: Set<String>, afterPublishOf published: Set<String>) -> ServiceFaults {
        var faults = ServiceFaults()
        if !committed.isEmpty {
            faults.afterCommit = { types in
                if let type = types.first(where: committed.contains) { crash("after committing \(type), before publishing it") }
            }
        }
        if !published.isEmpty {
            faults.afterPublish = { types in
                if let type = types.first(where: published.contains) { crash("after publishing \(type), before deleting it") }
            }
        }
        return faults
    }
}

/// `_exit`, not `exit`: nothing may run after the crash point, not even atexit handlers or buffered output.
private func crash(_ when: String) -> Never {
    FileHandle.standardError.write(Data("commerce: crashing on purpose \(when)\n".utf8))
    _exit(70)
}
