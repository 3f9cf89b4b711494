// swift-tools-version: 6.0
// Fledge: train small GPT-style language models from scratch, in Swift.
// The modules and what each one is for: README.md ("What is here").

import Foundation
import PackageDescription

/// Release builds are compiled for the CPU they are built on (`-target-cpu native`): the SIMD kernels need
/// AVX2/AVX-512 to vectorise. Set `FLEDGE_TARGET_CPU` (e.g. `haswell`) to build for another machine.
let targetCPU = ProcessInfo.processInfo.environment["FLEDGE_TARGET_CPU"] ?? "native"

/// Flags for every target: vectorise for this CPU. Bounds and overflow checks stay on (a bug in a parser or
/// the CLI stops cleanly instead of corrupting memory).
let checkedSettings: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", targetCPU, "-Xcc", "-fno-math-errno"])
]

/// The numeric kernels alone (FledgeTensor: every fast kernel is tested against its plain reference) are built
/// without checks: in their SIMD loops over unsafe pointers, bounds and exclusivity checks cost several times the
/// arithmetic (Scripts/bench_checks.sh times a checked build against this one, interleaved).
let kernelSettings: [SwiftSetting] =
    checkedSettings + [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "Fledge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fledge", targets: ["fledge"]),
        .library(name: "FledgeKit", targets: ["FledgeKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Decompression for Parquet pages: zlib linked, Snappy and Zstandard loaded at run time.
        .target(name: "CFledgeCodecs", linkerSettings: [.linkedLibrary("z"), .linkedLibrary("dl")]),
        // Open MPI for data-parallel training, loaded at run time (dlopen): nothing needs it unless mpirun started us.
        .target(name: "CFledgeMPI", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "FledgeFiles", swiftSettings: checkedSettings),
        .target(name: "FledgeDistributed", dependencies: ["CFledgeMPI"], swiftSettings: checkedSettings),
        // MKL's "is this an Intel CPU?" answered by Fledge (so MKL uses the kernels the CPU's instructions allow on
        // AMD too); exported from every executable that links it, which is how MKL finds it.
        .target(
            name: "CFledgeMKL",
            linkerSettings: [.unsafeFlags(["-Xlinker", "--export-dynamic-symbol=mkl_serv_intel_cpu_true"])]),
        .target(name: "FledgeTensor", dependencies: ["COpenBLAS", "CFledgeMKL"], swiftSettings: kernelSettings),
        .target(name: "FledgeTokenizer", dependencies: ["FledgeFiles"], swiftSettings: checkedSettings),
        .target(name: "FledgeModel", dependencies: ["FledgeTensor", "FledgeFiles"], swiftSettings: checkedSettings),
        .target(
            name: "FledgeData", dependencies: ["FledgeTokenizer", "FledgeFiles", "CFledgeCodecs"],
            swiftSettings: checkedSettings),
        .target(
            name: "FledgeGeneration", dependencies: ["FledgeModel", "FledgeTokenizer", "FledgeData"],
            swiftSettings: checkedSettings),
        .target(
            name: "FledgeTraining",
            dependencies: ["FledgeModel", "FledgeData", "FledgeTokenizer", "FledgeGeneration", "FledgeDistributed"],
            swiftSettings: checkedSettings),
        .target(
            name: "FledgeInterop", dependencies: ["FledgeModel", "FledgeTokenizer", "FledgeData", "FledgeTraining"],
            swiftSettings: checkedSettings),
        .target(
            name: "FledgeServe",
            dependencies: [
                "FledgeGeneration", "FledgeTraining", "FledgeModel", "FledgeTokenizer", "FledgeData", "FledgeTensor",
                "FledgeFiles", .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: checkedSettings),
        .target(
            name: "FledgeKit",
            dependencies: [
                "FledgeFiles", "FledgeTensor", "FledgeTokenizer", "FledgeModel", "FledgeData", "FledgeGeneration",
                "FledgeTraining", "FledgeInterop", "FledgeDistributed",
            ],
            swiftSettings: checkedSettings),
        .executableTarget(
            name: "fledge",
            dependencies: [
                "FledgeKit", "FledgeServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: checkedSettings
        ),
        // Helpers shared by the test targets: scratch folders removed when the test process exits, the bundled
        // corpus and small tokenizers trained on it, the `slow` tag.
        .target(
            name: "FledgeTestSupport", dependencies: ["FledgeTokenizer", "FledgeTensor"],
            path: "Tests/FledgeTestSupport",
            swiftSettings: checkedSettings),
        .testTarget(name: "FledgeTensorTests", dependencies: ["FledgeTensor"], swiftSettings: checkedSettings),
        .testTarget(
            name: "FledgeFilesTests", dependencies: ["FledgeFiles", "FledgeTestSupport"], swiftSettings: checkedSettings
        ),
        .testTarget(
            name: "FledgeTokenizerTests",
            dependencies: ["FledgeTokenizer", "FledgeTestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: checkedSettings
        ),
        // The Parquet fixtures are read in place from the repository (ParquetTests), not bundled.
        .testTarget(
            name: "FledgeDataTests", dependencies: ["FledgeData", "FledgeTestSupport"], exclude: ["Fixtures"],
            swiftSettings: checkedSettings),
        .testTarget(
            name: "FledgeGenerationTests", dependencies: ["FledgeGeneration", "FledgeTestSupport"],
            swiftSettings: checkedSettings),
        .testTarget(
            name: "FledgeTrainingTests",
            dependencies: ["FledgeTraining", "FledgeKit", "FledgeDistributed", "FledgeTestSupport"],
            swiftSettings: checkedSettings),
        .testTarget(
            name: "FledgeInteropTests",
            dependencies: ["FledgeInterop", "FledgeModel", "FledgeTraining", "FledgeTestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: checkedSettings
        ),
        .testTarget(
            name: "FledgeModelTests",
            dependencies: ["FledgeModel", "FledgeTestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: checkedSettings
        ),
    ]
)
