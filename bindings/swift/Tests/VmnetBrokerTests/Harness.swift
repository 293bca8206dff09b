// SPDX-License-Identifier: Apache-2.0
// Test harness: the real broker binary on a private socket, in the private
// network namespace run-in-netns.sh made; helpers to wait and run programs.
import Foundation
import Testing
import VmnetBroker

enum Environment {
    static let brokerPath = ProcessInfo.processInfo.environment["VMNET_BROKER_BIN"]
    /// Set by bindings/swift/run-in-netns.sh: never start a broker (which
    /// makes bridges) in the host's own network namespace.
    static let insideNetns = ProcessInfo.processInfo.environment["VMNET_BROKER_SWIFT_NETNS"] == "1"
    static var ready: Bool { brokerPath != nil && insideNetns && getuid() == 0 }
    static let notReady = Comment(rawValue:
        "needs root, VMNET_BROKER_BIN and a private network namespace: run by ctest through bindings/swift/run-in-netns.sh")

    /// The directory of the test binary, where SwiftPM also put the helper
    /// executable vmnet-broker-swift-peer.
    static var productsDirectory: URL {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // On Linux the tests are one executable, .../debug/NAME.xctest.
        if url.lastPathComponent.hasSuffix(".xctest") { url.deleteLastPathComponent() }
        return url
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
}

/// Polls cond every 10 ms until it holds or `seconds` pass. The deadline
/// is generous: it catches a hang, never a slow machine.
func waitUntil(seconds: Double = 30, _ cond: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        if try cond() { return true }
        if Date() > deadline { return false }
        usleep(10_000)
    }
}

/// A broker process with its own socket and configuration directory (in a
/// fresh directory under /tmp, readable by every user so that a peer run
/// as nobody can reach the socket).
final class Broker {
    let directory: String
    let socket: String
    let configDirectory: String
    let process = Process()
    private var stopped = false

    /// configs: file name without ".json" -> its JSON text. failingDnsmasq
    /// names a network whose dnsmasq starts once and then fails at every
    /// restart (the broker's test hook VMNET_BROKER_DNSMASQ), so that the
    /// broker gives up on it.
    init(configs: [String: String] = [:], idleTimeout: Int = 30,
         failingDnsmasq: String? = nil) throws {
        guard let path = Environment.brokerPath else {
            throw HarnessError(description: "VMNET_BROKER_BIN is not set")
        }
        var template = Array("/tmp/vmnet-broker-swift.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw HarnessError(description: "mkdtemp: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        chmod(directory, 0o755)
        socket = directory + "/broker.sock"
        configDirectory = directory + "/conf"
        try FileManager.default.createDirectory(atPath: configDirectory, withIntermediateDirectories: false)
        for (name, text) in configs {
            try text.write(toFile: "\(configDirectory)/\(name).json", atomically: true, encoding: .utf8)
        }
        process.executableURL = URL(fileURLWithPath: path)
        // The test's own guest MAC key (--state-dir), never the host's.
        process.arguments = ["--socket", socket, "--config-dir", configDirectory,
                             "--idle-timeout", String(idleTimeout),
                             "--state-dir", directory + "/state"]
        // The default instance's plain names ("vmb-shared"), which the tests expect.
        var environment = ProcessInfo.processInfo.environment
        environment["VMNET_BROKER_INSTANCE"] = "default"
        environment["VMNET_BROKER_DNSMASQ"] = nil
        if let failing = failingDnsmasq {
            let wrapper = directory + "/failing-dnsmasq.sh"
            try failingDnsmasqScript(network: failing)
                .write(toFile: wrapper, atomically: true, encoding: .utf8)
            chmod(wrapper, 0o755)
            environment["VMNET_BROKER_DNSMASQ"] = wrapper
        }
        process.environment = environment
        _ = FileManager.default.createFile(atPath: directory + "/broker.log", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: directory + "/broker.log")
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let up = waitUntil {
            guard process.isRunning else { return true }
            return (try? VmnetBroker.Connection(socketPath: socket)) != nil
        }
        guard up, process.isRunning else {
            let log = log
            stop()
            throw HarnessError(description: "the broker did not start; its log:\n\(log)")
        }
    }

    var pid: pid_t { process.processIdentifier }

    var log: String {
        (try? String(contentsOfFile: directory + "/broker.log", encoding: .utf8)) ?? ""
    }

    /// Ends the broker (SIGTERM, which it ignores while it has peers, then
    /// SIGKILL) and removes its directory. What a killed broker leaves (its
    /// dnsmasq processes) the next one removes, and the PID namespace ends.
    func stop() {
        if stopped { return }
        stopped = true
        if process.isRunning {
            kill(pid, SIGCONT)
            kill(pid, SIGTERM)
            if !waitUntil(seconds: 3, { !process.isRunning }) {
                // Killed, the broker leaves its dnsmasq processes running,
                // holding the gateway's DNS port the next broker needs.
                let helpers = children(of: pid)
                kill(pid, SIGKILL)
                for helper in helpers { kill(helper, SIGKILL) }
                _ = waitUntil { helpers.allSatisfy { !alive($0) } }
            }
            process.waitUntilExit()
        }
        if ProcessInfo.processInfo.environment["VMNET_BROKER_SWIFT_LOG"] != nil {
            print("---- broker log \(directory)\n\(log)")
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    /// A new connection to this broker.
    func connect() throws -> VmnetBroker.Connection {
        try VmnetBroker.Connection(socketPath: socket)
    }
}

/// A stand-in for dnsmasq: the network's first dnsmasq is the real one,
/// each later start (a restart) fails at once; other networks' run as usual.
/// The broker starts it with --conf-file=RUNTIME_DIR/NETWORK/dnsmasq.conf.
func failingDnsmasqScript(network: String) -> String {
    """
    #!/bin/sh
    case "$*" in
    */\(network)/dnsmasq.conf*)
        [ -e "$0.started" ] && exit 1
        : > "$0.started" ;;
    esac
    exec /usr/sbin/dnsmasq "$@"

    """
}

/// Runs a program to its end; its exit status and standard output.
func run(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The processes whose parent is pid (from /proc/PID/stat).
func children(of pid: pid_t) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> pid_t? in
        guard let child = pid_t(entry), let fields = statFields(child),
              fields.count > 1, pid_t(fields[1]) == pid else { return nil }
        return child
    }
}

/// Whether pid still runs (a zombie has already let go of its sockets).
func alive(_ pid: pid_t) -> Bool {
    guard let fields = statFields(pid), let state = fields.first else { return false }
    return state != "Z"
}

/// The fields of /proc/PID/stat after the command name: state, ppid, ...
func statFields(_ pid: pid_t) -> [Substring]? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(after: close)...].split(separator: " ")
}
