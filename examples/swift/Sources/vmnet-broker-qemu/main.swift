// SPDX-License-Identifier: Apache-2.0
// Acquires a network, opens a TAP interface on it and execs QEMU with the
// descriptor and MAC; prints the network and interface when QEMU is absent.
//
// Usage: vmnet-broker-qemu [--network NAME] [--print] [-- QEMU_ARGUMENTS...]
//   e.g. vmnet-broker-qemu -- -nographic -m 512 -kernel bzImage -initrd rd.img
// $VMNET_BROKER_QEMU names the QEMU binary (default: qemu-system-x86_64 on
// PATH); $VMNET_BROKER_SOCKET the broker's socket.
import VmnetBroker

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    print("vmnet-broker-qemu: \(message)")
    exit(1)
}

var networkName = "shared"
var printOnly = false
var qemuArguments: [String] = []
var rest = CommandLine.arguments.dropFirst()
while let argument = rest.popFirst() {
    switch argument {
    case "--network":
        guard let name = rest.popFirst() else { fail("--network needs a name") }
        networkName = name
    case "--print":
        printOnly = true
    case "--":
        qemuArguments = Array(rest)
        rest = []
    default:
        fail("unknown argument \(argument); usage: vmnet-broker-qemu [--network NAME] [--print] [-- QEMU_ARGUMENTS...]")
    }
}

/// The QEMU binary: $VMNET_BROKER_QEMU, else qemu-system-x86_64 on PATH.
func findQEMU() -> String? {
    if let path = getenv("VMNET_BROKER_QEMU").map({ String(cString: $0) }) {
        return access(path, X_OK) == 0 ? path : nil
    }
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/qemu-system-x86_64"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}

/// Lets a descriptor survive exec (the library opens them close-on-exec).
func keepAcrossExec(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFD)
    if flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0 {
        fail("cannot keep descriptor \(fd) open across exec")
    }
}

let connection: VmnetBroker.Connection
let network: VmnetBroker.Network
let interface: VmnetBroker.Interface
do {
    connection = try VmnetBroker.Connection()
    network = try connection.acquire(named: networkName)
    interface = try connection.openInterface(named: networkName)
} catch VmnetBroker.Error.notFound {
    fail("no network named \(networkName)")
} catch VmnetBroker.Error.notAllowed {
    fail("you may not use the network \(networkName)")
} catch {
    fail("\(error)")
}

guard !printOnly, let qemu = findQEMU() else {
    print("""
        network \(network.name) (\(network.mode)) on bridge \(network.bridge)
          subnet \(network.subnet)/\(network.prefixLength), gateway \(network.gateway), mtu \(network.mtu)
          dhcp \(network.dhcpStart ?? "-") - \(network.dhcpEnd ?? "-"), dns \(network.dns ?? "-")
          ipv6 \(network.ipv6Prefix.map { "\($0)/\(network.ipv6PrefixLength)" } ?? "-")
        interface \(interface.name) mac \(interface.mac) (descriptor \(interface.fileDescriptor))
        """)
    if !printOnly { print("(no QEMU found: set VMNET_BROKER_QEMU or put qemu-system-x86_64 on PATH)") }
    exit(0)
}

// QEMU inherits both descriptors: the TAP device, and the connection, so the
// network stays acquired exactly as long as QEMU runs.
let tap = interface.takeFileDescriptor()
keepAcrossExec(tap)
keepAcrossExec(connection.fileDescriptor)
let vhost = access("/dev/vhost-net", R_OK | W_OK) == 0 ? "on" : "off"
let arguments = [qemu,
                 "-netdev", "tap,id=net0,fd=\(tap),vhost=\(vhost)",
                 "-device", "virtio-net-pci,netdev=net0,mac=\(interface.mac)"] + qemuArguments
var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
execv(qemu, &argv)
fail("cannot run \(qemu): \(String(cString: strerror(errno)))")
