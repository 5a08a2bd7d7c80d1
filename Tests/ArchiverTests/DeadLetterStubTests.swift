import Events
import Kafka
import Testing

@testable import Archiver

/// The stand-in for a dead letter the broker refuses, without any server.
@Suite("Dead-letter stubs")
struct DeadLetterStubTests {
    func letter(value: String) -> DeadLetter {
        DeadLetter(
            message: KafkaMessage(topic: "t", partition: 0, offset: 7, key: Array("k".utf8), value: Array(value.utf8)),
            origin: Origin(topic: "t", partition: 0, offset: 7), kind: "rejected", reason: "r", attempts: 1, failedAtMs: 0)
    }

    /// FIPS 180-2's first example: the digest is SHA-256's, written as lowercase hex.
    @Test func theStubCarriesTheOriginalsSizeAndSHA256() {
        let letter = letter(value: "abc")
        let stub = letter.stub(topic: "dlq", valueBytes: 1, keyBytes: 0, sha256: letter.sha256)
        #expect(letter.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(stub.headers.first { $0.name == DeadLetterHeader.originalSHA256 }?.stringValue == letter.sha256)
        #expect(stub.headers.first { $0.name == DeadLetterHeader.originalSize }?.stringValue == "3")
        #expect(stub.value == Array("a".utf8))
    }
}
