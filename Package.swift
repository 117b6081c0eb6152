// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // As SwiftNIO does for its own modules: no run-time exclusivity checks in release builds
    // (ByteBuffer code inlined into Ferry's modules otherwise checks every access to its
    // storage: about a tenth of the CPU of the change path). Debug builds, which the tests
    // use, keep them; the compiler's static checks stay on in both.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "ferry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        .library(name: "PostgresWire", targets: ["PostgresWire"]),
        .library(name: "PGOutput", targets: ["PGOutput"]),
        .library(name: "PostgresReplication", targets: ["PostgresReplication"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        // Pure: frontend/backend message codecs, LSN, connection strings, SCRAM. No channels.
        .target(
            name: "PostgresWire",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Pure: versioned pgoutput decoder (v1-v4), total over arbitrary input.
        .target(
            name: "PGOutput",
            dependencies: [
                "PostgresWire",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The NIO client: TLS, auth, simple query, CopyOut, CopyBoth, ReplicationStream.
        .target(
            name: "PostgresReplication",
            dependencies: [
                "PostgresWire",
                "PGOutput",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The domain: changes, destinations and their contract, pipeline, positions, errors.
        .target(
            name: "FerryCore",
            dependencies: [
                "PostgresWire",
                "PGOutput",
                "PostgresReplication",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // The admin HTTP server: /healthz, /readyz, /metrics (Prometheus), /status.
        .target(
            name: "FerryAdmin",
            dependencies: [
                "FerryCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Debian's SQLite (libsqlite3-dev), for the SQLite replica and the local state file.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // The embedded default destination (a SQLite replica) and the SQLite state store.
        .target(
            name: "FerrySQLite",
            dependencies: ["FerryCore", "CSQLite", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Another PostgreSQL (postgres://): set-based apply, exactly-once via ferry.positions.
        .target(
            name: "FerryPostgres",
            dependencies: [
                "FerryCore",
                "PostgresWire",
                "PostgresReplication",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // Debian's librdkafka (librdkafka-dev, 2.0 or newer), for the Kafka destination.
        .systemLibrary(name: "CRdkafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // Kafka (kafka://): Debezium-compatible events through librdkafka's idempotent producer.
        .target(
            name: "FerryKafka",
            dependencies: [
                "FerryCore",
                "CRdkafka",
                "PostgresWire",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // JSON lines (a file or stdout) in the Debezium-compatible envelope.
        .target(
            name: "FerryJSON",
            dependencies: ["FerryCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // ArgumentParser commands; the composition root.
        .target(
            name: "FerryCLI",
            dependencies: [
                "FerryCore",
                "FerrySQLite",
                "FerryJSON",
                "FerryPostgres",
                "FerryKafka",
                "FerryLocalPostgres",
                "FerryAdmin",
                "PostgresReplication",
                "PostgresWire",
                "PGOutput",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ferry",
            dependencies: ["FerryCLI"],
            swiftSettings: strict
        ),
        // Throwaway local PostgreSQL clusters (initdb, start as an unprivileged user, reaper):
        // for `ferry demo` and the test harness.
        .target(name: "FerryLocalPostgres", swiftSettings: strict),
        // The test harness: throwaway PostgreSQL servers, fresh databases, timed waits.
        .target(
            name: "FerryTestSupport",
            dependencies: [
                "FerryLocalPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PostgresWireTests",
            dependencies: [
                "PostgresWire",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PGOutputTests",
            dependencies: [
                "PGOutput",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PostgresReplicationTests",
            dependencies: [
                "PostgresReplication",
                "PGOutput",
                "PostgresWire",
                "FerryTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FerryCoreTests",
            dependencies: [
                "FerryCore",
                "FerryAdmin",
                "FerryPostgres",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                "FerryTestSupport",
                "PostgresReplication",
                "PostgresWire",
                "PGOutput",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FerrySQLiteTests",
            dependencies: ["FerrySQLite", "FerryCore", "CSQLite", "FerryTestSupport", "PostgresWire"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FerryJSONTests",
            dependencies: ["FerryJSON", "FerryCore", "FerryTestSupport", "PostgresWire"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FerryKafkaTests",
            dependencies: ["FerryKafka", "FerryCore", "CRdkafka", "FerryTestSupport", "FerryLocalPostgres", "PostgresWire"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FerryTestSupportTests",
            dependencies: [
                "FerryTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FerryCLITests",
            dependencies: ["FerryCLI", "FerryCore", "FerrySQLite", "FerryKafka", "FerryTestSupport", "PostgresWire"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
