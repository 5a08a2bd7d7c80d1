// swift-tools-version:6.1
import Foundation
import PackageDescription

// librdkafka: Debian ships 2.0.2, which cannot talk to the local broker (Tansu), so
// scripts/bootstrap links .deps/lib/librdkafka.so to the 2.16 build inside PyPI's
// confluent-kafka wheel. It is linked by path (a -L would lose to the system folder that
// libmongoc's pkg-config adds) with an rpath, so `swift build`/`swift test` need no
// environment. RDKAFKA_LIB_DIR names another folder (the Docker image's build puts the same
// wheel's library in /usr/local/lib/rdkafka); where neither exists, the system library is used.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let rdkafkaLibDir = ProcessInfo.processInfo.environment["RDKAFKA_LIB_DIR"] ?? "\(packageRoot)/.deps/lib"
let rdkafkaLinker: [LinkerSetting] =
    FileManager.default.fileExists(atPath: "\(rdkafkaLibDir)/librdkafka.so")
    ? [.unsafeFlags(["-Xlinker", "\(rdkafkaLibDir)/librdkafka.so", "-Xlinker", "-rpath", "-Xlinker", rdkafkaLibDir])]
    : [.linkedLibrary("rdkafka")]

let log: Target.Dependency = .product(name: "Logging", package: "swift-log")
let metrics: Target.Dependency = .product(name: "Metrics", package: "swift-metrics")
let lifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let grdb: Target.Dependency = .product(name: "GRDB", package: "GRDB.swift")
let hummingbird: Target.Dependency = .product(name: "Hummingbird", package: "hummingbird")
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let crypto: Target.Dependency = .product(name: "Crypto", package: "swift-crypto")

