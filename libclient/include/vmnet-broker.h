// SPDX-License-Identifier: Apache-2.0
// vmnet-broker client library: acquire named, shared networks from the broker.
#ifndef VMNET_BROKER_H
#define VMNET_BROKER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define VMNET_BROKER_EXPORT
#elif defined(VMNET_BROKER_BUILDING) && defined(__GNUC__)
#define VMNET_BROKER_EXPORT __attribute__((visibility("default")))
#else
#define VMNET_BROKER_EXPORT
#endif

// The broker's socket when VMNET_BROKER_SOCKET is not set.
#define VMNET_BROKER_DEFAULT_SOCKET "/run/vmnet-broker/vmnet-broker.sock"
// Environment variable naming the broker's socket.
#define VMNET_BROKER_SOCKET_ENV "VMNET_BROKER_SOCKET"

// Status codes. Values are shared with the original macOS library and with
// the wire protocol (3..7 are the broker's error codes). Never renumbered.
typedef enum {
    // Operation was successful.
    VMNET_BROKER_SUCCESS = 0,
    // Could not connect to the broker or send it the request. The original
    // library's name for this value is kept for source compatibility.
    VMNET_BROKER_XPC_FAILURE = 1,
    VMNET_BROKER_CONNECTION_FAILURE = 1,
    // The broker's reply could not be understood (or it closed the
    // connection instead of replying).
    VMNET_BROKER_INVALID_REPLY = 2,
    // The user is not allowed to use the network.
    VMNET_BROKER_NOT_ALLOWED = 3,
    // The broker rejected the request as malformed.
    VMNET_BROKER_INVALID_REQUEST = 4,
    // No such network in the broker's configuration (or, for release, the
    // connection does not hold it).
    VMNET_BROKER_NOT_FOUND = 5,
    // The broker failed to create the network.
    VMNET_BROKER_CREATE_FAILURE = 6,
    // Internal or unknown error (also: a connection holding 8 networks asked
    // for a 9th, as in the original broker, or one with 16 live interfaces
    // asked for a 17th).
    VMNET_BROKER_INTERNAL_ERROR = 7
} vmnet_broker_return_t;

// A network serialization returned by acquire. Opaque; read it with the
// accessors below and free it with vmnet_broker_network_free(). Freeing it
// does not release the network: the connection holds the reference.
typedef struct vmnet_broker_network vmnet_broker_network_t;

// An explicit connection to the broker: one peer, with its own references.
typedef struct vmnet_broker_connection vmnet_broker_connection_t;

// A TAP device the broker made for this process's VM, with its descriptor.
// Opaque; read it with the accessors below and free it with
// vmnet_broker_interface_free(). (Parameters are named iface, not
// interface, which <windows.h> defines as a macro.)
typedef struct vmnet_broker_interface vmnet_broker_interface_t;

// ---- The original API: one process-wide connection ----------------------

// Acquires network_name over the process-wide connection, which is opened
// on first use (at $VMNET_BROKER_SOCKET or VMNET_BROKER_DEFAULT_SOCKET) and
// kept open for the life of the process so the network stays acquired.
// Returns a new network the caller owns (free with
// vmnet_broker_network_free()), or NULL on failure. status, when not NULL,
// receives the result. Thread-safe: calls are serialized on the connection.
// If the connection is lost (the broker cannot be written to or closes it),
// the call fails and the connection is closed; the broker has dropped every
// reference it held, so networks acquired before must be acquired again.
// The next call opens a new connection.
VMNET_BROKER_EXPORT vmnet_broker_network_t *
vmnet_broker_acquire_network(const char *network_name,
                             vmnet_broker_return_t *status);

// Drops the process-wide connection's reference to network_name.
// VMNET_BROKER_NOT_FOUND, without connecting, while no connection is open.
// Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t
vmnet_broker_release_network(const char *network_name);

