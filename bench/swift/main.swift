// SPDX-License-Identifier: Apache-2.0
// Bench: acquire of a held network through the Swift binding beside the same
// call through the C library, same broker, same run (bench/swift.sh).
import CVmnetBroker
import VmnetBroker

#if canImport(Glibc)
import Glibc
#endif

let roundTrips = 20_000
let warmUp = 2_000
// The two ways take turns in this many slices, so that a change in the
// machine's load or clock during the run touches both alike.
let slices = 10
let goalRatio = 1.1

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct Summary {
    let median: Double, p99: Double, perSecond: Double
}

func summarize(_ samples: [UInt64]) -> Summary {
    let sorted = samples.sorted()
    let total = sorted.reduce(0, +)
    return Summary(median: Double(sorted[sorted.count / 2]) / 1e3,
                   p99: Double(sorted[sorted.count * 99 / 100]) / 1e3,
                   perSecond: Double(sorted.count) / (Double(total) / 1e9))
}

func fail(_ message: String) -> Never {
    print("vmnet-broker-swift-bench: \(message)")
    exit(1)
}

guard CommandLine.arguments.count == 2 else {
    fail("usage: vmnet-broker-swift-bench SOCKET")
}
let socketPath = CommandLine.arguments[1]

// Swift: one Connection, as an app would hold it.
let swiftConnection: VmnetBroker.Connection
do {
    swiftConnection = try VmnetBroker.Connection(socketPath: socketPath)
} catch {
    fail("connect: \(error)")
}
func swiftAcquire() -> Bool {
    (try? swiftConnection.acquire(named: "shared")) != nil
}

// C: its own connection (a second peer), the calls bench/round_trip.c makes.
var cConnection: OpaquePointer?
guard vmnet_broker_connect(socketPath, &cConnection) == VMNET_BROKER_SUCCESS,
      let cConnection else { fail("C connect failed") }
func cAcquire() -> Bool {
    var network: OpaquePointer?
    guard vmnet_broker_connection_acquire(cConnection, "shared", &network) == VMNET_BROKER_SUCCESS
    else { return false }
    vmnet_broker_network_free(network)
    return true
}

func measure(_ n: Int, _ op: () -> Bool, into samples: inout [UInt64]) {
    for _ in 0..<n {
        let start = now()
        guard op() else { fail("acquire failed") }
        samples.append(now() - start)
    }
}

// The first acquire creates the network; then both are of a held network.
var discard: [UInt64] = []
measure(warmUp, swiftAcquire, into: &discard)
measure(warmUp, cAcquire, into: &discard)

var swiftSamples: [UInt64] = []
var cSamples: [UInt64] = []
swiftSamples.reserveCapacity(roundTrips)
cSamples.reserveCapacity(roundTrips)
for _ in 0..<slices {
    measure(roundTrips / slices, cAcquire, into: &cSamples)
    measure(roundTrips / slices, swiftAcquire, into: &swiftSamples)
}

let s = summarize(swiftSamples)
let c = summarize(cSamples)
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}
func fmt(_ v: Double) -> String {
    let tenths = Int((v * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}
func ratio(_ a: Double, _ b: Double) -> String {
    let hundredths = Int((a / b * 100).rounded())
    return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)x"
}
print(pad("metric", 36) + pad("value", 14) + pad("baseline (C, same run)", 24) + "ratio")
print(pad("acquire, Swift: median", 36) + pad("\(fmt(s.median)) us", 14)
    + pad("\(fmt(c.median)) us C", 24)
    + "\(ratio(s.median, c.median)) (goal <= \(goalRatio)x: \(s.median <= goalRatio * c.median ? "met" : "MISSED"))")
print(pad("acquire, Swift: p99", 36) + pad("\(fmt(s.p99)) us", 14)
    + pad("\(fmt(c.p99)) us C", 24) + ratio(s.p99, c.p99))
print(pad("acquire, Swift: round trips/s", 36) + pad("\(Int(s.perSecond))", 14)
    + pad("\(Int(c.perSecond)) C", 24) + ratio(c.perSecond, s.perSecond))
print("(\(roundTrips) round trips each, in \(slices) alternating slices, after \(warmUp) warm-up)")
swiftConnection.close()
vmnet_broker_connection_close(cConnection)
