// SPDX-License-Identifier: Apache-2.0
// VmnetBroker.Interface: a TAP device the broker made, with its descriptor.
import CVmnetBroker

extension VmnetBroker {
    /// A TAP device on a network's bridge, owned by the calling user, and its
    /// descriptor (opened IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, close-on-exec,
    /// as QEMU's `-netdev tap,fd=N,vhost=on` expects). The device exists as
    /// long as some process holds the descriptor. Keep the connection that
    /// opened it open while the VM runs: the network lives only while some
    /// connection holds it.
    ///
    /// Not Sendable: ``takeFileDescriptor()`` and ``close()`` change it.
    public final class Interface {
        /// The device's name ("vmt-" and 8 hex digits).
        public let name: String
        /// The MAC address the guest should use (stable for the same user,
        /// network and slot).
        public let mac: String
        /// The network it is on, and that network's bridge.
        public let network: String
        public let bridge: String
        /// The device's MTU (the bridge's); 0 if the broker did not send one.
        public let mtu: Int
        /// The whole "interface" object as JSON text.
        public let json: String
        /// The guest's addresses, known before it boots: the IPv4 address
        /// the network's DHCP server reserved for ``mac``, and the address
        /// SLAAC gives ``mac`` in the network's /64; nil when the network
        /// has no DHCP (no IPv6).
        public let ipv4: String?
        public let ipv6: String?

        private var handle: OpaquePointer?

        init(_ iface: OpaquePointer) {
            handle = iface
            name = string(vmnet_broker_interface_name(iface))
            mac = string(vmnet_broker_interface_mac(iface))
            network = string(vmnet_broker_interface_network(iface))
            bridge = string(vmnet_broker_interface_bridge(iface))
            mtu = Int(vmnet_broker_interface_mtu(iface))
            json = string(vmnet_broker_interface_json(iface))
            ipv4 = optionalString(vmnet_broker_interface_ipv4(iface))
            ipv6 = optionalString(vmnet_broker_interface_ipv6(iface))
        }

        /// The TAP descriptor, owned by the interface (closed by ``close()``
        /// and deinit); -1 once taken or closed.
        public var fileDescriptor: Int32 {
            vmnet_broker_interface_fd(handle)
        }

        /// Gives the descriptor to the caller, who must close it; the
        /// interface then leaves it open. It is close-on-exec: clear
        /// FD_CLOEXEC (or dup2() it) to hand it to a program you exec.
        /// -1 if it was already taken or closed.
        public func takeFileDescriptor() -> Int32 {
            vmnet_broker_interface_take_fd(handle)
        }

        /// Closes the descriptor (unless taken). Idempotent.
        public func close() {
            vmnet_broker_interface_free(handle)
            handle = nil
        }

        deinit {
            vmnet_broker_interface_free(handle)
        }
    }
}

@available(*, unavailable, message: "an Interface changes when its descriptor is taken or closed")
extension VmnetBroker.Interface: Sendable {}