// Opens an interface on network_name over the process-wide connection (as
// vmnet_broker_connection_open_interface(), acquiring the network on that
// connection if it does not hold it yet). Returns a new interface the caller
// owns (free with vmnet_broker_interface_free()), or NULL on failure. status,
// when not NULL, receives the result. Thread-safe, like
// vmnet_broker_acquire_network().
VMNET_BROKER_EXPORT vmnet_broker_interface_t *
vmnet_broker_open_interface(const char *network_name,
                            vmnet_broker_return_t *status);

// Returns a constant English description of status; never NULL ("unknown
// status" for values outside the enum). Thread-safe.
VMNET_BROKER_EXPORT const char *
vmnet_broker_strerror(vmnet_broker_return_t status);

// ---- Network serializations ----------------------------------------------

// Each accessor returns a string owned by network, valid until
// vmnet_broker_network_free(network); NULL if the broker did not send that
// field. Thread-safe for concurrent reads of the same network.
VMNET_BROKER_EXPORT const char *
vmnet_broker_network_name(const vmnet_broker_network_t *network);
VMNET_BROKER_EXPORT const char *
vmnet_broker_network_mode(const vmnet_broker_network_t *network);
VMNET_BROKER_EXPORT const char *
vmnet_broker_network_bridge(const vmnet_broker_network_t *network);
VMNET_BROKER_EXPORT const char *
vmnet_broker_network_subnet(const vmnet_broker_network_t *network);
VMNET_BROKER_EXPORT const char *
vmnet_broker_network_mask(const vmnet_broker_network_t *network);
VMNET_BROKER_EXPORT const char *
vmnet_broker_network_gateway(const vmnet_broker_network_t *network);
VMNET_BROKER_EXPORT const char *
vmnet_broker_network_uuid(const vmnet_broker_network_t *network);
// The network's MTU, or 0 if the broker did not send one.
VMNET_BROKER_EXPORT unsigned
vmnet_broker_network_mtu(const vmnet_broker_network_t *network);
// The whole serialization as JSON text (the "network" object).
VMNET_BROKER_EXPORT const char *
vmnet_broker_network_json(const vmnet_broker_network_t *network);

// Frees network (not the broker's reference). Accepts NULL.
VMNET_BROKER_EXPORT void
vmnet_broker_network_free(vmnet_broker_network_t *network);

// ---- Interfaces (TAP devices) ----------------------------------------------
//
// An interface is a TAP device on the network's bridge, made by the broker
// for a VM that cannot make one itself, and owned by the calling user. The
// broker keeps no descriptor to it: the device exists exactly as long as
// some process holds the descriptor, so it goes away with the VM. The
// descriptor was opened with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, as QEMU's
// "-netdev tap,fd=N,vhost=on" expects. Keep the connection that opened it
// open while the VM runs: the network lives only as long as some connection
// holds it, and a removed network takes its bridge (the device's link to
// everything else) with it.

// The device's name ("vmt-" and 8 hex digits), the MAC address the guest
// should use (a stable, locally administered "02:76:..." address, the same
// for the same user, network and slot from one run to the next; the slot is
// the lowest one free among that user's live interfaces on the network), and
// the whole "interface" object as JSON text (keys "name", "mac", "network",
// "bridge", "mtu"; later versions add keys). Strings are owned by iface,
// valid until vmnet_broker_interface_free(iface); NULL if the broker did not
// send that field (or iface is NULL). Thread-safe for concurrent reads of
// the same interface.
VMNET_BROKER_EXPORT const char *
vmnet_broker_interface_name(const vmnet_broker_interface_t *iface);
VMNET_BROKER_EXPORT const char *
vmnet_broker_interface_mac(const vmnet_broker_interface_t *iface);
VMNET_BROKER_EXPORT const char *
vmnet_broker_interface_json(const vmnet_broker_interface_t *iface);
// The device's MTU (the bridge's), or 0 if the broker did not send one.
VMNET_BROKER_EXPORT unsigned
vmnet_broker_interface_mtu(const vmnet_broker_interface_t *iface);

