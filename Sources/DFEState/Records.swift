public import DFECore
public import Foundation

/// One step of the journal: what was intended and what came of it.
public struct JournalEntry: Sendable, Hashable {
    /// `started` (intent written), `succeeded`, `failed`, or `interrupted` (found unfinished by a later run).
    public enum Status: String, Sendable, Codable {
        case started, succeeded, failed, interrupted
    }

    public var id: Int64
    public var runID: Int64
    public var instance: String
    public var resource: ResourceKind
    public var action: Action
    public var reason: String
    public var status: Status
    public var error: String?
    public var startedAt: Date
    public var finishedAt: Date?

    public init(
        id: Int64, runID: Int64, instance: String, resource: ResourceKind, action: Action, reason: String,
        status: Status, error: String?, startedAt: Date, finishedAt: Date?
    ) {
        self.id = id
        self.runID = runID
        self.instance = instance
        self.resource = resource
        self.action = action
        self.reason = reason
        self.status = status
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// Who holds the state lease and until when.
public struct LeaseHolder: Sendable, Hashable, CustomStringConvertible {
    public var pid: Int32
    public var host: String
    public var acquiredAt: Date
    public var expiresAt: Date

    public init(pid: Int32, host: String, acquiredAt: Date, expiresAt: Date) {
        self.pid = pid
        self.host = host
        self.acquiredAt = acquiredAt
        self.expiresAt = expiresAt
    }

    /// `PID@HOST`.
    public var description: String { "\(pid)@\(host)" }
}

/// Typed failures of the state store.
public enum StateError: Error, Sendable, CustomStringConvertible {
    /// Another live process holds the lease.
    case leaseHeld(LeaseHolder)
    /// The lease was lost (taken over after expiry) while running.
    case leaseLost
    /// The state file was written by a newer dfe.
    case newerSchema(path: String)
    /// SQLite failed.
    case database(path: String, message: String)
    /// `--state` names a URL scheme no backend handles.
    case unsupportedLocation(scheme: String)

    public var description: String {
        switch self {
        case .leaseHeld(let holder):
            "state is locked by \(holder) until \(ISO8601DateFormatter().string(from: holder.expiresAt)); wait for it (--wait), or if that process is gone run `dfe unlock --force`"
        case .leaseLost:
            "the state lease was lost to another process; stopping without further changes"
        case .newerSchema(let path):
            "\(path) was written by a newer dfe; upgrade dfe"
        case .database(let path, let message):
            "state database \(path): \(message)"
        case .unsupportedLocation(let scheme):
            "unsupported state location '\(scheme)://': use a SQLite file path or postgres://USER@HOST:PORT/DB"
        }
    }
}

enum StoredMap {
    static func encode(_ value: [String: String]) -> String { DFECore.JSONText.encode(value) }

    static func decode(_ text: String?) -> [String: String] {
        guard let text else { return [:] }
        return DFECore.JSONText.decodeStringMap(text) ?? [:]
    }
}
