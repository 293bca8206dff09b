// SPDX-License-Identifier: Apache-2.0
// A second process for the Swift tests: acquires a network as whatever user
// it runs as, prints the result, and exits with the status value.
//
// Usage: vmnet-broker-swift-peer SOCKET NETWORK
// Prints the network's JSON and exits 0, or prints the error and exits with
// its status value (3 for NOT_ALLOWED); 64 for bad usage.
import VmnetBroker

#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    print("usage: vmnet-broker-swift-peer SOCKET NETWORK")
    exit(64)
}
do {
    let connection = try VmnetBroker.Connection(socketPath: arguments[1])
    let network = try connection.acquire(named: arguments[2])
    print(network.json)
    exit(0)
} catch let error as VmnetBroker.Error {
    print("error \(error.status.rawValue): \(error)")
    exit(Int32(error.status.rawValue))
}
