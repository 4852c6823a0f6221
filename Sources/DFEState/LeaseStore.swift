import DFECore
public import Foundation
import GRDB

/// The single-writer lease with its fencing epoch.
///
/// Semantics every backend keeps: an acquisition increments `lease_epoch.epoch` and writes the lease row with it,
/// in one transaction that first reads the current row; renewal and release match the row by epoch, never by
/// `PID@HOST`; every other write of the run runs `checkFence` inside its own transaction.
extension StateStore {
    /// How long a lease must go without renewal before `dfe unlock --force` may clear it.
    public static let unlockIdle: Duration = .seconds(15)

    /// Takes the single-writer lease and fences this store's writes with the new epoch; returns the epoch.
    ///
    /// Throws `.leaseHeld` naming the holder unless its lease expired, or it is this very process, or
    /// `me.provesGone(holder)` (same boot and PID namespace, and that PID is dead or has another start time).
    @discardableResult
    public func acquireLease(_ me: LeaseIdentity, ttl: Duration, at now: Date, probe: ProcessProbe)
        async throws -> Int64
    {
        let epoch = try await pool.writeWithoutTransaction { db -> Int64 in
            var epoch: Int64 = 0
            try db.inTransaction(.immediate) {
                if let holder = try Self.holder(db) {
                    let mine = holder.identity == me
                    let expired = holder.expiresAt <= now
                    if !mine && !expired && !me.provesGone(holder.identity, probe: probe) {
                        throw StateError.leaseHeld(holder)
                    }
                }
                try db.execute(sql: "UPDATE lease_epoch SET epoch = epoch + 1 WHERE id = 1")
                epoch = try Int64.fetchOne(db, sql: "SELECT epoch FROM lease_epoch WHERE id = 1") ?? 0
                let time = now.timeIntervalSince1970
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO lease (id, holder, pid, host, boot_id, pid_namespace, start_time, epoch,
                            acquired_at, renewed_at, expires_at)
                        VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        me.description, me.pid, me.host, me.bootID, me.pidNamespace, me.startTime, epoch, time, time,
                        now.addingTimeInterval(ttl.seconds).timeIntervalSince1970,
                    ])
                return .commit
            }
            return epoch
        }
        fence.withLock { $0 = epoch }
        lostLease.withLock { $0 = false }
        return epoch
    }

    /// Extends the lease held with this store's epoch; throws `.leaseLost` when another process took it.
    public func renewLease(ttl: Duration, at now: Date) async throws {
        guard let epoch = fence.withLock({ $0 }) else { throw StateError.leaseLost }
        do {
            try await pool.write { db in
                let time = now.timeIntervalSince1970
                try db.execute(
                    sql: "UPDATE lease SET renewed_at = ?, expires_at = ? WHERE id = 1 AND epoch = ?",
                    arguments: [time, now.addingTimeInterval(ttl.seconds).timeIntervalSince1970, epoch])
                if db.changesCount == 0 { throw StateError.leaseLost }
            }
        } catch StateError.leaseLost {
            markLeaseLost()
            throw StateError.leaseLost
        }
    }

    /// The epoch this store's run holds, if it acquired the lease.
    public var epoch: Int64? { fence.withLock { $0 } }

    /// Whether this process lost its lease while running.
    public var hasLostLease: Bool { lostLease.withLock { $0 } }

    func markLeaseLost() { lostLease.withLock { $0 = true } }

    /// Releases the lease if this store's epoch still holds it.
    ///
    /// Synchronous on purpose: it must also run when the task was cancelled (async database access would
    /// refuse), so a stopped controller never leaves its lease behind.
    public func releaseLease() throws {
        guard let epoch = fence.withLock({ $0 }) else { return }
        try pool.write { db in
            try db.execute(sql: "DELETE FROM lease WHERE id = 1 AND epoch = ?", arguments: [epoch])
        }
        fence.withLock { $0 = nil }
    }

    /// The current lease holder, if any.
    public func leaseHolder() async throws -> LeaseHolder? {
        try await pool.read { db in try Self.holder(db) }
    }

    static func holder(_ db: Database) throws -> LeaseHolder? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM lease WHERE id = 1") else { return nil }
        let identity = LeaseIdentity(
            pid: row["pid"], host: row["host"], bootID: row["boot_id"] ?? "", pidNamespace: row["pid_namespace"] ?? "",
            startTime: row["start_time"] ?? "")
        let acquired: Double = row["acquired_at"]
        let renewed: Double = row["renewed_at"] ?? acquired
        return LeaseHolder(
            identity: identity, epoch: row["epoch"] ?? 0, acquiredAt: Date(timeIntervalSince1970: acquired),
            renewedAt: Date(timeIntervalSince1970: renewed),
            expiresAt: Date(timeIntervalSince1970: row["expires_at"]))
    }

    /// Clears a lease that has not been renewed for `unlockIdle` (`dfe unlock --force`); returns the former holder.
    ///
    /// Throws `.leaseLive` for a lease renewed more recently, unless `me.provesGone(holder)`.
    public func forceUnlock(_ me: LeaseIdentity, at now: Date, probe: ProcessProbe) async throws
        -> LeaseHolder?
    {
        try await pool.writeWithoutTransaction { db -> LeaseHolder? in
            var former: LeaseHolder?
            try db.inTransaction(.immediate) {
                guard let holder = try Self.holder(db) else { return .commit }
                let idle = now.timeIntervalSince(holder.renewedAt)
                if idle < Self.unlockIdle.seconds && !me.provesGone(holder.identity, probe: probe) {
                    throw StateError.leaseLive(holder, now: now, idle: Self.unlockIdle)
                }
                try db.execute(sql: "DELETE FROM lease WHERE id = 1")
                former = holder
                return .commit
            }
            return former
        }
    }
}
