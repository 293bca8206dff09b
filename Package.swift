// swift-tools-version:6.0
// SPDX-License-Identifier: Apache-2.0
// The Swift package: libclient's C sources as module CVmnetBroker, and the
// VmnetBroker library over it (bindings/swift), usable as a dependency.
import PackageDescription

// The library's version: the same as project(... VERSION ...) in
// CMakeLists.txt, which a test (ErrorTests.versionMatchesCMakeLists) checks.
// Written here rather than read from CMakeLists.txt at manifest time:
// SwiftPM caches an evaluated manifest by its own text, so a version read
// from another file would go stale after a bump (and a dependency's manifest
// is the same text at every tag).
let version = "0.1.0"

let package = Package(
    name: "vmnet-broker",
    products: [
        .library(name: "VmnetBroker", targets: ["VmnetBroker"]),
    ],
    targets: [
        // libclient's own sources, compiled by SwiftPM (no cmake --install
        // needed). The hand-written libclient/include/module.modulemap names
        // the module CVmnetBroker.
        .target(
            name: "CVmnetBroker",
            path: "libclient",
            exclude: ["CMakeLists.txt", "vmnet-broker.pc.in",
                      "vmnet-brokerConfig.cmake.in"],
            publicHeadersPath: "include",
            cSettings: [
                .define("_GNU_SOURCE"),
                .define("VMNET_BROKER_BUILDING"),
                .define("VMNET_BROKER_VERSION_STRING",
                        to: "\"\(version)\""),
            ],
            linkerSettings: [
                .linkedLibrary("jansson"),
                .linkedLibrary("pthread"),
            ]
        ),
        .target(
            name: "VmnetBroker",
            dependencies: ["CVmnetBroker"],
            path: "bindings/swift/VmnetBroker"
        ),
        // A second process for the tests: run as another user (NOT_ALLOWED)
        // or as a second peer.
        .executableTarget(
            name: "vmnet-broker-swift-peer",
            dependencies: ["VmnetBroker"],
            path: "bindings/swift/TestPeer"
        ),
        // bench/swift.sh: Swift acquire beside the C call, same run.
        .executableTarget(
            name: "vmnet-broker-swift-bench",
            dependencies: ["VmnetBroker", "CVmnetBroker"],
            path: "bench/swift"
        ),
        .testTarget(
            name: "VmnetBrokerTests",
            dependencies: ["VmnetBroker", "CVmnetBroker",
                           "vmnet-broker-swift-peer"],
            path: "bindings/swift/Tests/VmnetBrokerTests"
        ),
    ],
    swiftLanguageModes: [.v6],
    cLanguageStandard: .c11
)
