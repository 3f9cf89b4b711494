// swift-tools-version: 6.0
// Fledge: train small GPT-style language models from scratch, in Swift.
// Module plan and dependency order: ARCHITECTURE.md ("Modules").

import Foundation
import PackageDescription

/// Release builds are compiled for the CPU they are built on (`-target-cpu native`): the SIMD kernels need
/// AVX2/AVX-512 to vectorise. Set `FLEDGE_TARGET_CPU` (e.g. `haswell`) to build for another machine.
let targetCPU = ProcessInfo.processInfo.environment["FLEDGE_TARGET_CPU"] ?? "native"

/// Flags for the numeric targets; see PERF-NOTES.md ("Swift") for why each one matters.
let numericSettings: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
    .unsafeFlags(["-target-cpu", targetCPU, "-Xcc", "-fno-math-errno"]),
]

let package = Package(
    name: "Fledge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fledge", targets: ["fledge"]),
        .library(name: "FledgeKit", targets: ["FledgeKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(name: "FledgeTensor", dependencies: ["COpenBLAS"], swiftSettings: numericSettings),
        .target(name: "FledgeTokenizer", swiftSettings: numericSettings),
        .target(name: "FledgeModel", dependencies: ["FledgeTensor"], swiftSettings: numericSettings),
        .target(name: "FledgeData", dependencies: ["FledgeTokenizer"], swiftSettings: numericSettings),
        .target(
            name: "FledgeGeneration", dependencies: ["FledgeModel", "FledgeTokenizer", "FledgeData"],
            swiftSettings: numericSettings),
        .target(
            name: "FledgeTraining", dependencies: ["FledgeModel", "FledgeData", "FledgeTokenizer", "FledgeGeneration"],
            swiftSettings: numericSettings),
        .target(
            name: "FledgeKit",
            dependencies: [
                "FledgeTensor", "FledgeTokenizer", "FledgeModel", "FledgeData", "FledgeGeneration", "FledgeTraining",
            ],
            swiftSettings: numericSettings),
        .executableTarget(
            name: "fledge",
            dependencies: [
                "FledgeKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: numericSettings
        ),
        .testTarget(name: "FledgeTensorTests", dependencies: ["FledgeTensor"], swiftSettings: numericSettings),
        .testTarget(
            name: "FledgeTokenizerTests",
            dependencies: ["FledgeTokenizer"],
            resources: [.copy("Fixtures")],
            swiftSettings: numericSettings
        ),
        .testTarget(name: "FledgeDataTests", dependencies: ["FledgeData"], swiftSettings: numericSettings),
        .testTarget(
            name: "FledgeGenerationTests", dependencies: ["FledgeGeneration"], swiftSettings: numericSettings),
        .testTarget(
            name: "FledgeTrainingTests", dependencies: ["FledgeTraining", "FledgeKit"], swiftSettings: numericSettings),
        .testTarget(
            name: "FledgeModelTests",
            dependencies: ["FledgeModel"],
            resources: [.copy("Fixtures")],
            swiftSettings: numericSettings
        ),
    ]
)
