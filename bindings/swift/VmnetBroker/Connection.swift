// SPDX-License-Identifier: Apache-2.0
// VmnetBroker.Connection: one peer of the broker, with its own references.
import CVmnetBroker

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension VmnetBroker {
    /// An explicit connection to the broker: one peer, holding its own
    /// references, dropped when it is closed (``close()`` or deinit) or the
    /// process ends.
    ///
    /// Sendable: any task or thread may call it at once. The C library
    /// serializes the calls on one connection; this class adds only what C
    /// leaves to the caller, that freeing the connection must not race a
    /// call: ``close()`` cancels the calls in flight and frees it once they
    /// have returned.
    public final class Connection: @unchecked Sendable {
        // Guarded by gate: the C connection (nil once closed) and the number
        // of calls using it.
        private var handle: OpaquePointer?
        private var inFlight = 0
        private let gate = Gate()

        /// Connects to the broker at `socketPath` (nil: `$VMNET_BROKER_SOCKET`,
        /// else ``VmnetBroker/defaultSocketPath``). Each reply is awaited at
        /// most 30 s unless ``setTimeout(milliseconds:)`` says otherwise.
        public init(socketPath: String? = nil) throws {
            if let socketPath, socketPath.utf8.contains(0) {
                throw Error.invalidRequest
            }
            var connection: OpaquePointer?
            let status = vmnet_broker_connect(socketPath, &connection)
            guard status == VMNET_BROKER_SUCCESS, let connection else {
                throw Error(status == VMNET_BROKER_SUCCESS ? VMNET_BROKER_CONNECTION_FAILURE : status)
            }
            handle = connection
        }

        deinit {
            // No call can be in flight: each holds a reference to self.
            vmnet_broker_connection_close(handle)
        }

        /// Acquires `name` on this connection; it stays acquired until
        /// ``release(named:)`` or the connection closes. Acquiring a network
        /// already held adds no reference.
        public func acquire(named name: String) throws -> Network {
            try checkName(name)
            return try using { connection in
                var network: OpaquePointer?
                let status = vmnet_broker_connection_acquire(connection, name, &network)
                guard status == VMNET_BROKER_SUCCESS, let network else {
                    throw Error(status == VMNET_BROKER_SUCCESS ? VMNET_BROKER_INVALID_REPLY : status,
                                brokerMessage: message(of: connection))
                }
                defer { vmnet_broker_network_free(network) }
                return Network(network)
            }
        }

        /// Drops this connection's reference to `name` (``Error/notFound``
        /// when it holds none).
        public func release(named name: String) throws {
            try checkName(name)
            try using { connection in
                let status = vmnet_broker_connection_release(connection, name)
                guard status == VMNET_BROKER_SUCCESS else {
                    throw Error(status, brokerMessage: message(of: connection))
                }
            }
        }

        /// Asks the broker for a TAP device on `name`, acquiring the network
        /// on this connection first if it does not hold it.
        /// ``Error/internalError`` when 16 of this connection's interfaces
        /// still exist.
        public func openInterface(named name: String) throws -> Interface {
            try checkName(name)
            return try using { connection in
                var iface: OpaquePointer?
                let status = vmnet_broker_connection_open_interface(connection, name, &iface)
                guard status == VMNET_BROKER_SUCCESS, let iface else {
                    throw Error(status == VMNET_BROKER_SUCCESS ? VMNET_BROKER_INVALID_REPLY : status,
                                brokerMessage: message(of: connection))
                }
                return Interface(iface)
            }
        }

        /// The broker's state: every network and every peer.
        public func status() throws -> Status {
            try using { connection in
                var snapshot: OpaquePointer?
                let status = vmnet_broker_connection_get_status(connection, &snapshot)
                guard status == VMNET_BROKER_SUCCESS, let snapshot else {
                    throw Error(status == VMNET_BROKER_SUCCESS ? VMNET_BROKER_INVALID_REPLY : status,
                                brokerMessage: message(of: connection))
                }
                defer { vmnet_broker_status_free(snapshot) }
                return try Status(json: string(vmnet_broker_status_json(snapshot)))
            }
        }

        /// How long each later call waits for the broker's reply; 0 waits
        /// forever. A call that runs out of time throws
        /// ``Error/connectionFailure`` and the connection is lost (the broker
        /// drops its references; connect again).
        public func setTimeout(milliseconds: UInt32) throws {
            try using { connection in
                let status = vmnet_broker_connection_set_timeout(connection, milliseconds)
                guard status == VMNET_BROKER_SUCCESS else { throw Error(status) }
            }
        }

        /// ``setTimeout(milliseconds:)`` with a Duration (rounded up to a
        /// millisecond; at most about 49 days).
        public func setTimeout(_ timeout: Duration) throws {
            let (seconds, attoseconds) = timeout.components
            guard seconds >= 0, attoseconds >= 0 else { throw Error.invalidRequest }
            let ms = seconds.multipliedReportingOverflow(by: 1000).partialValue
                + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
            guard seconds < Int64(UInt32.max) / 1000, ms <= Int64(UInt32.max) else {
                throw Error.invalidRequest
            }
            try setTimeout(milliseconds: UInt32(ms))
        }

        /// Why the broker refused the last request made on this connection
        /// (its reply's "message"), or nil when that call succeeded, no reply
        /// carried one, or the connection is closed. The C library keeps one
        /// message per connection, the last call's: with tasks sharing a
        /// connection it is the message of whichever call finished last. A
        /// thrown ``Error`` already holds its own call's message in
        /// ``Error/brokerMessage``, taken right after that call; prefer it.
        public var lastMessage: String? {
            (try? using { message(of: $0) }) ?? nil
        }

        /// The connection's socket, still owned by the connection; -1 once
        /// closed. Watch it in an event loop: it becomes readable and hangs
        /// up when the broker goes away. Read nothing from it.
        public var fileDescriptor: Int32 {
            (try? using { vmnet_broker_connection_fd($0) }) ?? -1
        }

        /// Cancels: calls waiting on this connection throw
        /// ``Error/connectionFailure`` at once, the broker drops its
        /// references (in every process sharing the socket), and later calls
        /// fail the same way. ``close()`` still frees it.
        public func shutdown() {
            _ = try? using { vmnet_broker_connection_shutdown($0) }
        }

        /// Closes the connection; the broker drops its references (unless
        /// another process holds a copy of the socket). Calls in flight are
        /// cancelled and throw ``Error/connectionFailure``, as do later calls.
        /// Networks and interfaces obtained from it stay valid. Idempotent.
        public func close() {
            gate.lock()
            guard let connection = handle else {
                gate.unlock()
                return
            }
            handle = nil
            if inFlight > 0 {
                // Wake the calls waiting for replies, then wait for them to
                // leave C before freeing what they use.
                vmnet_broker_connection_shutdown(connection)
                while inFlight > 0 { gate.wait() }
            }
            gate.unlock()
            vmnet_broker_connection_close(connection)
        }

        /// Runs body with the C connection, counted as in flight so that
        /// close() waits for it; throws connectionFailure once closed.
        @inline(__always)
        private func using<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
            gate.lock()
            guard let connection = handle else {
                gate.unlock()
                throw Error.connectionFailure
            }
            inFlight += 1
            gate.unlock()
            defer {
                gate.lock()
                inFlight -= 1
                if inFlight == 0, handle == nil { gate.broadcast() }
                gate.unlock()
            }
            return try body(connection)
        }
    }
}

/// A mutex and a condition variable, on the heap so they never move.
final class Gate: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }
}
