// SPDX-License-Identifier: Apache-2.0
// VmnetBroker.Network: an acquired network's description, copied from C.
import CVmnetBroker

extension VmnetBroker {
    /// What `acquire` returned: the network to attach a VM to. A value
    /// (Sendable): holding it does not hold the network, the connection does.
    public struct Network: Sendable, Equatable, Hashable {
        /// The network's name ("shared").
        public let name: String
        /// "shared" or "host".
        public let mode: String
        /// This instance of the network: one removed and created again has a
        /// new one.
        public let uuid: String
        /// The Linux bridge to attach a TAP or veth device to ("vmb-shared").
        public let bridge: String
        /// The IPv4 network address ("192.168.64.0").
        public let subnet: String
        /// The IPv4 netmask ("255.255.255.0").
        public let mask: String
        /// The IPv4 prefix length (24).
        public let prefixLength: Int
        /// The host's address on the bridge.
        public let gateway: String
        /// The configuration's "description"; nil when it has none. (Not
        /// `description`, which Swift reserves for CustomStringConvertible.)
        public let networkDescription: String?
        /// The first and last addresses DHCP hands out; nil without DHCP.
        public let dhcpStart: String?
        public let dhcpEnd: String?
        /// The DNS server guests are told to use; nil when there is none.
        public let dns: String?
        /// The IPv6 prefix ("fd12:3456:789a:1::") and its length (64); nil
        /// and 0 without IPv6.
        public let ipv6Prefix: String?
        public let ipv6PrefixLength: Int
        /// The network's MTU.
        public let mtu: Int
        /// The whole "network" object as JSON text, with any key a later
        /// broker adds.
        public let json: String

        /// Copies every field out of a C network (which the caller frees).
        init(_ network: OpaquePointer) {
            name = string(vmnet_broker_network_name(network))
            mode = string(vmnet_broker_network_mode(network))
            uuid = string(vmnet_broker_network_uuid(network))
            bridge = string(vmnet_broker_network_bridge(network))
            subnet = string(vmnet_broker_network_subnet(network))
            mask = string(vmnet_broker_network_mask(network))
            prefixLength = Int(vmnet_broker_network_prefix_length(network))
            gateway = string(vmnet_broker_network_gateway(network))
            networkDescription = optionalString(vmnet_broker_network_description(network))
            dhcpStart = optionalString(vmnet_broker_network_dhcp_start(network))
            dhcpEnd = optionalString(vmnet_broker_network_dhcp_end(network))
            dns = optionalString(vmnet_broker_network_dns(network))
            ipv6Prefix = optionalString(vmnet_broker_network_ipv6_prefix(network))
            ipv6PrefixLength = Int(vmnet_broker_network_ipv6_prefix_length(network))
            mtu = Int(vmnet_broker_network_mtu(network))
            json = string(vmnet_broker_network_json(network))
        }
    }
}
