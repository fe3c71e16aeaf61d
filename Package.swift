// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "mlhook",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mlhook", targets: ["mlhook"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.20"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // libcrypto only (HMAC, CRYPTO_memcmp, RAND_bytes); pkg-config "libcrypto" keeps libssl out of the binary.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        // zlib's crc32 for the body log (bench/crc32.sh: 3.3 µs per 7 KB body against 5.1 µs for the slicing-by-8 we had).
        .systemLibrary(
            name: "CZlibCRC",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        // prctl wrappers (PR_SET_DUMPABLE): header-only, nothing to link.
        .systemLibrary(name: "CProcessControl"),
        // Child processes through posix_spawn (git, aml-local's runs and scoring), not Foundation's Process.
        .target(name: "ChildProcess", dependencies: ["CProcessControl"]),
        .target(
            name: "Signing",
            dependencies: [
                "COpenSSL",
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(
            name: "MLHookCore",
            dependencies: [
                "Signing",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "Store",
            dependencies: [
                "MLHookCore", "CZlibCRC",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "MLHookServer",
            dependencies: [
                "Signing", "MLHookCore", "Store", "AMLLocal", "AzureML", "ChildProcess",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ]
        ),
        .target(
            name: "AMLLocal",
            dependencies: [
                "MLHookCore", "Signing", "ChildProcess", "CProcessControl", "CZlibCRC",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "MultipartKit", package: "multipart-kit"),
            ]
        ),
        .target(
            name: "AzureML",
            dependencies: [
                "MLHookCore", "Signing",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]
        ),
        .executableTarget(
            name: "mlhook",
            dependencies: [
                "MLHookServer", "MLHookCore", "Store", "Signing", "AMLLocal", "AzureML", "CProcessControl", "ChildProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Fixtures (real webhook payloads copied byte for byte from ../shared/fixtures, with their SOURCES.md)
        // and helpers shared by the test targets.
        .target(
            name: "TestSupport",
            dependencies: [
                "AzureML", "MLHookCore", "ChildProcess",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport",
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "SigningTests",
            dependencies: ["Signing", .product(name: "HTTPTypes", package: "swift-http-types")]
        ),
        .testTarget(
            name: "MLHookCoreTests",
            dependencies: ["MLHookCore", "TestSupport", .product(name: "Yams", package: "Yams")]
        ),
        .testTarget(
            name: "AzureMLTests",
            dependencies: [
                "AzureML", "AMLLocal", "MLHookCore", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "AMLLocalTests",
            dependencies: [
                "AMLLocal", "MLHookCore", "TestSupport", "ChildProcess",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]
        ),
        .testTarget(
            name: "MLHookServerTests",
            dependencies: [
                "MLHookServer", "Store", "Signing", "MLHookCore", "TestSupport", "AMLLocal", "AzureML", "ChildProcess",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The store contract suite (every role, run against every backend) and the SQLite backend's own tests.
        .testTarget(
            name: "StoreTests",
            dependencies: [
                "Store", "MLHookCore", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)

// libFuzzer harnesses (Fuzz/), built only by scripts/fuzz.sh: `MLHOOK_FUZZ=1 swift build --sanitize=fuzzer,address`.
// Kept out of every other build, where a binary without a main would not link.
if Context.environment["MLHOOK_FUZZ"] == "1" {
    package.targets += [
        .executableTarget(
            name: "FuzzCore",
            dependencies: ["MLHookCore", "Signing", .product(name: "HTTPTypes", package: "swift-http-types")],
            path: "Fuzz/FuzzCore"
        ),
        .executableTarget(name: "FuzzAMLLocal", dependencies: ["AMLLocal"], path: "Fuzz/FuzzAMLLocal"),
    ]
}
