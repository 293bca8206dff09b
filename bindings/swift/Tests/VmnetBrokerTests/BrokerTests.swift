// SPDX-License-Identifier: Apache-2.0
// Every call of the Swift binding against the real broker: networks, errors,
// peers, interfaces, status, timeouts and concurrency.
import CVmnetBroker
import Foundation
import Testing
import VmnetBroker

// One broker at a time: a broker removes the bridges of any other broker in
// the same network namespace when it starts.
@Suite(.serialized, .enabled(if: Environment.ready, Environment.notReady))
struct BrokerTests {
    /// How many peers hold `name`, as the broker reports it.
    func peers(of name: String, via connection: VmnetBroker.Connection) throws -> Int {
        try connection.status().networks.first { $0.name == name }?.peers ?? 0
    }

    func linkExists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: "/sys/class/net/\(name)")
    }

    @Test func acquireReturnsEveryField() throws {
        let broker = try Broker(configs: [
            "lab": """
                {"description": "Lab VMs", "mode": "shared", "subnet": "192.168.42.1",
                 "dhcp_range": {"start": "192.168.42.100", "end": "192.168.42.199"},
                 "ipv6_prefix": "fd42:1:2:3::", "mtu": 1400}
                """,
            "bare": #"{"mode": "host", "dhcp": false, "ipv6": false}"#,
        ])
        defer { broker.stop() }
        let connection = try broker.connect()

        let shared = try connection.acquire(named: "shared")
        #expect(shared.name == "shared")
        #expect(shared.mode == "shared")
        #expect(shared.bridge == "vmb-shared")
        #expect(shared.uuid.count == 36)
        #expect(shared.prefixLength == 24)
        #expect(shared.mask == "255.255.255.0")
        #expect(shared.subnet.hasSuffix(".0"))
        #expect(shared.gateway.hasSuffix(".1"))
        #expect(shared.mtu > 0)
        #expect(shared.dhcpStart != nil)
        #expect(shared.ipv6PrefixLength == 64)
        #expect(shared.json.contains("\"uuid\""))
        #expect(linkExists(shared.bridge))
        // Acquiring a held network again gives the same network.
        #expect(try connection.acquire(named: "shared") == shared)

        let lab = try connection.acquire(named: "lab")
        #expect(lab.networkDescription == "Lab VMs")
        #expect(lab.subnet == "192.168.42.0")
        #expect(lab.gateway == "192.168.42.1")
        #expect(lab.dhcpStart == "192.168.42.100")
        #expect(lab.dhcpEnd == "192.168.42.199")
        #expect(lab.dns == "192.168.42.1")
        #expect(lab.ipv6Prefix == "fd42:1:2:3::")
        #expect(lab.ipv6PrefixLength == 64)
        #expect(lab.mtu == 1400)

        let bare = try connection.acquire(named: "bare")
        #expect(bare.mode == "host")
        #expect(bare.networkDescription == nil)
        #expect(bare.dhcpStart == nil)
        #expect(bare.dhcpEnd == nil)
        #expect(bare.ipv6Prefix == nil)
        #expect(bare.ipv6PrefixLength == 0)
        connection.close()
    }

    @Test func processWideCalls() throws {
        let broker = try Broker()
        defer { broker.stop() }
        // Read when the process-wide connection opens: only this test uses it.
        setenv("VMNET_BROKER_SOCKET", broker.socket, 1)
        // Connection() with no path takes $VMNET_BROKER_SOCKET too.
        let observer = try VmnetBroker.Connection()

        let network = try VmnetBroker.acquireNetwork(named: "shared")
        #expect(network.name == "shared")
        #expect(try peers(of: "shared", via: observer) == 1)
        do {
            _ = try VmnetBroker.acquireNetwork(named: "no-such-network")
            Issue.record("acquired a network that does not exist")
        } catch VmnetBroker.Error.notFound {
            // The original package's idiom.
        }
        // The broker's reason, in the error and over the process-wide
        // connection.
        do {
            _ = try VmnetBroker.acquireNetwork(named: "bad name!")
            Issue.record("acquired a network with an invalid name")
        } catch let error as VmnetBroker.Error {
            #expect(error == .invalidRequest)
            let message = try #require(error.brokerMessage)
            #expect(message.contains("invalid network name"))
            #expect(VmnetBroker.lastMessage == message)
        }
        try VmnetBroker.releaseNetwork(named: "shared")
        #expect(VmnetBroker.lastMessage == nil)
        #expect(try peers(of: "shared", via: observer) == 0)
        #expect(throws: VmnetBroker.Error.notFound) {
            try VmnetBroker.releaseNetwork(named: "shared")
        }

        let iface = try VmnetBroker.openInterface(named: "host")
        #expect(iface.network == "host")
        #expect(iface.fileDescriptor >= 0)
        #expect(linkExists(iface.name))
        iface.close()
        #expect(waitUntil { !linkExists(iface.name) })
        observer.close()
    }

    @Test func eachErrorWithItsValue() throws {
        var configs = ["broken": #"{"mode": "bridged"}"#]
        for i in 1...7 {
            configs["n\(i)"] = #"{"mode": "host", "dhcp": false, "ipv6": false}"#
        }
        let broker = try Broker(configs: configs)
        defer { broker.stop() }
        let connection = try broker.connect()

        // Unknown name: NOT_FOUND, caught the original package's way.
        var caught = false
        do {
            _ = try connection.acquire(named: "nope")
        } catch VmnetBroker.Error.notFound {
            caught = true
        }
        #expect(caught)
        #expect(throws: VmnetBroker.Error.notFound) { try connection.release(named: "shared") }

        // Invalid names: INVALID_REQUEST, from the broker or (a NUL inside,
        // which C would cut short) from the binding.
        for name in ["", "bad name!", "-dash", String(repeating: "a", count: 65), "shared\0x", "../etc"] {
            #expect(throws: VmnetBroker.Error.invalidRequest, "\(name.debugDescription)") {
                try connection.acquire(named: name)
            }
        }
        #expect(throws: VmnetBroker.Error.invalidRequest) { try connection.openInterface(named: "a b") }

        // A configuration file the broker cannot use: CREATE_FAILURE.
        #expect(throws: VmnetBroker.Error.createFailure) { try connection.acquire(named: "broken") }

        // Eight networks on one connection, then a 9th: INTERNAL_ERROR.
        for name in ["shared", "host"] + (1...6).map({ "n\($0)" }) {
            _ = try connection.acquire(named: name)
        }
        #expect(throws: VmnetBroker.Error.internalError) { try connection.acquire(named: "n7") }
        // The connection still serves.
        _ = try connection.acquire(named: "shared")
        #expect(connection.lastMessage == nil)
        connection.close()
        #expect(connection.lastMessage == nil)
    }

    /// The message the broker sent with the error `call` throws, checked to
    /// be the connection's last message too.
    func brokerMessage(
        on connection: VmnetBroker.Connection, _ expected: VmnetBroker.Error,
        _ call: () throws -> Void
    ) throws -> String {
        do {
            try call()
        } catch let error as VmnetBroker.Error {
            #expect(error == expected)
            let message = try #require(error.brokerMessage)
            #expect(!message.isEmpty)
            #expect(connection.lastMessage == message)
            #expect(error.errorDescription?.hasSuffix(": \(message)") == true)
            return message
        }
        Issue.record("no error thrown")
        return ""
    }

    @Test func errorsCarryTheBrokersMessage() throws {
        var configs = ["broken": #"{"mode": "bridged"}"#]
        for i in 1...7 {
            configs["n\(i)"] = #"{"mode": "host", "dhcp": false, "ipv6": false}"#
        }
        let broker = try Broker(configs: configs)
        defer { broker.stop() }
        let connection = try broker.connect()

        let invalid = try brokerMessage(on: connection, .invalidRequest) {
            _ = try connection.acquire(named: "bad name!")
        }
        #expect(invalid.contains("invalid network name"))
        // A configuration the broker cannot use: the message says why.
        let broken = try brokerMessage(on: connection, .createFailure) {
            _ = try connection.acquire(named: "broken")
        }
        #expect(broken.contains("mode"))
        for name in ["shared", "host"] + (1...6).map({ "n\($0)" }) {
            _ = try connection.acquire(named: name)
        }
        let ninth = try brokerMessage(on: connection, .internalError) {
            _ = try connection.acquire(named: "n7")
        }
        #expect(ninth.contains("8 networks"))
        connection.close()
    }

    @Test func notAllowedForAnotherUser() throws {
        let broker = try Broker(configs: ["rootonly": #"{"mode": "host", "allowed_users": [0]}"#])
        defer { broker.stop() }
        // A copy of the helper where user nobody can run it (the build tree
        // may be under /root).
        let helper = broker.directory + "/vmnet-broker-swift-peer"
        try FileManager.default.copyItem(
            atPath: Environment.productsDirectory.appendingPathComponent("vmnet-broker-swift-peer").path,
            toPath: helper)
        chmod(helper, 0o755)
        let asNobody = ["--reuid", "65534", "--regid", "65534", "--clear-groups", helper, broker.socket]

        let denied = try run("/usr/bin/setpriv", asNobody + ["rootonly"])
        #expect(denied.status == Int32(VMNET_BROKER_NOT_ALLOWED.rawValue), "\(denied.output)")
        #expect(denied.output.contains("error 3"))
        // The same helper as nobody may use an open network, so the refusal
        // was the allow-list's, and root may use the restricted one.
        let open = try run("/usr/bin/setpriv", asNobody + ["host"])
        #expect(open.status == 0, "\(open.output)")
        #expect(open.output.contains("\"name\":\"host\"") || open.output.contains("\"name\": \"host\""))
        let connection = try broker.connect()
        #expect(try connection.acquire(named: "rootonly").name == "rootonly")
        connection.close()
    }

    @Test func twoConnectionsAreTwoPeers() throws {
        let broker = try Broker()
        defer { broker.stop() }
        let a = try broker.connect()
        let b = try broker.connect()
        #expect(a.fileDescriptor >= 0)
        #expect(a.fileDescriptor != b.fileDescriptor)
        _ = try a.acquire(named: "shared")
        _ = try b.acquire(named: "shared")
        #expect(try peers(of: "shared", via: b) == 2)
        let mine = try b.status().peers.filter { $0.pid == Int(getpid()) }
        #expect(mine.count == 2)
        #expect(mine.allSatisfy { $0.networks == ["shared"] && $0.uid == 0 })

        // close() drops a's reference; it is idempotent, and a is unusable.
        a.close()
        a.close()
        #expect(try waitUntil { try peers(of: "shared", via: b) == 1 })
        #expect(a.fileDescriptor == -1)
        #expect(throws: VmnetBroker.Error.connectionFailure) { try a.acquire(named: "shared") }
        #expect(throws: VmnetBroker.Error.connectionFailure) { try a.release(named: "shared") }
        #expect(throws: VmnetBroker.Error.connectionFailure) { try a.openInterface(named: "shared") }
        #expect(throws: VmnetBroker.Error.connectionFailure) { try a.status() }
        #expect(throws: VmnetBroker.Error.connectionFailure) { try a.setTimeout(milliseconds: 10) }

        // deinit drops the reference of a connection nobody closed.
        func acquireAndDrop() throws {
            let c = try broker.connect()
            _ = try c.acquire(named: "shared")
            let count = try peers(of: "shared", via: b)
            withExtendedLifetime(c) {}
            #expect(count == 2)
        }
        try acquireAndDrop()
        #expect(try waitUntil { try peers(of: "shared", via: b) == 1 })

        try b.release(named: "shared")
        #expect(try peers(of: "shared", via: b) == 0)
        b.close()
    }

    @Test func interfaceIsATapOnTheBridge() throws {
        let broker = try Broker()
        defer { broker.stop() }
        let connection = try broker.connect()

        let iface = try connection.openInterface(named: "shared")
        #expect(iface.name.hasPrefix("vmt-"))
        #expect(iface.mac.split(separator: ":").count == 6)
        #expect(iface.network == "shared")
        #expect(iface.bridge == "vmb-shared")
        #expect(iface.mtu > 0)
        #expect(iface.json.contains(iface.name))
        // The guest's addresses, known before it boots.
        let ipv4 = try #require(iface.ipv4)
        #expect(ipv4.split(separator: ".").count == 4)
        #expect(iface.json.contains(ipv4))
        let ipv6 = try #require(iface.ipv6)
        #expect(ipv6.contains(":"))
        let fd = iface.fileDescriptor
        #expect(fd >= 0)
        // The kernel names the TAP device a tun descriptor is attached to.
        let fdinfo = try String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8)
        #expect(fdinfo.contains("iff:\t\(iface.name)"))
        let master = try FileManager.default.destinationOfSymbolicLink(
            atPath: "/sys/class/net/\(iface.name)/master")
        #expect(master.hasSuffix("/vmb-shared"))

        // Taken, the descriptor is the caller's: close() leaves it open.
        let taken = iface.takeFileDescriptor()
        #expect(taken == fd)
        #expect(iface.fileDescriptor == -1)
        #expect(iface.takeFileDescriptor() == -1)
        iface.close()
        iface.close()
        #expect(fcntl(taken, F_GETFD) >= 0)
        #expect(linkExists(iface.name))
        Glibc.close(taken)
        #expect(waitUntil { !linkExists(iface.name) })

        // close() closes an owned descriptor; so does deinit.
        let second = try connection.openInterface(named: "shared")
        #expect(linkExists(second.name))
        second.close()
        #expect(second.fileDescriptor == -1)
        #expect(waitUntil { !linkExists(second.name) })
        func openAndDrop() throws -> String {
            try connection.openInterface(named: "shared").name
        }
        let third = try openAndDrop()
        #expect(waitUntil { !linkExists(third) })
        connection.close()
    }

    @Test func statusDescribesNetworksAndPeers() throws {
        let broker = try Broker()
        defer { broker.stop() }
        let connection = try broker.connect()
        let network = try connection.acquire(named: "shared")

        let status = try connection.status()
        #expect(status.version == VmnetBroker.version)
        let entry = try #require(status.networks.first { $0.name == "shared" })
        #expect(entry.mode == "shared")
        #expect(entry.bridge == network.bridge)
        #expect(entry.subnet == network.subnet)
        #expect(entry.prefixLength == network.prefixLength)
        #expect(entry.uuid == network.uuid)
        #expect(entry.peers == 1)
        #expect(entry.idleRemaining == nil)
        #expect(entry.persistent == false)
        let me = try #require(status.peers.first { $0.pid == Int(getpid()) })
        #expect(me.uid == 0)
        #expect(me.gid == 0)
        #expect(me.networks == ["shared"])
        #expect(status.json.contains("\"peers\""))

        // Released, the network waits out its idle delay.
        try connection.release(named: "shared")
        let idle = try #require(try connection.status().networks.first { $0.name == "shared" })
        #expect(idle.peers == 0)
        #expect((idle.idleRemaining ?? -1) > 0)
        connection.close()
    }

    @Test func degradedOnceDnsmasqIsGivenUp() throws {
        let broker = try Broker(failingDnsmasq: "shared")
        defer { broker.stop() }
        let connection = try broker.connect()
        _ = try connection.acquire(named: "shared")
        _ = try connection.acquire(named: "host")
        func entry(_ name: String) throws -> VmnetBroker.Status.Network? {
            try connection.status().networks.first { $0.name == name }
        }
        let whole = try #require(try entry("shared"))
        #expect(whole.degraded == false)
        #expect(whole.degradedReason == nil)

        // Killed, its dnsmasq fails at each restart (a second apart): after
        // five failures in a row the broker gives up on it.
        let pidText = try String(contentsOfFile: broker.directory + "/shared/dnsmasq.pid",
                                 encoding: .utf8)
        let pid = try #require(pid_t(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(pid, SIGKILL) == 0)
        #expect(try waitUntil { try entry("shared")?.degraded == true },
                "shared never degraded; the broker's log:\n\(broker.log)")
        let degraded = try #require(try entry("shared"))
        #expect(degraded.degradedReason?.contains("dnsmasq") == true,
                "reason: \(degraded.degradedReason ?? "nil")")
        // The other network is whole.
        let host = try #require(try entry("host"))
        #expect(host.degraded == false)
        #expect(host.degradedReason == nil)
        connection.close()
    }

    @Test func timeoutAgainstAStoppedBroker() throws {
        let broker = try Broker()
        defer { broker.stop() }
        let connection = try broker.connect()
        try connection.setTimeout(.milliseconds(300))
        _ = try connection.acquire(named: "shared")

        kill(broker.pid, SIGSTOP)
        // Stopped before the request is sent, so it cannot be answered.
        #expect(waitUntil { statFields(broker.pid)?.first == "T" })
        #expect(throws: VmnetBroker.Error.connectionFailure) { try connection.acquire(named: "shared") }
        kill(broker.pid, SIGCONT)
        // The connection is lost for good (a late reply is never taken for
        // a later request's); a new one works.
        #expect(throws: VmnetBroker.Error.connectionFailure) { try connection.status() }
        let again = try broker.connect()
        try again.setTimeout(milliseconds: 0)
        #expect(try again.acquire(named: "shared").name == "shared")
        #expect(throws: VmnetBroker.Error.invalidRequest) { try again.setTimeout(.seconds(-1)) }
        connection.close()
        again.close()
    }

    @Test func shutdownCancelsAndDropsReferences() throws {
        let broker = try Broker()
        defer { broker.stop() }
        let observer = try broker.connect()
        let connection = try broker.connect()
        _ = try connection.acquire(named: "shared")
        #expect(try peers(of: "shared", via: observer) == 1)
        connection.shutdown()
        #expect(throws: VmnetBroker.Error.connectionFailure) { try connection.acquire(named: "shared") }
        #expect(try waitUntil { try peers(of: "shared", via: observer) == 0 })
        // Shut down, not yet closed: the descriptor stays until close().
        #expect(connection.fileDescriptor >= 0)
        connection.close()
        #expect(connection.fileDescriptor == -1)
        connection.shutdown()
        observer.close()
    }

    @Test func concurrentAcquiresOnOneConnection() async throws {
        let broker = try Broker()
        defer { broker.stop() }
        let connection = try broker.connect()
        let networks = try await withThrowingTaskGroup(of: VmnetBroker.Network.self) { group in
            for i in 0..<64 {
                group.addTask { try connection.acquire(named: i.isMultiple(of: 2) ? "shared" : "host") }
            }
            var all: [VmnetBroker.Network] = []
            for try await network in group { all.append(network) }
            return all
        }
        #expect(networks.count == 64)
        #expect(Set(networks.filter { $0.name == "shared" }.map(\.uuid)).count == 1)
        #expect(Set(networks.filter { $0.name == "host" }.map(\.uuid)).count == 1)
        // One peer, holding each network once.
        let status = try connection.status()
        let mine = status.peers.filter { $0.pid == Int(getpid()) }
        #expect(mine.count == 1)
        #expect(mine.first?.networks.sorted() == ["host", "shared"])
        #expect(status.networks.allSatisfy { $0.peers == 1 })
        connection.close()
    }

    @Test func closeWhileCallsAreInFlight() async throws {
        let broker = try Broker()
        defer { broker.stop() }
        let connection = try broker.connect()
        let outcomes = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var seen: [String] = []
                    for _ in 0..<200 {
                        do {
                            _ = try connection.acquire(named: "shared")
                            seen.append("ok")
                        } catch let error as VmnetBroker.Error {
                            seen.append(error == .connectionFailure ? "closed" : "\(error)")
                        } catch {
                            seen.append("\(error)")
                        }
                    }
                    return seen
                }
            }
            group.addTask {
                usleep(20_000)
                connection.close()
                return []
            }
            var all: [String] = []
            for await seen in group { all += seen }
            return all
        }
        // Every call either succeeded or saw the connection closed.
        #expect(Set(outcomes).isSubset(of: ["ok", "closed"]), "\(Set(outcomes))")
        #expect(throws: VmnetBroker.Error.connectionFailure) { try connection.acquire(named: "shared") }
        // The broker dropped the closed connection's reference.
        let observer = try broker.connect()
        #expect(try waitUntil { try peers(of: "shared", via: observer) == 0 })
        observer.close()
    }
}
