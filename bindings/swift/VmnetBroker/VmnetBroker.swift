// SPDX-License-Identifier: Apache-2.0
// VmnetBroker: the namespace, the library version and the original API's
// calls over the C library's process-wide connection.
import CVmnetBroker

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Named, shared, reference-counted VM networks from the vmnet-broker daemon.
///
/// The calls here use one process-wide connection, opened on first use (at
/// `$VMNET_BROKER_SOCKET`, else the default socket) and kept for the life of
/// the process so the networks stay acquired, as in the original macOS
/// package. Use ``Connection`` for a peer of your own.
///
/// Every call here is thread-safe: the C library serializes them.
public enum VmnetBroker {
    /// The client library's version, "MAJOR.MINOR.PATCH".
    public static let version: String = String(cString: vmnet_broker_version())

    /// The default socket, used when `$VMNET_BROKER_SOCKET` is not set.
    public static let defaultSocketPath: String = VMNET_BROKER_DEFAULT_SOCKET

    /// Acquires `name` over the process-wide connection. The network stays
    /// acquired until ``releaseNetwork(named:)`` or the process ends.
    public static func acquireNetwork(named name: String) throws -> Network {
        try checkName(name)
        var status = VMNET_BROKER_SUCCESS
        guard let network = vmnet_broker_acquire_network(name, &status) else {
            throw Error(status == VMNET_BROKER_SUCCESS ? VMNET_BROKER_INVALID_REPLY : status,
                        brokerMessage: lastMessage)
        }
        defer { vmnet_broker_network_free(network) }
        return Network(network)
    }

    /// Drops the process-wide connection's reference to `name`
    /// (``Error/notFound`` when it holds none).
    public static func releaseNetwork(named name: String) throws {
        try checkName(name)
        let status = vmnet_broker_release_network(name)
        guard status == VMNET_BROKER_SUCCESS else {
            throw Error(status, brokerMessage: lastMessage)
        }
    }

    /// Opens a TAP device on `name` over the process-wide connection,
    /// acquiring the network first if the connection does not hold it.
    public static func openInterface(named name: String) throws -> Interface {
        try checkName(name)
        var status = VMNET_BROKER_SUCCESS
        guard let iface = vmnet_broker_open_interface(name, &status) else {
            throw Error(status == VMNET_BROKER_SUCCESS ? VMNET_BROKER_INVALID_REPLY : status,
                        brokerMessage: lastMessage)
        }
        return Interface(iface)
    }

    /// Why the broker refused the last request made over the process-wide
    /// connection (see ``Connection/lastMessage``), or nil.
    public static var lastMessage: String? {
        takeString(vmnet_broker_last_message())
    }

    /// A name with a NUL inside would reach C cut short (and name another
    /// network): reject it here as the broker rejects invalid names.
    static func checkName(_ name: String) throws {
        if name.utf8.contains(0) { throw Error.invalidRequest }
    }
}

/// A C string the library owns, copied; "" for NULL.
@inline(__always)
func string(_ pointer: UnsafePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}

/// A C string the library owns, copied; nil for NULL (a field not sent).
@inline(__always)
func optionalString(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

/// The broker's message for the last call on connection, or nil.
@inline(__always)
func message(of connection: OpaquePointer) -> String? {
    takeString(vmnet_broker_connection_last_message(connection))
}

/// A C string the caller owns (malloc'd), copied and freed; nil for NULL.
func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
    guard let pointer else { return nil }
    defer { free(pointer) }
    return String(cString: pointer)
}
