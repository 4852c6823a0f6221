// swift-tools-version: 6.2
import PackageDescription

/// Strict settings shared by every target: Swift 6 language mode with complete concurrency checking.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "dfe",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "dfe", targets: ["dfe"])
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", exact: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
    ],
    targets: [
        // Pure core: model, spec hashing, diff and planner. No I/O.
        .target(name: "DFECore", swiftSettings: strict),
        // Manifest and config loading with strict, located validation.
        .target(
            name: "DFEManifest",
            dependencies: ["DFECore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // The observed state: one SQLite file, frozen migrations, runs, journal, lease.
        .target(
            name: "DFEState",
            dependencies: ["DFECore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        // ProvisionManager, sub-provisioner protocols and the driver registry.
        .target(name: "DFEProvision", dependencies: ["DFECore"], swiftSettings: strict),
        // Built-in drivers: storage/local, database/sqlite, instance/dreamfactory.
        .target(
            name: "DFEDrivers",
            dependencies: ["DFEProvision", .product(name: "GRDBSQLite", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        // libpq from the system (Debian's libpq-dev).
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // database/postgres driver on libpq.
        .target(name: "DFEPostgres", dependencies: ["DFEProvision", "CLibPQ"], swiftSettings: strict),
        // The state in PostgreSQL (`--state postgres://`), on DFEPostgres's libpq connection.
        .target(
            name: "DFEStatePostgres", dependencies: ["DFECore", "DFEState", "DFEPostgres", "DFEProvision"],
            swiftSettings: strict),
        // The MariaDB/MySQL C client from the system (Debian's libmariadb-dev).
        .systemLibrary(name: "CMariaDB", pkgConfig: "libmariadb", providers: [.apt(["libmariadb-dev"])]),
        // database/mysql driver (MySQL 8, MariaDB 10.11+) on the MariaDB C client.
        .target(name: "DFEMySQL", dependencies: ["DFEProvision", "CMariaDB"], swiftSettings: strict),
        // The reconciler: observe, plan, apply, journal, lease, backoff.
        .target(
            name: "DFEReconciler",
            dependencies: [
                "DFECore", "DFEManifest", "DFEState", "DFEProvision",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The long-running controller: watcher, git source, HTTP surface, service group.
        .target(
            name: "DFEController",
            dependencies: [
                "DFECore", "DFEProvision", "DFEState", "DFEReconciler",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // The command layer: turns typed errors into messages and exit codes.
        .target(
            name: "DFECommands",
            dependencies: [
                "DFECore", "DFEManifest", "DFEState", "DFEProvision", "DFEDrivers", "DFEPostgres",
                "DFEStatePostgres", "DFEMySQL", "DFEReconciler", "DFEController",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "dfe", dependencies: ["DFECommands"], swiftSettings: strict),
        // Shared helpers for tests: temporary workspaces, example manifests, running the dfe binary.
        .target(
            name: "DFETestSupport",
            dependencies: [
                "DFECore", "DFEReconciler", "DFEDrivers", "DFEState", "DFEProvision",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Tests/Support",
            swiftSettings: strict
        ),
        .testTarget(name: "DFECoreTests", dependencies: ["DFECore"], swiftSettings: strict),
        .testTarget(
            name: "DFEManifestTests", dependencies: ["DFEManifest", "DFECore", "DFETestSupport"], swiftSettings: strict),
        .testTarget(
            name: "DFEStateTests",
            dependencies: [
                "DFEState", "DFEStatePostgres", "DFEPostgres", "DFEReconciler", "DFECore", "DFETestSupport",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "DFEDriversTests", dependencies: ["DFEDrivers", "DFEProvision", "DFECore", "DFETestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "DFEPostgresTests",
            dependencies: ["DFEPostgres", "DFEProvision", "DFECore", "DFEReconciler", "DFEDrivers", "DFETestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DFEMySQLTests",
            dependencies: ["DFEMySQL", "DFEProvision", "DFECore", "DFEReconciler", "DFEDrivers", "DFETestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DFEReconcilerTests",
            dependencies: ["DFEReconciler", "DFEDrivers", "DFEState", "DFECore", "DFETestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DFEControllerTests",
            dependencies: [
                "DFEController", "DFEReconciler", "DFECore", "DFEDrivers", "DFEState", "DFEStatePostgres",
                "DFETestSupport", "dfe",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "DFECommandsTests",
            dependencies: ["DFECommands", "DFETestSupport", "dfe"],
            exclude: ["Golden"],
            swiftSettings: strict
        ),
    ]
)
