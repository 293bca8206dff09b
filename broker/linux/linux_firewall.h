// SPDX-License-Identifier: Apache-2.0
// The broker's nftables table: forwarding, NAT, isolation and port forwards.
#ifndef VMNET_BROKER_LINUX_LINUX_FIREWALL_H
#define VMNET_BROKER_LINUX_LINUX_FIREWALL_H

#include <stdbool.h>

#include "core/backend.h"
#include "core/network_config.h"

// Every rule the broker makes lives in one table of family inet (and its
// TAP chains in one of family netdev): this one for the default instance,
// "vmnet-broker-<id>" for another (linux_instance_table()). The isolation
// and NAT rules match the instance's bridge prefix only.
#define FIREWALL_TABLE "vmnet-broker"

struct firewall;

// Creates the table with its base chains, replacing in the same transaction
// any table of that name a previous instance left behind (crash recovery).
// Stores the firewall in *out and returns 0; on failure logs and returns a
// negative errno, *out untouched.
int firewall_new(struct firewall **out);

// A network found running (adoption) and its TAP devices' chains.
struct firewall_restore {
    const struct network_config *config;
    const struct network_info *info;
    const struct interface_info *taps;
    size_t n_taps;
};

// As firewall_new(), but the new table holds the rules of each of the n
// networks and the ingress chains of their TAPs, all in the one transaction
// that replaces the old table: the adopted guests' traffic never meets a
// table without its rules. When nftables refuses that transaction (a port
// forward now taken twice), falls back to an empty table and adds each
// network and TAP on its own, logging those refused.
int firewall_new_restoring(struct firewall **out,
                           const struct firewall_restore *networks, size_t n);

// Makes firewall_free() keep the table: networks left running for the next
// broker still need their rules.
void firewall_keep_table(struct firewall *fw);

// Deletes the table and frees fw. Accepts NULL.
void firewall_free(struct firewall *fw);

// Adds every rule of the network on info->bridge, in one transaction: either
// all of them are in or none. Both modes keep guests of different broker
// networks apart; shared forwards and masquerades to the outside (IPv4, and
// IPv6 with NAT66 when info->ipv6) and installs config->port_forwards, whose
// guest addresses must be hosts of the subnet; host forwards nothing. Returns
// 0, or a negative errno (logged): -EINVAL for a bad bridge name or port
// forward (port forwards on a host network included), -EEXIST when the bridge
// already has rules, -EADDRINUSE when another network forwards the same port,
// -EIO when nftables refused the transaction.
int firewall_add_network(struct firewall *fw,
                         const struct network_config *config,
                         const struct network_info *info);

// Removes exactly the rules firewall_add_network() made for bridge, and
// nothing else. No-op when the bridge has none. Failures are logged.
void firewall_remove_network(struct firewall *fw, const char *bridge);

// Adds the anti-spoofing ingress chain of the TAP info->name (a broker-made
// "vmt-" name), in one transaction: only frames from info->mac, ARP and IPv4
// from info->ipv4 (when 0, any address of network's subnet but its gateway;
// DHCP's 0.0.0.0), IPv6 from the MAC's
// link-local address or info->ipv6 (DAD's ::), and no DHCP server replies,
// router advertisements or redirects. Returns 0 or a negative errno (logged).
int firewall_add_interface(struct firewall *fw,
                           const struct network_info *network,
                           const struct interface_info *info);

// The commands firewall_add_interface() runs for info (malloc'd), or NULL
// without memory; their table is "netdev " linux_instance_table(). No check of
// the name: bench/ applies them to other ports to measure their cost.
char *firewall_interface_rules(const struct network_info *network,
                               const struct interface_info *info);

// Removes the chain of the TAP name, if it has one. Failures are logged.
void firewall_remove_interface(struct firewall *fw, const char *name);

// Removes the chains of TAPs that no longer exist: the kernel keeps a netdev
// chain after its device is gone (and would hook it to a new device of that
// name).
void firewall_remove_gone_interfaces(struct firewall *fw);

// True when name is the broker's table (in either family): for a watcher of
// nftables events.
bool firewall_is_own_table(const char *name);

// True when the firewall has the rules of the network on bridge.
bool firewall_has_network(struct firewall *fw, const char *bridge);

// True when the tables are whole: both exist, their base chains have their
// rules, every network with rules has its chains and every TAP its chain.
// Costs a listing of both tables (in proportion to the networks); quiet. A
// listing that fails counts as damage.
bool firewall_intact(struct firewall *fw);

// Makes both tables and their base chains again (as firewall_new()), after
// they were flushed or damaged behind the broker's back. The networks' rules
// are forgotten (firewall_add_network() adds them again); the TAP chains are
// remembered as lost, for firewall_restore_interfaces(). Returns 0 or a
// negative errno (logged).
int firewall_recreate(struct firewall *fw);

// Adds again the lost chains (firewall_recreate()) of the TAPs on bridge,
// forgetting those whose device is gone. Returns how many were restored, or
// a negative errno (logged) when one could not be.
int firewall_restore_interfaces(struct firewall *fw, const char *bridge);

// True when a base chain of another table on the forward hook has policy
// drop (Docker sets ip filter FORWARD so): no accept in the broker's table can
// override it. Logs a warning naming each such chain and the fix.
bool firewall_foreign_forward_drop(struct firewall *fw);

#endif
