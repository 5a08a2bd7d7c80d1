import Foundation
import Logging
import OTel
import ServiceLifecycle
import Telemetry
import Tracing

/// OpenTelemetry traces for a process: exported by OTLP/HTTP (swift-otel) when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and not at
/// all otherwise (nor with `OTEL_SDK_DISABLED=true`). The standard `OTEL_*` variables configure
/// the rest (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_BSP_SCHEDULE_DELAY`, ...).
/// Metrics stay on /metrics.
public enum TracingBootstrap {
    /// Bootstraps the global tracer; returns the exporter's service, for the process's
    /// `ServiceGroup` (it flushes what is pending on shutdown), or nil when tracing is off.
    /// Throws a one-line error for a setting this build cannot honour.
    public static func bootstrap(serviceName: String, logger: Logger) throws -> (any Service)? {
        let environment = ProcessInfo.processInfo.environment
        let endpoint = [environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], environment["OTEL_EXPORTER_OTLP_ENDPOINT"]].lazy
            .compactMap { $0 }.first { !$0.isEmpty }
        guard let endpoint, environment["OTEL_SDK_DISABLED"]?.lowercased() != "true" else { return nil }
        try validate(environment, endpoint: endpoint)
        // Nothing would leave the process: no spans are made at all.
        if setting("OTEL_TRACES_EXPORTER", in: environment) == "none" || setting("OTEL_TRACES_SAMPLER", in: environment) == "always_off" {
            return nil
        }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        Telemetry.startExporting()
        logger.info("tracing: OTLP export on", metadata: ["endpoint": "\(endpoint)"])
        return backend.service
    }

    /// A variable's value, trimmed and lowercased; nil when unset or blank.
    static func setting(_ name: String, in environment: [String: String]) -> String? {
        environment[name].map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.flatMap { $0.isEmpty ? nil : $0 }
    }

    public struct Unsupported: Error, CustomStringConvertible {
        public let description: String
    }

    /// swift-otel stops the process (fatalError) on a value it knows but does not implement (the
    /// gRPC protocol, built out here; Jaeger or X-Ray samplers; B3 propagators): such values, and
    /// those that would silently break tracing, are refused here first, with what is supported.
    static func validate(_ environment: [String: String], endpoint: String) throws(Unsupported) {
        func value(_ name: String) -> String? { setting(name, in: environment) }
        func check(_ name: String, _ allowed: [String]) throws(Unsupported) {
            guard let v = value(name), !allowed.contains(v) else { return }
            throw Unsupported(description: "\(name)=\(environment[name] ?? "") is not supported here; use \(allowed.joined(separator: " or "))")
        }
        guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
            throw Unsupported(description: "the OTLP endpoint '\(endpoint)' must be an http:// or https:// URL")
        }
        try check("OTEL_EXPORTER_OTLP_PROTOCOL", ["http/protobuf", "http/json"])
        try check("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", ["http/protobuf", "http/json"])
        try check("OTEL_TRACES_EXPORTER", ["otlp", "none"])
        try check(
            "OTEL_TRACES_SAMPLER",
            ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"])
        if let ratio = value("OTEL_TRACES_SAMPLER_ARG"), !(Double(ratio).map { (0...1).contains($0) } ?? false) {
            throw Unsupported(description: "OTEL_TRACES_SAMPLER_ARG=\(ratio) must be a ratio from 0 to 1")
        }
        // The W3C context is how a span finds its parent: without it every span would start a trace.
        if let propagators = environment["OTEL_PROPAGATORS"],
            propagators.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) != ["tracecontext"]
        {
            throw Unsupported(description: "OTEL_PROPAGATORS=\(propagators) is not supported here; use tracecontext (or leave it unset)")
        }
        // Zero would spin the exporter's timer, drop every span, or never drain the queue.
        for name in [
            "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        ] {
            if let v = value(name), !(Int(v).map { $0 > 0 } ?? false) {
                throw Unsupported(description: "\(name)=\(v) must be a whole number above 0")
            }
        }
    }
}
