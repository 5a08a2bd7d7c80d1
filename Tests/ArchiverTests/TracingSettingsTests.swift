import Foundation
import TestSupport
import Testing

/// OpenTelemetry settings that swift-otel would stop the process on (a `fatalError` for what it
/// knows but does not implement) or that would silently break tracing are refused at start with
/// one line naming the variable; nothing is left running and nothing crashes.
@Suite("tracing settings")
struct TracingSettingsTests {
    @Test(arguments: [
        ("OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        ("OTEL_TRACES_SAMPLER=jaeger_remote", "OTEL_TRACES_SAMPLER"),
        ("OTEL_TRACES_SAMPLER_ARG=2", "OTEL_TRACES_SAMPLER_ARG"),
        ("OTEL_PROPAGATORS=tracecontext,b3", "OTEL_PROPAGATORS"),
        ("OTEL_PROPAGATORS=none", "OTEL_PROPAGATORS"),
        ("OTEL_PROPAGATORS=", "OTEL_PROPAGATORS"),
        ("OTEL_BSP_SCHEDULE_DELAY=0", "OTEL_BSP_SCHEDULE_DELAY"),
        ("OTEL_TRACES_EXPORTER=zipkin", "OTEL_TRACES_EXPORTER"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318", "endpoint"),
    ])
    func anUnsupportedSettingIsAOneLineErrorAtStart(setting: String, named: String) async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("otel-\(UUID()).txt").path
        // `timeout`: a build that accepted the setting would run until stopped.
        let status = await shell(
            """
            env -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT -u OTEL_SDK_DISABLED -u OTEL_TRACES_EXPORTER -u OTEL_TRACES_SAMPLER \
            OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 '\(setting)' timeout 30 '\(binary("archiver"))' run \
            --brokers '\(brokers)' --mongo-uri '\(mongoURI)' --database otel-settings --admin-port \(freePort()) >'\(out)' 2>&1
            """)
        let output = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(status == 64, "\(setting): \(output)")
        let lines = output.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains(named) && lines[0].hasPrefix("archiver: OpenTelemetry tracing: "), "\(output)")
        try? FileManager.default.removeItem(atPath: out)
    }
}
