// SPDX-License-Identifier: Apache-2.0
// VmnetBroker.Error and the version, without a broker.
import CVmnetBroker
import Foundation
import Testing
import VmnetBroker

@Suite struct ErrorTests {
    @Test func membersCarryTheCValues() {
        let members: [(VmnetBroker.Error, vmnet_broker_return_t, UInt32)] = [
            (.connectionFailure, VMNET_BROKER_CONNECTION_FAILURE, 1),
            (.xpcFailure, VMNET_BROKER_XPC_FAILURE, 1),
            (.invalidReply, VMNET_BROKER_INVALID_REPLY, 2),
            (.notAllowed, VMNET_BROKER_NOT_ALLOWED, 3),
            (.invalidRequest, VMNET_BROKER_INVALID_REQUEST, 4),
            (.notFound, VMNET_BROKER_NOT_FOUND, 5),
            (.createFailure, VMNET_BROKER_CREATE_FAILURE, 6),
            (.internalError, VMNET_BROKER_INTERNAL_ERROR, 7),
        ]
        for (error, status, value) in members {
            #expect(error.status == status)
            #expect(error.status.rawValue == value)
            #expect(VmnetBroker.Error(status) == error)
            #expect(error.errorDescription == String(cString: vmnet_broker_strerror(status)))
            #expect(error.description.contains(error.errorDescription!))
            #expect((error as any LocalizedError).errorDescription == error.errorDescription)
        }
        #expect(VmnetBroker.Error.xpcFailure == .connectionFailure)
        #expect(VmnetBroker.Error.notFound != .notAllowed)
    }

    @Test func brokerMessageIsShownButNotCompared() {
        let error = VmnetBroker.Error(VMNET_BROKER_CREATE_FAILURE, brokerMessage: "subnet overlaps")
        #expect(error.brokerMessage == "subnet overlaps")
        #expect(VmnetBroker.Error.createFailure.brokerMessage == nil)
        let text = String(cString: vmnet_broker_strerror(VMNET_BROKER_CREATE_FAILURE))
        #expect(error.errorDescription == "\(text): subnet overlaps")
        #expect(error.description.contains("subnet overlaps"))
        // Equality, hashing and catch patterns go by status alone.
        #expect(error == .createFailure)
        #expect(error.hashValue == VmnetBroker.Error.createFailure.hashValue)
        #expect(Set([error, .createFailure]).count == 1)
        #expect(VmnetBroker.Error.createFailure ~= error)
        #expect(!(VmnetBroker.Error.notFound ~= error))
        var matched = false
        do {
            throw error
        } catch VmnetBroker.Error.createFailure {
            matched = true
        } catch {}
        #expect(matched)
    }

    @Test func unknownValueStaysRepresentable() {
        let error = VmnetBroker.Error(vmnet_broker_return_t(rawValue: 42))
        #expect(error.status.rawValue == 42)
        #expect(error.errorDescription == "unknown status")
        #expect(error != .internalError)
        #expect(error.description.contains("42"))
    }

    @Test func catchMatchesByValue() {
        func fail(_ error: VmnetBroker.Error) throws { throw error }
        var matched = ""
        do {
            try fail(.notFound)
        } catch VmnetBroker.Error.notAllowed {
            matched = "notAllowed"
        } catch VmnetBroker.Error.notFound {
            matched = "notFound"
        } catch {
            matched = "other"
        }
        #expect(matched == "notFound")
        // Another error type never matches.
        #expect(!(VmnetBroker.Error.notFound ~= CocoaError(.fileNoSuchFile)))
        // xpcFailure and connectionFailure are one value: either matches.
        do {
            try fail(.connectionFailure)
        } catch VmnetBroker.Error.xpcFailure {
            matched = "xpcFailure"
        } catch {
            matched = "other"
        }
        #expect(matched == "xpcFailure")
    }

    @Test func connectingToNoBrokerFails() {
        #expect(throws: VmnetBroker.Error.connectionFailure) {
            try VmnetBroker.Connection(socketPath: "/nonexistent/vmnet-broker.sock")
        }
        // Longer than a socket address holds, or with a NUL inside: refused,
        // never cut short to another path.
        #expect(throws: VmnetBroker.Error.self) {
            try VmnetBroker.Connection(socketPath: "/tmp/" + String(repeating: "s", count: 200))
        }
        #expect(throws: VmnetBroker.Error.invalidRequest) {
            try VmnetBroker.Connection(socketPath: "/tmp/a\0b")
        }
    }

    /// Package.swift writes the version CMakeLists.txt's project(VERSION)
    /// has; the library built from it must report the same one.
    @Test func versionMatchesCMakeLists() throws {
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("CMakeLists.txt"), encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("project(vmnet-broker ") })
        let words = line.split(separator: " ")
        let index = try #require(words.firstIndex(of: "VERSION"))
        #expect(VmnetBroker.version == String(words[index + 1]),
                "Package.swift's version must be CMakeLists.txt's project(VERSION)")
        #expect(VmnetBroker.version == String(cString: vmnet_broker_version()))
    }

    @Test func statusDecodesTheProtocolExample() throws {
        let json = """
            {"version": "0.1.0", "networks": [{"name": "shared", "mode": "shared",
              "bridge": "vmb-shared", "subnet": "192.168.64.0", "prefix_length": 24,
              "peers": 1, "idle_remaining": null, "persistent": false, "uuid": "u"}],
             "peers": [{"pid": 1234, "uid": 1000, "gid": 1000, "networks": ["shared"]}]}
            """
        let status = try VmnetBroker.Status(json: json)
        #expect(status.version == "0.1.0")
        #expect(status.networks.count == 1)
        #expect(status.networks[0].prefixLength == 24)
        #expect(status.networks[0].idleRemaining == nil)
        // A broker that does not send "degraded" means a whole network.
        #expect(status.networks[0].degraded == false)
        #expect(status.networks[0].degradedReason == nil)
        #expect(status.peers[0].networks == ["shared"])
        #expect(status.json == json)
        #expect(throws: VmnetBroker.Error.invalidReply) { try VmnetBroker.Status(json: "[1]") }
    }

    @Test func statusDecodesDegraded() throws {
        func network(_ extra: String) throws -> VmnetBroker.Status.Network {
            let json = """
                {"networks": [{"name": "shared", "mode": "shared", "bridge": "vmb-shared",
                  "subnet": "192.168.64.0", "prefix_length": 24, "peers": 1,
                  "idle_remaining": null, "persistent": false, "uuid": "u"\(extra)}],
                 "peers": []}
                """
            return try #require(try VmnetBroker.Status(json: json).networks.first)
        }
        let degraded = try network(#", "degraded": true, "degraded_reason": "no dnsmasq""#)
        #expect(degraded.degraded)
        #expect(degraded.degradedReason == "no dnsmasq")
        // A reason goes with degraded only, as vmnet_broker_status_network_degraded_reason() says.
        let whole = try network(#", "degraded": false, "degraded_reason": "stale""#)
        #expect(!whole.degraded)
        #expect(whole.degradedReason == nil)
        #expect(throws: VmnetBroker.Error.invalidReply) { try network(#", "degraded": "yes""#) }
    }
}
