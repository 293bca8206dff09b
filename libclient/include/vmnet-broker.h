// SPDX-License-Identifier: Apache-2.0
// vmnet-broker client library: acquire named, shared networks from the broker.
#ifndef VMNET_BROKER_H
#define VMNET_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

// Nullability, for the compilers that know it (clang): Swift imports a
// _Nonnull pointer as a plain value and a _Nullable one as an optional.
// Every pointer in this header carries one of the two. A parameter marked
// _Nonnull is still checked: NULL there is VMNET_BROKER_INVALID_REQUEST
// (or NULL, -1 or 0 from an accessor), never a crash.
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(nullability)
#define VMNET_BROKER_NULLABLE _Nullable
#define VMNET_BROKER_NONNULL _Nonnull
#endif
#endif
#ifndef VMNET_BROKER_NULLABLE
#define VMNET_BROKER_NULLABLE
#define VMNET_BROKER_NONNULL
#endif

// The broker's socket when VMNET_BROKER_SOCKET is not set.
#define VMNET_BROKER_DEFAULT_SOCKET "/run/vmnet-broker/vmnet-broker.sock"
// Environment variable naming the broker's socket.
#define VMNET_BROKER_SOCKET_ENV "VMNET_BROKER_SOCKET"
// Environment variable: the process-wide connection's reply timeout in
// milliseconds (a decimal number; 0 waits forever). Read when that
// connection is opened; ignored in set-user-ID and set-group-ID programs.
#define VMNET_BROKER_TIMEOUT_MS "VMNET_BROKER_TIMEOUT_MS"
// How long a call waits for the broker's reply unless told otherwise, in
// milliseconds. Creating a network takes milliseconds, at most a few
// seconds; a broker that has not answered in 30 s is stuck or stopped.
#define VMNET_BROKER_DEFAULT_TIMEOUT_MS 30000u

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

// A snapshot of the broker's state (the "status" reply), decoded. Opaque;
// read it with the accessors below and free it with
// vmnet_broker_status_free().
typedef struct vmnet_broker_status vmnet_broker_status_t;

// ---- The library -----------------------------------------------------------

// The library's version, "MAJOR.MINOR.PATCH" (CMake's project(VERSION)).
// A constant string; never NULL. Thread-safe.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NONNULL vmnet_broker_version(void);

// Returns a constant English description of status; never NULL ("unknown
// status" for values outside the enum). Thread-safe.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NONNULL
vmnet_broker_strerror(vmnet_broker_return_t status);

// ---- The original API: one process-wide connection ----------------------
//
// The connection is opened on first use (at $VMNET_BROKER_SOCKET or
// VMNET_BROKER_DEFAULT_SOCKET, with the reply timeout from
// $VMNET_BROKER_TIMEOUT_MS or VMNET_BROKER_DEFAULT_TIMEOUT_MS) and kept
// open for the life of the process so the networks stay acquired. Calls are
// serialized on it, so any thread may call. If the connection is lost (the
// broker cannot be written to, closes it, or does not answer within the
// timeout), the call fails with VMNET_BROKER_XPC_FAILURE and the connection
// is closed; the broker drops every reference it held, so networks acquired
// before must be acquired again. The next call opens a new connection.
//
// Fork: a child of fork() never uses its parent's connection. Its first
// call opens a connection of its own (a second peer, with its own
// references); the parent's connection and references are unaffected. The
// child may call even if another thread of the parent was inside a call at
// the moment of fork().

// Acquires network_name over the process-wide connection. Returns a new
// network the caller owns (free with vmnet_broker_network_free()), or NULL
// on failure. status, when not NULL, receives the result.
VMNET_BROKER_EXPORT vmnet_broker_network_t *VMNET_BROKER_NULLABLE
vmnet_broker_acquire_network(const char *VMNET_BROKER_NONNULL network_name,
                             vmnet_broker_return_t *VMNET_BROKER_NULLABLE
                                 status);

