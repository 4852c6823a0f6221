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

/// Who holds the state lease, with its fencing epoch, and until when.
public struct LeaseHolder: Sendable, Hashable, CustomStringConvertible {
    public var identity: LeaseIdentity
    /// Grows on every acquisition: a write fenced with an older epoch is refused.
    public var epoch: Int64
    public var acquiredAt: Date
    /// When the holder last renewed (or acquired) the lease.
    public var renewedAt: Date
    public var expiresAt: Date

    public init(identity: LeaseIdentity, epoch: Int64, acquiredAt: Date, renewedAt: Date, expiresAt: Date) {
        self.identity = identity
        self.epoch = epoch
        self.acquiredAt = acquiredAt
        self.renewedAt = renewedAt
        self.expiresAt = expiresAt
    }

    public var pid: Int32 { identity.pid }
    public var host: String { identity.host }

    /// `PID@HOST`.
    public var description: String { identity.description }
}

/// Typed failures of the state store.
public enum StateError: Error, Sendable, CustomStringConvertible {
    /// Another live process holds the lease.
    case leaseHeld(LeaseHolder)
    /// The lease was lost (taken over after expiry) while running: this run's epoch no longer holds it.
    case leaseLost
    /// `dfe unlock --force` refused: the lease was renewed less than `idle` ago.
    case leaseLive(LeaseHolder, now: Date, idle: Duration)
    /// The run's user is not the owner of the state.
    case otherUser(current: String, owner: String, path: String)
    /// The state file was written by a newer dfe.
    case newerSchema(path: String)
    /// SQLite failed.
    case database(path: String, message: String)
    /// `--state` names a URL scheme no backend handles.
    case unsupportedLocation(scheme: String)
    /// `--state` (or `--state-schema`) is malformed.
    case invalidLocation(String)

    public var description: String {
        switch self {
        case .leaseHeld(let holder):
            "state is locked by \(holder) until \(ISO8601DateFormatter().string(from: holder.expiresAt)); wait for it (--wait), or if that process is gone run `dfe unlock --force`"
        case .leaseLost:
            "the state lease was lost to another process (this run was paused or cut off past the lease's 15 s); stopped without further changes to the state or any resource"
        case .leaseLive(let holder, let now, let idle):
            "refusing to unlock: the lease is held by \(holder), renewed \(Self.age(holder.renewedAt, now)) ago (at \(ISO8601DateFormatter().string(from: holder.renewedAt))); a lease renewed in the last \(Int(idle.seconds)) s is live: stop that process, or wait until it has not renewed for \(Int(idle.seconds)) s"
        case .otherUser(let current, let owner, let path):
            "\(path) is owned by user '\(owner)' but this run is user '\(current)'; files it creates would not be usable by '\(owner)'. Run as the owner (`sudo -u \(owner) dfe ...`), or pass --allow-other-user"
        case .newerSchema(let path):
            "\(path) was written by a newer dfe; upgrade dfe"
        case .database(let path, let message):
            "state database \(path): \(message)"
        case .invalidLocation(let message):
            "--state: \(message)"
        case .unsupportedLocation(let scheme):
            "unsupported state location '\(scheme)://': use a SQLite file path or postgres://USER@HOST:PORT/DB"
        }
    }
}

extension StateError {
    /// Whether `error` is `.leaseLost`.
    public static func isLeaseLost(_ error: any Error) -> Bool {
        if case .leaseLost = error as? StateError { return true }
        return false
    }

    /// A short age such as `3s` or `2m5s`.
    static func age(_ date: Date, _ now: Date) -> String {
        let seconds = max(0, Int(now.timeIntervalSince(date).rounded()))
        return seconds < 60 ? "\(seconds)s" : "\(seconds / 60)m\(seconds % 60)s"
    }
}

enum StoredMap {
    static func encode(_ value: [String: String]) -> String { DFECore.JSONText.encode(value) }

    static func decode(_ text: String?) -> [String: String] {
        guard let text else { return [:] }
        return DFECore.JSONText.decodeStringMap(text) ?? [:]
    }
}