// The TAP descriptor (close-on-exec), still owned by iface: closed by
// vmnet_broker_interface_free(). -1 once vmnet_broker_interface_take_fd()
// has taken it, or for a NULL iface. Thread-safe for concurrent reads,
// but not against vmnet_broker_interface_take_fd() on the same interface.
VMNET_BROKER_EXPORT int
vmnet_broker_interface_fd(const vmnet_broker_interface_t *iface);

// Transfers the descriptor to the caller, who must close it (the device goes
// away when the last copy is closed); it is close-on-exec, so clear
// FD_CLOEXEC (or dup2() it) to hand it to a program you exec. Afterwards
// vmnet_broker_interface_fd() returns -1 and vmnet_broker_interface_free()
// leaves it open. Returns -1 if it was already taken or iface is NULL.
// Not thread-safe against other calls on the same interface.
VMNET_BROKER_EXPORT int
vmnet_broker_interface_take_fd(vmnet_broker_interface_t *iface);

// Closes the descriptor unless it was taken, and frees iface. Accepts NULL.
VMNET_BROKER_EXPORT void
vmnet_broker_interface_free(vmnet_broker_interface_t *iface);

// ---- Explicit connections -------------------------------------------------
//
// Calls on one connection are serialized (each takes the connection's lock),
// so a connection may be shared by threads; only
// vmnet_broker_connection_close() must not race another call on it. Once a
// call fails because the connection was lost, the broker has dropped its
// references and every later call returns VMNET_BROKER_XPC_FAILURE. A NULL
// connection, name or out-parameter is VMNET_BROKER_INVALID_REQUEST.

// Connects to the broker at socket_path (NULL: $VMNET_BROKER_SOCKET, else
// VMNET_BROKER_DEFAULT_SOCKET; the variable is ignored in set-user-ID and
// set-group-ID programs). On success stores a new connection the caller
// owns in *connection; on failure *connection is untouched.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connect(
    const char *socket_path, vmnet_broker_connection_t **connection);

// Acquires network_name on connection. On success stores a new network the
// caller owns in *network; on failure *network is untouched. Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_acquire(
    vmnet_broker_connection_t *connection, const char *network_name,
    vmnet_broker_network_t **network);

// Drops connection's reference to network_name (VMNET_BROKER_NOT_FOUND if
// it holds none). Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_release(
    vmnet_broker_connection_t *connection, const char *network_name);

// Asks the broker for an interface on network_name, acquiring the network
// on connection first if it does not hold it (with acquire's policy and
// status codes). On success stores a new interface the caller owns in
// *iface, its descriptor received from the broker; on failure *iface is
// untouched and no descriptor is left open.
// VMNET_BROKER_INTERNAL_ERROR when the connection already has 16 interfaces
// whose devices still exist (close some first); VMNET_BROKER_CREATE_FAILURE
// when the network or the device could not be made;
// VMNET_BROKER_INVALID_REPLY if the reply came without a descriptor.
// Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t
vmnet_broker_connection_open_interface(vmnet_broker_connection_t *connection,
                                       const char *network_name,
                                       vmnet_broker_interface_t **iface);

// Asks for the broker's state. On success stores a malloc'd JSON text (the
// "status" object) the caller frees with free(); *json untouched on failure.
// Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_status(
    vmnet_broker_connection_t *connection, char **json);

// The connection's socket descriptor, still owned by connection. A program
// that execs another may pass it on (clear FD_CLOEXEC) so the networks live
// as long as that program does. -1 for a NULL connection. Thread-safe.
VMNET_BROKER_EXPORT int
vmnet_broker_connection_fd(const vmnet_broker_connection_t *connection);

// Closes the connection and frees it; the broker drops its references.
// Networks acquired on it stay valid (they are copies). Accepts NULL.
VMNET_BROKER_EXPORT void
vmnet_broker_connection_close(vmnet_broker_connection_t *connection);

#ifdef __cplusplus
}
#endif

#endif
