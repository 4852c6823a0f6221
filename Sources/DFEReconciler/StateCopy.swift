public import DFEState
import Foundation

/// `dfe state copy`: a whole state from one backend or file to another, under both leases.
public enum StateCopier {
    /// What a copy moved: rows per table.
    public struct Report: Sendable {
        public var rows: [String: Int]
    }

    /// Failures of a copy (the command turns them into messages).
    public enum Failure: Error, CustomStringConvertible {
        case noSource(String)
        case destinationHoldsState(String)

        public var description: String {
            switch self {
            case .noSource(let location): "there is no state at \(location) to copy"
            case .destinationHoldsState(let location):
                "\(location) already holds a state; refusing to overwrite it (copy to a new file or schema)"
            }
        }
    }

    /// Copies every table but the migration records and the lease, holding the source's and the destination's
    /// leases throughout; the destination must not hold a state yet.
    public static func copy(
        from source: any StateBackend, to destination: any StateBackend, clock: any WallClock = SystemClock(),
        ttl: Duration = .seconds(15)
    ) async throws -> Report {
        guard try source.exists() else { throw Failure.noSource(source.displayName) }
        guard try !destination.exists() else { throw Failure.destinationHoldsState(destination.displayName) }
        let from = try source.open()
        defer { from.close() }
        let fromLease = Lease(store: from, clock: clock, ttl: ttl)
        try await fromLease.acquire(wait: false)
        let to: any StateStoring
        do {
            to = try destination.open()
        } catch {
            await fromLease.release()
            throw error
        }
        defer { to.close() }
        let toLease = Lease(store: to, clock: clock, ttl: ttl)
        do {
            try await toLease.acquire(wait: false)
        } catch {
            await fromLease.release()
            throw error
        }
        let result: Result<Report, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await fromLease.keepRenewing(every: .seconds(5)) }
            group.addTask { await toLease.keepRenewing(every: .seconds(5)) }
            defer { group.cancelAll() }
            do {
                // Opened by someone else between the check and the lease: still refuse.
                let existing = try await to.instances(withFields: false)
                let journal = try await to.history(instance: nil, limit: 1)
                guard existing.isEmpty, journal.isEmpty else {
                    throw Failure.destinationHoldsState(destination.displayName)
                }
                let tables = try await from.exportTables()
                try await to.importTables(tables)
                return .success(Report(rows: Dictionary(uniqueKeysWithValues: tables.map { ($0.name, $0.rows.count) })))
            } catch {
                return .failure(error)
            }
        }
        await toLease.release()
        await fromLease.release()
        return try result.get()
    }
}
