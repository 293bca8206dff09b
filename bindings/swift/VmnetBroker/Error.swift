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
    ///
    /// An error thrown for a broker's refusal also carries the broker's
    /// explanation, ``brokerMessage`` (why a creation failed, the 8-network
    /// limit, the naming rule), appended to its descriptions. Equality,
    /// hashing and `catch` patterns look at the status only: the message is
    /// for people, and its wording may change between versions.
    public struct Error: Swift.Error, LocalizedError, Equatable, Hashable,
        CustomStringConvertible, Sendable
    {
        /// The C library's status value.
        public var status: vmnet_broker_return_t { vmnet_broker_return_t(rawValue: rawValue) }
        // Stored as the raw number: Equatable, Hashable and Sendable
        // whatever the importer makes of the C enum.
        private let rawValue: vmnet_broker_return_t.RawValue

        /// The broker's "message" for the refused request, or nil when its
        /// reply carried none (or the call failed before a reply came).
        public let brokerMessage: String?

        public init(_ status: vmnet_broker_return_t, brokerMessage: String? = nil) {
            rawValue = status.rawValue
            self.brokerMessage = brokerMessage
        }

        /// By status only, so `catch VmnetBroker.Error.notFound` and `==`
        /// against the static members match whatever the broker said.
        public static func == (lhs: Error, rhs: Error) -> Bool {
            lhs.rawValue == rhs.rawValue
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(rawValue)
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

        /// The C library's description of the status, then the broker's
        /// message when there is one.
        public var errorDescription: String? {
            let text = String(cString: vmnet_broker_strerror(status))
            guard let brokerMessage, !brokerMessage.isEmpty else { return text }
            return "\(text): \(brokerMessage)"
        }

        public var description: String {
            "vmnet-broker error \(rawValue): \(errorDescription ?? "")"
        }

        /// Lets `catch VmnetBroker.Error.notFound` match a thrown error.
        public static func ~= (pattern: Error, value: any Swift.Error) -> Bool {
            guard let error = value as? Error else { return false }
            return error == pattern
        }
    }
}