let package = Package(
    name: "commerce-archiver",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "archiver", targets: ["ArchiverCLI"]),
        .executable(name: "archiver-bench", targets: ["Bench"]),
        .executable(name: "commerce", targets: ["CommerceCLI"]),
        // For `Benchmarks/` (a package of its own): the archiver's hot path, `HotPath`.
        .library(name: "Archiver", targets: ["Archiver"]),
        .library(name: "Kafka", targets: ["Kafka"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),  // PostgreSQL's TLS
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.1.0"),
        // Bearer tokens on the HTTP API: the request context and middleware shape, and JWT verification.
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.0.0"),
        // OTLP/HTTP only: the gRPC exporter would add grpc-swift to every build for nothing.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.0.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // C bindings: nothing above Kafka/Mongo sees a C type.
        .systemLibrary(name: "CRdKafka", path: "Sources/CRdKafka"),
        .systemLibrary(
            name: "CMongoc", path: "Sources/CMongoc", pkgConfig: "libmongoc-1.0",
            providers: [.apt(["libmongoc-dev", "libbson-dev"])]),

        .target(name: "Kafka", dependencies: ["CRdKafka", log], linkerSettings: rdkafkaLinker),
        .target(name: "Mongo", dependencies: ["CMongoc"]),
        .target(name: "Events"),
        .target(
            name: "Archiver",
            dependencies: [
                "Kafka", "Mongo", "Events", "Telemetry", log, lifecycle, crypto,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(
            name: "AdminServer",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                metrics, lifecycle, log,
            ]),
        // Spans over the saga's hops (swift-distributed-tracing's API), made only when an exporter is on.
        .target(name: "Telemetry", dependencies: ["Events", .product(name: "Tracing", package: "swift-distributed-tracing")]),
        .target(
            name: "CLISupport",
            dependencies: [
                "Kafka", "Telemetry", argumentParser, log, lifecycle, .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ]),
        .executableTarget(
            name: "ArchiverCLI",
            dependencies: [
                "CLISupport", "Archiver", "AdminServer", "Kafka", "Mongo", "Events", argumentParser, log, metrics, lifecycle,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),

        // A service's database, as domain code sees it, and its two homes: an SQLite file of one
        // process, or a PostgreSQL schema shared by several.
        .target(name: "SQLStore"),
        .target(name: "SQLiteStore", dependencies: ["SQLStore", grdb]),
        .target(
            name: "PostgresStore",
            dependencies: [
                "SQLStore", log, .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),

        // Commerce: four domain services on one reliable-messaging runtime (outbox + inbox).
        .target(
            name: "ServiceRuntime",
            dependencies: [
                "Kafka", "Events", "SQLStore", "Telemetry", log, metrics, lifecycle, .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]),
        // Who a request acts as: JWT verification (jwt-kit) and the identity it yields.
        .target(name: "CommerceAuth", dependencies: [.product(name: "JWTKit", package: "jwt-kit"), crypto]),
        .target(
            name: "CommerceAPI",
            dependencies: [
                "ServiceRuntime", "Events", "SQLStore", "CommerceAuth", hummingbird, .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "HTTPTypes", package: "swift-http-types"), crypto,
            ], resources: [.embedInCode("openapi.json")]),
        .target(name: "UserService", dependencies: ["ServiceRuntime", "CommerceAPI", "Events", "SQLStore", hummingbird]),
        .target(name: "ProductService", dependencies: ["ServiceRuntime", "CommerceAPI", "Events", "SQLStore", hummingbird]),
        .target(name: "OrderService", dependencies: ["ServiceRuntime", "CommerceAPI", "Events", "SQLStore", hummingbird]),
        .target(name: "PaymentService", dependencies: ["ServiceRuntime", "CommerceAPI", "Events", "SQLStore", hummingbird]),
        // The HTTP face of `commerce serve`: every service's routes, /healthz, /openapi.json; and the
        // catalog of services (ServiceCatalog) that `serve` starts and the router serves.
        .target(
            name: "CommerceServer",
            dependencies: [
                "CommerceAPI", "CommerceAuth", "ServiceRuntime", "UserService", "ProductService", "OrderService", "PaymentService", hummingbird,
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "Prometheus", package: "swift-prometheus"), .product(name: "HTTPTypes", package: "swift-http-types"),
                "Telemetry", .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]),
        // Its HTTP client is SwiftNIO's (already under Hummingbird): simulate shares the machine it measures.
        .target(
            name: "Simulator",
            dependencies: [
                "Archiver", "Mongo", log, .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .executableTarget(
            name: "CommerceCLI",
            dependencies: [
                // The services only through CommerceServer's ServiceCatalog.
                "CLISupport", "ServiceRuntime", "CommerceAPI", "CommerceAuth", "CommerceServer", "SQLStore", "SQLiteStore", "PostgresStore",
                "Simulator",
                "AdminServer", "Kafka", "Mongo", argumentParser, log, lifecycle, hummingbird,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),

        // Server limits for scripts/bench: raw libmongoc bulk inserts and upserts, raw consume rate.
        .executableTarget(name: "Bench", dependencies: ["Archiver", "CMongoc", "Kafka"]),

        .testTarget(name: "EventsTests", dependencies: ["Events", "Archiver"]),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka"]),
        .testTarget(name: "MongoTests", dependencies: ["Mongo"]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "CommerceTests",
            dependencies: [
                "TestSupport",
                "ServiceRuntime", "CommerceAPI", "CommerceServer", "UserService", "ProductService", "OrderService", "PaymentService",
                "SQLStore", "SQLiteStore", "PostgresStore", "Simulator", "Archiver", "Kafka", "Mongo", "Events", grdb, log, hummingbird,
                "CommerceAuth", .product(name: "JWTKit", package: "jwt-kit"), crypto,
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        .testTarget(
            name: "SQLStoreTests",
            dependencies: ["TestSupport", "SQLStore", "SQLiteStore", "PostgresStore", log, .product(name: "PostgresNIO", package: "postgres-nio")]),
        .testTarget(name: "ArchiverTests", dependencies: ["TestSupport", "Archiver", "Kafka", "Mongo", "Events", log]),
    ],
    swiftLanguageModes: [.v6]
)
