// SPDX-License-Identifier: Apache-2.0
// VmnetBroker.Status: the broker's "status" reply (docs/protocol.md), decoded.
import CVmnetBroker

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension VmnetBroker {
    /// A snapshot of the broker's state: the networks that exist and the
    /// peers it serves (the asking one included). Any peer may ask, so it
    /// shows every peer's pid, uid, gid and networks.
    public struct Status: Decodable, Sendable, Equatable {
        /// The broker's version; nil from a broker too old to send it.
        public let version: String?
        /// The networks that exist (in use, or idle and waiting for removal).
        public let networks: [Network]
        /// The peers (connections) the broker serves.
        public let peers: [Peer]
        /// The whole "status" object as JSON text, for keys not decoded here.
        public private(set) var json: String = ""

        public struct Network: Decodable, Sendable, Equatable {
            public let name: String
            public let mode: String
            public let bridge: String
            public let subnet: String
            public let prefixLength: Int
            /// How many peers hold it.
            public let peers: Int
            /// Seconds until it is removed for being unused; nil while it is
            /// in use or persistent.
            public let idleRemaining: Double?
            /// Kept even when unused.
            public let persistent: Bool
            public let uuid: String
            /// It works only in part: its dnsmasq was given up on, or the
            /// broker could not repair its bridge or rules.
            public let degraded: Bool
            /// Why it is degraded, in words; nil while it is not.
            public let degradedReason: String?

            enum CodingKeys: String, CodingKey {
                case name, mode, bridge, subnet, peers, persistent, uuid, degraded
                case prefixLength = "prefix_length"
                case idleRemaining = "idle_remaining"
                case degradedReason = "degraded_reason"
            }

            // Written out for degraded: a broker older than it does not send
            // it, which means whole (as vmnet_broker_status_network_degraded()
            // reads it), not a bad reply.
            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                name = try c.decode(String.self, forKey: .name)
                mode = try c.decode(String.self, forKey: .mode)
                bridge = try c.decode(String.self, forKey: .bridge)
                subnet = try c.decode(String.self, forKey: .subnet)
                prefixLength = try c.decode(Int.self, forKey: .prefixLength)
                peers = try c.decode(Int.self, forKey: .peers)
                idleRemaining = try c.decodeIfPresent(Double.self, forKey: .idleRemaining)
                persistent = try c.decode(Bool.self, forKey: .persistent)
                uuid = try c.decode(String.self, forKey: .uuid)
                degraded = try c.decodeIfPresent(Bool.self, forKey: .degraded) ?? false
                // Only a degraded network has a reason, as the C accessor says.
                let reason = try c.decodeIfPresent(String.self, forKey: .degradedReason)
                degradedReason = degraded ? reason : nil
            }
        }

        public struct Peer: Decodable, Sendable, Equatable {
            public let pid: Int
            public let uid: Int
            public let gid: Int
            /// The names of the networks it holds.
            public let networks: [String]
        }

        enum CodingKeys: String, CodingKey {
            case version, networks, peers
        }

        /// Decodes a "status" object (the JSON text of one).
        public init(json: String) throws {
            do {
                self = try JSONDecoder().decode(Status.self, from: Data(json.utf8))
            } catch {
                throw Error.invalidReply
            }
            self.json = json
        }
    }
}
