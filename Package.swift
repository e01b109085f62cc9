// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Shoal",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Shoal", targets: ["Shoal"]),
        // The ML stack, usable beside Shoal (or alone) from a user's own package.
        .library(name: "ShoalTensor", targets: ["ShoalTensor"]),
        .library(name: "ShoalMarket", targets: ["ShoalMarket"]),
        .library(name: "ShoalPlot", targets: ["ShoalPlot"]),
        .library(name: "ShoalRL", targets: ["ShoalRL"]),
        .library(name: "ShoalTrain", targets: ["ShoalTrain"]),
        .library(name: "ShoalRollouts", targets: ["ShoalRollouts"]),
        .library(name: "ShoalTune", targets: ["ShoalTune"]),
        .library(name: "ShoalBacktest", targets: ["ShoalBacktest"]),
        .executable(name: "cluster", targets: ["ClusterCLI"]),
        .executable(name: "trading", targets: ["TradingApp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // System libraries, each through a module map.
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // glibc's posix_spawn extensions that Swift's Glibc module leaves out.
        .systemLibrary(name: "CPosix"),

        // Wire formats: protobuf control messages and the binary Codable coder.
        .target(
            name: "ShoalWire",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: swiftSettings
        ),
        // ZeroMQ sockets on event-loop threads, bridged to Swift concurrency.
        .target(
            name: "ShoalTransport",
            dependencies: ["CZeroMQ", "CCrypto", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Storage: embedded SQLite and PostgreSQL behind one protocol; migrations, pooling.
        .target(name: "ShoalStorage", dependencies: ["CSQLite", "CLibPQ"], swiftSettings: swiftSettings),
        // Head, node daemon, executor and driver core.
        .target(
            name: "ShoalRuntime",
            dependencies: [
                "ShoalWire", "ShoalTransport", "ShoalStorage", "CCrypto", "CPosix",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // Tensors on OpenBLAS, reverse-mode autodiff, layers and optimisers.
        .target(name: "ShoalTensor", dependencies: ["COpenBLAS", "CShoalKernels", "ShoalWire"], swiftSettings: swiftSettings),
        // Vectorised C kernels under ShoalTensor (exp/tanh/softmax rows, LSTM steps, Adam), built per instruction set.
        .target(name: "CShoalKernels"),
        // Market data: bars, CSV, the synthetic market, data quality, features.
        .target(name: "ShoalMarket", dependencies: ["CShoalKernels"], swiftSettings: swiftSettings),
        // Line plots as PNG files (learning curves, benchmark figures).
        .target(name: "ShoalPlot", dependencies: ["CZlib"], swiftSettings: swiftSettings),
        // Reinforcement learning: environments, PPO, SAC, TD3, Rainbow DQN, the ensemble.
        .target(
            name: "ShoalRL", dependencies: ["ShoalTensor", "CShoalKernels", "ShoalMarket", "ShoalPlot", "ShoalBacktest"],
            swiftSettings: swiftSettings),
        // Training the hybrid model: data split by time, the loop, metrics, checkpoints, learning curves.
        .target(
            name: "ShoalTrain",
            dependencies: [
                "Shoal", "ShoalWire", "ShoalTensor", "ShoalMarket", "ShoalPlot", "ShoalBacktest", "CShoalKernels", "CZeroMQ",
            ],
            swiftSettings: swiftSettings),
        // Reinforcement learning's rollout workers as cluster actors.
        .target(
            name: "ShoalRollouts",
            dependencies: ["Shoal", "ShoalRL", "ShoalTensor", "ShoalMarket", "ShoalTrain", "ShoalBacktest"],
            swiftSettings: swiftSettings),
        // Hyperparameter search: spaces, searchers, schedulers, trials as cluster actors.
        .target(
            name: "ShoalTune", dependencies: ["Shoal", "ShoalMarket", "ShoalPlot", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings),
        // The decision side: performance metrics (and, to come, the backtester and portfolios).
        .target(name: "ShoalBacktest", dependencies: ["ShoalMarket", "ShoalPlot"], swiftSettings: swiftSettings),
        // The driver library users import.
        .target(name: "Shoal", dependencies: ["ShoalRuntime", "ShoalWire", "ShoalStorage"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "ClusterCLI",
            dependencies: [
                "Shoal", "ShoalTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "TradingApp",
            dependencies: [
                "Shoal", "ShoalMarket", "ShoalTensor", "ShoalRL", "ShoalPlot", "ShoalTrain", "ShoalRollouts", "ShoalTune",
                "ShoalBacktest",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // A job binary with test tasks, driven by the integration tests.
        .executableTarget(
            name: "shoal-testjob",
            dependencies: ["Shoal"],
            path: "Tests/Fixtures/TestJob",
            swiftSettings: swiftSettings
        ),
        // A second job binary, with task types of its own (job isolation tests).
        .executableTarget(
            name: "shoal-otherjob",
            dependencies: ["Shoal"],
            path: "Tests/Fixtures/OtherJob",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ShoalTestSupport",
            dependencies: ["Shoal", "ShoalStorage"],
            path: "Tests/ShoalTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ShoalWireTests", dependencies: ["ShoalWire"], swiftSettings: swiftSettings),
        .testTarget(name: "ShoalMarketTests", dependencies: ["ShoalMarket"], swiftSettings: swiftSettings),
        .testTarget(name: "ShoalTuneTests", dependencies: ["ShoalTune", "ShoalMarket"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ShoalBacktestTests", dependencies: ["ShoalBacktest", "ShoalMarket"], exclude: ["Fixtures"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ShoalRLTests", dependencies: ["ShoalRL", "ShoalPlot"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ShoalRolloutsTests", dependencies: ["ShoalRollouts", "ShoalRL", "ShoalBacktest", "ShoalTensor"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ShoalTrainTests", dependencies: ["ShoalTrain", "ShoalTensor", "ShoalMarket", "ShoalBacktest", "Shoal"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ShoalTensorTests", dependencies: ["ShoalTensor"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ShoalTransportTests",
            dependencies: ["ShoalTransport", "ShoalWire"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ShoalRuntimeTests",
            dependencies: [
                "Shoal", "ShoalTestSupport", "ShoalWire", "ShoalTransport", "ShoalStorage", "ShoalRuntime", "ShoalTensor",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