// Drops the process-wide connection's reference to network_name.
// VMNET_BROKER_NOT_FOUND, without connecting, while no connection is open.
VMNET_BROKER_EXPORT vmnet_broker_return_t
vmnet_broker_release_network(const char *VMNET_BROKER_NONNULL network_name);

// Opens an interface on network_name over the process-wide connection (as
// vmnet_broker_connection_open_interface(), acquiring the network on that
// connection if it does not hold it yet). Returns a new interface the caller
// owns (free with vmnet_broker_interface_free()), or NULL on failure. status,
// when not NULL, receives the result.
VMNET_BROKER_EXPORT vmnet_broker_interface_t *VMNET_BROKER_NULLABLE
vmnet_broker_open_interface(const char *VMNET_BROKER_NONNULL network_name,
                            vmnet_broker_return_t *VMNET_BROKER_NULLABLE
                                status);

// Why the broker refused the last request made over the process-wide
// connection, as vmnet_broker_connection_last_message() says: a new string
// the caller frees with free(), or NULL. Thread-safe; with several threads
// calling, it is the message of whichever call finished last.
VMNET_BROKER_EXPORT char *VMNET_BROKER_NULLABLE vmnet_broker_last_message(void);

// ---- Network serializations ----------------------------------------------

// Each string accessor returns a string owned by network, valid until
// vmnet_broker_network_free(network); NULL if the broker did not send that
// field (or network is NULL). Each number accessor returns 0 when the field
// was not sent. Keys a later broker adds stay reachable through
// vmnet_broker_network_json(). Thread-safe for concurrent reads of the
// same network.

