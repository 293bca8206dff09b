// swift-tools-version:6.0
// SPDX-License-Identifier: Apache-2.0
// The Swift package: libclient's C sources as module CVmnetBroker, and the
// VmnetBroker library over it (bindings/swift), usable as a dependency.
import PackageDescription

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The library's version comes from the one place it is written, the
// project(... VERSION x.y.z ...) line of CMakeLists.txt, read when SwiftPM
// evaluates this manifest; a test (VersionTests) checks that the library
// built from it reports the same string.
func projectVersion() -> String {
    let url = URL(fileURLWithPath: Context.packageDirectory)
        .appendingPathComponent("CMakeLists.txt")
    guard let text = try? String(contentsOf: url, encoding: .utf8) else {
        return "0.0.0-unknown"
    }
    for line in text.split(separator: "\n") where line.hasPrefix("project(") {
        let words = line.split(whereSeparator: { $0 == " " || $0 == ")" })
        if let i = words.firstIndex(of: "VERSION"), i + 1 < words.count {
            return String(words[i + 1])
        }
    }
    return "0.0.0-unknown"
}

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
                        to: "\"\(projectVersion())\""),
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
