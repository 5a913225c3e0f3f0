// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "sextant",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sextant", targets: ["sextant"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    ],
    targets: [
        .target(name: "SextantModel", swiftSettings: swiftSettings),
        .systemLibrary(name: "CSnappy", path: "Sources/CSnappy", providers: [.apt(["libsnappy-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", providers: [.apt(["libzstd-dev"])]),
        // RE2 (libre2-dev) behind a C header: Prometheus's regular expressions in linear time.
        .target(name: "CRE2", path: "Sources/CRE2", linkerSettings: [.linkedLibrary("re2")]),
        // Code generated from proto/ by scripts/generate-protos.sh; only Ingest and Server use it.
        .target(
            name: "SextantWire",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SextantIngest",
            dependencies: [
                "SextantModel",
                "SextantWire",
                "CSnappy",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SextantMigrations",
            path: "migrations",
            // Every numbered migration, compiled into the binary (a new file must be added here and
            // to `SextantMigrations.all` to ship).
            resources: [
                .embedInCode("0001_create_calls_and_spans.sql"),
                .embedInCode("0002_create_tcp_connections_and_logs.sql"),
                .embedInCode("0003_create_metric_series.sql"),
                .embedInCode("0004_create_call_rollups.sql"),
                .embedInCode("0005_index_spans_for_traces.sql"),
                .embedInCode("0006_create_metric_rollups.sql"),
                .embedInCode("0007_rollup_sketch_blobs_and_tiers.sql"),
                .embedInCode("0008_span_blocks.sql"),
                .embedInCode("0009_calls_without_random_key_indexes.sql"),
                .embedInCode("0010_call_examples.sql"),
                .embedInCode("0011_call_blocks.sql"),
                .embedInCode("0012_call_blocks_rolled_up_and_row_ids.sql"),
                .embedInCode("0013_metric_chunks.sql"),
                .embedInCode("0014_istio_counters.sql"),
            ]
        ),
        .target(
            name: "SextantStore",
            dependencies: [
                "SextantModel",
                "SextantMigrations",
                "CZstd",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "SextantAnalytics", dependencies: ["SextantModel"], swiftSettings: swiftSettings),
        .target(
            name: "SextantServer",
            dependencies: [
                "SextantModel", "SextantIngest", "SextantStore", "SextantAnalytics", "SextantWire", "CRE2", "CSnappy",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            // The operator's page, compiled into the binary.
            resources: [
                .embedInCode("Page/index.html"),
                .embedInCode("Page/sextant.css"),
                .embedInCode("Page/sextant.js"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sextant",
            dependencies: [
                "SextantServer", "SextantStore", "SextantIngest", "SextantModel", "SextantAnalytics",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "SextantFixtures", path: "Tests/Fixtures", resources: [.copy("envoy")]),
        // Query and storage benchmark (results in the README): swift run -c release sextant-bench
        .executableTarget(
            name: "sextant-bench",
            dependencies: [
                "SextantStore", "SextantAnalytics", "SextantModel",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Open-loop ingest load generator and its anchors (README, "Ingest (sextant-loadgen)"):
        // scripts/bench-ingest.sh. The pure parts (schedule, templates, /proc readings) are a library
        // so they have unit tests.
        .target(name: "SextantLoadgen", dependencies: ["SextantModel"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "sextant-loadgen",
            dependencies: [
                "SextantLoadgen", "SextantIngest", "SextantStore", "SextantModel", "SextantWire", "SextantServer", "CSnappy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // Fuzz targets, one per decoder (README, "Fuzzing"): scripts/fuzz.sh builds sextant-fuzz with libFuzzer.
        .target(
            name: "SextantFuzz",
            dependencies: [
                "SextantIngest", "SextantModel", "SextantWire",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "sextant-fuzz", dependencies: ["SextantFuzz"], swiftSettings: swiftSettings),
        .testTarget(name: "SextantModelTests", dependencies: ["SextantModel"]),
        .testTarget(name: "SextantLoadgenTests", dependencies: ["SextantLoadgen"]),
        .testTarget(
            name: "SextantIngestTests",
            dependencies: [
                "SextantIngest", "SextantModel", "SextantFixtures", "SextantWire", "CSnappy",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"), .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SextantStoreTests",
            dependencies: [
                "SextantStore", "SextantModel", "SextantIngest", "SextantFixtures",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "SextantFuzzTests", dependencies: ["SextantFuzz"]),
        .testTarget(name: "SextantAnalyticsTests", dependencies: ["SextantAnalytics", "SextantModel"]),
        .testTarget(
            name: "SextantServerTests",
            dependencies: [
                "SextantServer", "SextantModel", "SextantStore", "SextantAnalytics", "SextantFixtures", "SextantWire",
                "CSnappy",
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
    ]
)