// "name", "mode" ("shared", "host"), "uuid" (this instance of the network:
// one removed and created again has a new one) and "bridge" (the Linux
// bridge to attach a TAP or veth to).
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE vmnet_broker_network_name(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE vmnet_broker_network_mode(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_network_bridge(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE vmnet_broker_network_uuid(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
// IPv4: "subnet" ("192.168.64.0"), "mask" ("255.255.255.0"), the subnet's
// "prefix_length" (24) and the "gateway" (the host's address on the bridge).
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_network_subnet(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE vmnet_broker_network_mask(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
VMNET_BROKER_EXPORT unsigned vmnet_broker_network_prefix_length(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_network_gateway(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
// The configuration's "description"; NULL when it has none.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_network_description(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
// The first and last address DHCP hands out ("dhcp_start", "dhcp_end");
// NULL when the network runs no DHCP server.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_network_dhcp_start(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_network_dhcp_end(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
// The DNS server guests are told to use ("dns"); NULL when there is none.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE vmnet_broker_network_dns(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
// The network's IPv6 prefix ("fd12:3456:789a:1::") and its length (64);
// NULL and 0 when the network has no IPv6.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_network_ipv6_prefix(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
VMNET_BROKER_EXPORT unsigned vmnet_broker_network_ipv6_prefix_length(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
// The network's MTU.
VMNET_BROKER_EXPORT unsigned vmnet_broker_network_mtu(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);
// The whole serialization as JSON text (the "network" object).
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE vmnet_broker_network_json(
    const vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);

// Frees network (not the broker's reference). Accepts NULL.
VMNET_BROKER_EXPORT void vmnet_broker_network_free(
    vmnet_broker_network_t *VMNET_BROKER_NULLABLE network);

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

// The device's "name" ("vmt-" and 8 hex digits), the "mac" address the
// guest should use (a stable, locally administered address, the same for
// the same user, network and slot from one run to the next; the slot is the
// lowest one free among that user's live interfaces on the network), the
// "network" it is on and that network's "bridge", and the whole "interface"
// object as JSON text (later versions add keys). Strings are owned by iface,
// valid until vmnet_broker_interface_free(iface); NULL if the broker did not
// send that field (or iface is NULL). Thread-safe for concurrent reads of
// the same interface.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_interface_name(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_interface_mac(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_interface_network(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_interface_bridge(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_interface_json(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);
// The guest's addresses, known before it boots: "ipv4", the address the
// network's DHCP server has reserved for the guest's MAC (dotted quad), and
// "ipv6", the address SLAAC gives that MAC in the network's /64 (modified
// EUI-64; a guest using stable-privacy or temporary addresses picks others
// too). NULL when the network has no DHCP (or no IPv6), from an older
// broker, or if iface is NULL. Owned by iface, as above.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_interface_ipv4(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_interface_ipv6(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);
// The device's MTU (the bridge's), or 0 if the broker did not send one.
VMNET_BROKER_EXPORT unsigned vmnet_broker_interface_mtu(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);

// The TAP descriptor (close-on-exec), still owned by iface: closed by
// vmnet_broker_interface_free(). -1 once vmnet_broker_interface_take_fd()
// has taken it, or for a NULL iface. Thread-safe for concurrent reads,
// but not against vmnet_broker_interface_take_fd() on the same interface.
VMNET_BROKER_EXPORT int vmnet_broker_interface_fd(
    const vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);

// Transfers the descriptor to the caller, who must close it (the device goes
// away when the last copy is closed); it is close-on-exec, so clear
// FD_CLOEXEC (or dup2() it) to hand it to a program you exec. Afterwards
// vmnet_broker_interface_fd() returns -1 and vmnet_broker_interface_free()
// leaves it open. Returns -1 if it was already taken or iface is NULL.
// Not thread-safe against other calls on the same interface.
VMNET_BROKER_EXPORT int vmnet_broker_interface_take_fd(
    vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);

// Closes the descriptor unless it was taken, and frees iface. Accepts NULL.
VMNET_BROKER_EXPORT void vmnet_broker_interface_free(
    vmnet_broker_interface_t *VMNET_BROKER_NULLABLE iface);

// ---- Explicit connections -------------------------------------------------
//
// Calls on one connection are serialized (each takes the connection's lock),
// so a connection may be shared by threads; only
// vmnet_broker_connection_close() must not race another call on it. Once a
// call fails because the connection was lost (the broker went away, or did
// not reply within the connection's timeout), the broker has dropped its
// references and every later call returns VMNET_BROKER_XPC_FAILURE: connect
// again. A NULL connection, name or out-parameter is
// VMNET_BROKER_INVALID_REQUEST.
//
// Event loops: the connection's descriptor (vmnet_broker_connection_fd())
// becomes readable and hangs up (POLLIN | POLLHUP, EPOLLRDHUP) when the
// broker goes away; watch it to learn that the networks were dropped. Read
// nothing from it yourself.
//
// Fork: the child of fork() shares the parent's connection (the same peer,
// the same references). It may close its copy with
// vmnet_broker_connection_close(), which leaves the parent's connection
// open (it never shuts the socket down), or keep the descriptor open across
// exec() so the networks live as long as it does; it must make no calls on
// the connection, whose replies the parent would read. Connect again in the
// child for a peer of its own.

// Connects to the broker at socket_path (NULL: $VMNET_BROKER_SOCKET, else
// VMNET_BROKER_DEFAULT_SOCKET; the variable is ignored in set-user-ID and
// set-group-ID programs). The new connection waits
// VMNET_BROKER_DEFAULT_TIMEOUT_MS for each reply. On success stores a new
// connection the caller owns in *connection; on failure *connection is
// untouched. Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connect(
    const char *VMNET_BROKER_NULLABLE socket_path,
    vmnet_broker_connection_t *VMNET_BROKER_NULLABLE *VMNET_BROKER_NONNULL
        connection);

// Sets how long each later call on connection waits for the broker to take
// the request and reply, in milliseconds; 0 waits forever. A call that runs
// out of time returns VMNET_BROKER_XPC_FAILURE and the connection is lost
// (its socket is shut down, so a late reply can never be taken for another
// request's, and the broker drops its references). Thread-safe; a call
// already waiting keeps the timeout it started with.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_set_timeout(
    vmnet_broker_connection_t *VMNET_BROKER_NONNULL connection,
    unsigned timeout_ms);

// Acquires network_name on connection. On success stores a new network the
// caller owns in *network; on failure *network is untouched. Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_acquire(
    vmnet_broker_connection_t *VMNET_BROKER_NONNULL connection,
    const char *VMNET_BROKER_NONNULL network_name,
    vmnet_broker_network_t *VMNET_BROKER_NULLABLE *VMNET_BROKER_NONNULL
        network);

// Drops connection's reference to network_name (VMNET_BROKER_NOT_FOUND if
// it holds none). Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_release(
    vmnet_broker_connection_t *VMNET_BROKER_NONNULL connection,
    const char *VMNET_BROKER_NONNULL network_name);

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
vmnet_broker_connection_open_interface(
    vmnet_broker_connection_t *VMNET_BROKER_NONNULL connection,
    const char *VMNET_BROKER_NONNULL network_name,
    vmnet_broker_interface_t *VMNET_BROKER_NULLABLE *VMNET_BROKER_NONNULL
        iface);

// Asks for the current DHCP leases of network_name (a peer allowed on that
// network only; one configured but not running has none). On success
// stores a malloc'd JSON text the caller frees with free(): an array of
// {"mac", "ipv4", "hostname" (when the guest sent one), "expiry" (seconds
// since the epoch, 0 for never)} objects; *json untouched on failure.
// Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_leases(
    vmnet_broker_connection_t *VMNET_BROKER_NONNULL connection,
    const char *VMNET_BROKER_NONNULL network_name,
    char *VMNET_BROKER_NULLABLE *VMNET_BROKER_NONNULL json);

// Asks for the broker's state. On success stores a malloc'd JSON text (the
// "status" object) the caller frees with free(); *json untouched on failure.
// Thread-safe. vmnet_broker_connection_get_status() gives the same decoded.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_status(
    vmnet_broker_connection_t *VMNET_BROKER_NONNULL connection,
    char *VMNET_BROKER_NULLABLE *VMNET_BROKER_NONNULL json);

// Asks for the broker's state. On success stores a new status the caller
// owns (free with vmnet_broker_status_free()) in *status; on failure
// *status is untouched. Thread-safe.
VMNET_BROKER_EXPORT vmnet_broker_return_t vmnet_broker_connection_get_status(
    vmnet_broker_connection_t *VMNET_BROKER_NONNULL connection,
    vmnet_broker_status_t *VMNET_BROKER_NULLABLE *VMNET_BROKER_NONNULL status);

// Why the broker refused the last request made on connection, in English
// for people: the "message" of its error reply ("subnet 10.0.0.0/24
// overlaps ...", "this connection already holds 8 networks ...", the
// naming rule for an invalid name). Status codes are for programs; this
// text is for showing, and its wording may change between versions.
// Returns a new string the caller owns and frees with free(), or NULL when
// the last call's reply carried no message (it succeeded, the broker is
// too old to send one, or the call failed before a reply came) or memory
// ran out. Thread-safe: the copy is taken under the connection's lock;
// with threads sharing a connection it is the message of whichever call
// finished last.
VMNET_BROKER_EXPORT char *VMNET_BROKER_NULLABLE
vmnet_broker_connection_last_message(
    vmnet_broker_connection_t *VMNET_BROKER_NULLABLE connection);

// The connection's socket descriptor, still owned by connection. A program
// that execs another may pass it on (clear FD_CLOEXEC, or dup() it) so the
// networks live as long as that program does. -1 for a NULL connection.
// Thread-safe.
VMNET_BROKER_EXPORT int vmnet_broker_connection_fd(
    const vmnet_broker_connection_t *VMNET_BROKER_NULLABLE connection);

// Shuts the connection down without freeing it, from any thread: a call
// waiting for a reply on it returns VMNET_BROKER_XPC_FAILURE at once, the
// broker drops the connection's references (in this process and in every
// process sharing the socket), and later calls fail the same way. Use it to
// cancel a call; free the connection with vmnet_broker_connection_close()
// once no other thread uses it. Accepts NULL. Thread-safe.
VMNET_BROKER_EXPORT void vmnet_broker_connection_shutdown(
    vmnet_broker_connection_t *VMNET_BROKER_NULLABLE connection);

// Closes the connection's descriptor and frees it; the broker drops its
// references unless another process still holds a copy of the socket.
// Networks and interfaces obtained from it stay valid (they are copies).
// Accepts NULL. Must not race another call on the same connection.
VMNET_BROKER_EXPORT void vmnet_broker_connection_close(
    vmnet_broker_connection_t *VMNET_BROKER_NULLABLE connection);

// ---- Status snapshots --------------------------------------------------
//
// Accessors read a status decoded once; they never talk to the broker.
// Indexes run from 0 to the count minus 1; an index out of range (or a NULL
// status) gives NULL, 0, -1 or false as each accessor says. Strings are owned
// by status, valid until vmnet_broker_status_free(status). Thread-safe for
// concurrent reads of the same status.

// The broker's version ("version"), NULL from a broker too old to send it.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_status_broker_version(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status);

// The networks that exist (being used, or idle and waiting for removal).
VMNET_BROKER_EXPORT size_t vmnet_broker_status_network_count(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status);
// Network index's "name", "mode", "bridge", "subnet" and "uuid".
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_status_network_name(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_status_network_mode(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_status_network_bridge(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_status_network_subnet(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_status_network_uuid(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
// Its subnet's prefix length; 0 when not sent or out of range.
VMNET_BROKER_EXPORT unsigned vmnet_broker_status_network_prefix_length(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
// How many peers hold it; 0 when none does or out of range.
VMNET_BROKER_EXPORT unsigned vmnet_broker_status_network_peers(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
// Seconds until an unused network is removed; a negative number (-1.0)
// while it is in use, persistent, or out of range.
VMNET_BROKER_EXPORT double vmnet_broker_status_network_idle_remaining(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
// Whether it is kept even when unused; false when out of range.
VMNET_BROKER_EXPORT bool vmnet_broker_status_network_persistent(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
// Whether it works only in part (its dnsmasq was given up on, or the broker
// could not repair its bridge or rules); false when whole, out of range, or
// from a broker that does not say.
VMNET_BROKER_EXPORT bool vmnet_broker_status_network_degraded(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
// Why it is degraded, in words; NULL while it is not (or out of range).
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_status_network_degraded_reason(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);

// The peers (connections) the broker serves, the asking one included.
VMNET_BROKER_EXPORT size_t vmnet_broker_status_peer_count(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status);
// Peer index's process id, user id and group id; -1 when out of range.
VMNET_BROKER_EXPORT int64_t vmnet_broker_status_peer_pid(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
VMNET_BROKER_EXPORT int64_t vmnet_broker_status_peer_uid(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
VMNET_BROKER_EXPORT int64_t vmnet_broker_status_peer_gid(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
// How many networks peer index holds, and the name of its network_index-th.
VMNET_BROKER_EXPORT size_t vmnet_broker_status_peer_network_count(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index);
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE
vmnet_broker_status_peer_network_name(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status, size_t index,
    size_t network_index);

// The whole "status" object as JSON text, for keys the accessors do not
// cover. Owned by status; NULL only for a NULL status.
VMNET_BROKER_EXPORT const char *VMNET_BROKER_NULLABLE vmnet_broker_status_json(
    const vmnet_broker_status_t *VMNET_BROKER_NULLABLE status);

// Frees status. Accepts NULL.
VMNET_BROKER_EXPORT void
vmnet_broker_status_free(vmnet_broker_status_t *VMNET_BROKER_NULLABLE status);

#ifdef __cplusplus
}
#endif

#endif
