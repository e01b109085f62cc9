// swift-tools-version: 6.1
// A user's own training script, outside Shoal's repository, depending on Shoal by path
// (scripts/build-user-package.sh copies it out and points SHOAL_PATH at the checkout).
import PackageDescription

let package = Package(
    name: "UserTraining",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "SHOAL_PATH")],
    targets: [
        .executableTarget(
            name: "user-training",
            dependencies: [
                .product(name: "Shoal", package: "SHOAL_IDENTITY"),
                .product(name: "ShoalTrain", package: "SHOAL_IDENTITY"),
                .product(name: "ShoalTensor", package: "SHOAL_IDENTITY"),
            ],
            path: "Sources/UserTraining",
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
