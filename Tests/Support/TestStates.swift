public import DFEState
public import Foundation

/// The state backends every state-store test runs against.
public enum BackendKind: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite, postgres

    public var description: String { rawValue }
}

/// A fresh, empty state location of one backend: a file in a private directory, or a new schema on the
/// shared throwaway PostgreSQL cluster (password through `PGPASSWORD`, as libpq's convention).
public final class TestState: Sendable {
    public let kind: BackendKind
    /// The `--state` value.
    public let location: URL
    public let schema: String
    /// The temporary directory (SQLite), removed when this is released.
    public let directory: URL

    public init(_ kind: BackendKind) async throws {
        self.kind = kind
        directory = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)
            .appendingPathComponent("dfe-state-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        schema = "t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        switch kind {
        case .sqlite:
            location = directory.appendingPathComponent("var/state.sqlite")
        case .postgres:
            let cluster = try await TestCluster.shared()
            setenv("PGPASSWORD", TestCluster.adminPassword, 1)
            location = TestState.postgresURL(cluster, user: "postgres")
        }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// `postgres://USER@127.0.0.1:PORT/postgres?sslmode=disable` of the test cluster.
    public static func postgresURL(_ cluster: RunningCluster, user: String) -> URL {
        URL(string: "postgres://\(user)@127.0.0.1:\(cluster.port)/postgres?sslmode=disable")!
    }

    /// Whether this backend can run here (PostgreSQL needs its server binaries, and CI always tries).
    public static func available(_ kind: BackendKind) -> Bool { kind == .sqlite || TestCluster.enabled }
}
