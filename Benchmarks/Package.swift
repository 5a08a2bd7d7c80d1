// swift-tools-version:6.1
import PackageDescription

// The archiver's hot-path benchmarks: a package of its own, so the main package does not
// depend on the benchmark package (ordo-one/benchmark, formerly package-benchmark). Run from the
// repository root:
//   swift package --package-path Benchmarks benchmark
//   scripts/check-benchmarks                    (what CI runs: the committed p90 thresholds)
// `MallocInterposer` only: the default traits add the ARC runtime interposer, a package that is
// not in the local copy (and whose ARC metrics crash on Linux with Swift 6.3).
let package = Package(
    name: "benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "commerce-archiver", path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "HotPath",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Archiver", package: "commerce-archiver"),
                .product(name: "Kafka", package: "commerce-archiver"),
            ],
            path: "Benchmarks/HotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
