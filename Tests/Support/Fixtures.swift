public import DFECore
public import DFEDrivers
public import DFEReconciler
public import DFEState
public import Foundation

/// A wall clock tests move by hand, so backoff is tested without sleeping.
public final class ManualClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { current = start }

    public func now() -> Date { lock.withLock { current } }

    /// Moves time forward.
    public func advance(by seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
}

extension TemporaryWorkspace {
    /// A reconciler over this workspace with the built-in drivers.
    public func reconciler(clock: any WallClock = SystemClock()) -> Reconciler {
        Reconciler(workspace: workspace, registry: BuiltinDrivers.registry(), environment: [:], clock: clock)
    }

    /// The recorded state, read without writing.
    public func recorded() throws -> [String: RecordedInstance] {
        try StateStore.snapshot(url: stateURL)
    }

    /// The storage path of an instance for `owner` in the default layout.
    public func storagePath(_ name: String, owner: String = "ops@example.com") -> String {
        let hash = SHA256.hex(owner.lowercased())
        return root.appendingPathComponent("var/storage/local/\(hash.prefix(2))/\(hash)/\(name)").path
    }

    /// The sqlite database path of an instance in the default layout.
    public func databasePath(_ name: String) -> String {
        root.appendingPathComponent("var/databases/\(name).sqlite").path
    }

    /// The metadata document path of an instance in the default layout.
    public func metadataPath(_ name: String) -> String {
        root.appendingPathComponent("var/instances/\(name)/instance.json").path
    }

    /// The parsed metadata document of an instance.
    public func metadata(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: metadataPath(name)))
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }
}
