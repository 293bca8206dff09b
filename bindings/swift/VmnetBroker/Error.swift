// SPDX-License-Identifier: Apache-2.0
// VmnetBroker.Error: the C library's status values as a Swift error.
import CVmnetBroker

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension VmnetBroker {
    /// A failed call's status. Compare with the static members, or match
    /// them in a `catch`:
    ///
    /// ```swift
    /// do { _ = try VmnetBroker.acquireNetwork(named: "lab") }
    /// catch VmnetBroker.Error.notFound { print("no network named lab") }
    /// ```
    ///
    /// A value a later library adds stays representable (``status`` keeps
    /// it; its description is the library's "unknown status").
    public struct Error: Swift.Error, LocalizedError, Equatable, Hashable,
        CustomStringConvertible, Sendable
    {
        /// The C library's status value.
        public var status: vmnet_broker_return_t { vmnet_broker_return_t(rawValue: rawValue) }
        // Stored as the raw number: Equatable, Hashable and Sendable
        // whatever the importer makes of the C enum.
        private let rawValue: vmnet_broker_return_t.RawValue

        public init(_ status: vmnet_broker_return_t) {
            rawValue = status.rawValue
        }

        /// Could not connect to the broker, send it the request, or it went
        /// away (or did not reply within the timeout); also every call on a
        /// closed ``Connection``.
        public static let connectionFailure = Error(VMNET_BROKER_CONNECTION_FAILURE)
        /// The original library's name for ``connectionFailure``.
        public static let xpcFailure = Error(VMNET_BROKER_XPC_FAILURE)
        /// The broker's reply could not be understood.
        public static let invalidReply = Error(VMNET_BROKER_INVALID_REPLY)
        /// The user is not allowed to use the network.
        public static let notAllowed = Error(VMNET_BROKER_NOT_ALLOWED)
        /// The request was malformed (an invalid network name, for one).
        public static let invalidRequest = Error(VMNET_BROKER_INVALID_REQUEST)
        /// No such network (or, for release, the connection does not hold it).
        public static let notFound = Error(VMNET_BROKER_NOT_FOUND)
        /// The broker failed to create the network or the TAP device.
        public static let createFailure = Error(VMNET_BROKER_CREATE_FAILURE)
        /// Internal error; also a 9th network or a 17th interface on one
        /// connection.
        public static let internalError = Error(VMNET_BROKER_INTERNAL_ERROR)

        /// The C library's description of the status.
        public var errorDescription: String? {
            String(cString: vmnet_broker_strerror(status))
        }

        public var description: String {
            "vmnet-broker error \(rawValue): \(String(cString: vmnet_broker_strerror(status)))"
        }

        /// Lets `catch VmnetBroker.Error.notFound` match a thrown error.
        public static func ~= (pattern: Error, value: any Swift.Error) -> Bool {
            guard let error = value as? Error else { return false }
            return error == pattern
        }
    }
}
