// swift-tools-version:6.0
// SPDX-License-Identifier: Apache-2.0
// Example: a QEMU launcher on a vmnet-broker network, as a package of its own.
import PackageDescription

let package = Package(
    name: "vmnet-broker-qemu",
    dependencies: [
        // In a project of your own:
        // .package(url: "https://.../vmnet-broker.git", from: "0.1.0"),
        .package(name: "vmnet-broker", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "vmnet-broker-qemu",
            dependencies: [.product(name: "VmnetBroker", package: "vmnet-broker")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
