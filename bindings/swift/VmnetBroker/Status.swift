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

            enum CodingKeys: String, CodingKey {
                case name, mode, bridge, subnet, peers, persistent, uuid
                case prefixLength = "prefix_length"
                case idleRemaining = "idle_remaining"
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
