import DFECore
import DFEDrivers
import DFEProvision
import DFEReconciler
import DFETestSupport
import Foundation
import Testing

@testable import DFEPostgres

/// Whole reconciles with instances on a real PostgreSQL server next to sqlite ones.
@Suite(.enabled(if: TestCluster.enabled, "PostgreSQL binaries are missing (install postgresql-15)"))
struct PostgresReconcileTests {
    /// A workspace with a default sqlite host and a `pg` host on `port`.
    func workspace(port: Int) throws -> TemporaryWorkspace {
        let provisioners =
            TemporaryWorkspace.defaultProvisioners + """
                  pg:
                    provides:
                      instance: {driver: dreamfactory, root: var/instances, domain: dfe.localhost}
                      storage: {driver: local, root: var/storage, zone: local}
                      database:
                        driver: postgres
                        url: postgres://postgres@127.0.0.1:\(port)/postgres
                        passwordEnv: DFE_TEST_PG_ADMIN_PASSWORD
                        sslmode: disable

                """
        return try TemporaryWorkspace(prefix: "dfe-pg", provisioners: provisioners)
    }

    func reconciler(_ ws: TemporaryWorkspace) -> Reconciler {
        var registry = BuiltinDrivers.registry()
        PostgresDriver.register(into: &registry)
        return Reconciler(
            workspace: ws.workspace, registry: registry,
            environment: [TestCluster.passwordVariable: TestCluster.adminPassword])
    }

    /// A unique instance name so tests sharing the cluster never collide.
    func uniqueName(_ base: String) -> String { "\(base)-\(UUID().uuidString.prefix(6).lowercased())" }

    @Test func aPostgresInstanceLogsInToItsOwnDatabaseWithTheMetadataCredentials() async throws {
        let cluster = try await TestCluster.shared()
        let ws = try workspace(port: cluster.port)
        defer { ws.delete() }
        let name = uniqueName("pgapp")
        try ws.addInstance(name, extra: "  provisioner: pg")
        let report = try await reconciler(ws).run(ReconcileOptions())
        #expect(report.errors.isEmpty, "\(report.errors)")

        let database = try #require(ws.metadata(name)["database"] as? [String: Any])
        let expected = "dfe_" + name.replacingOccurrences(of: "-", with: "_")
        #expect(database["driver"] as? String == "postgres")
        #expect(database["name"] as? String == expected)
        #expect(database["username"] as? String == expected)
        #expect(database["port"] as? Int == cluster.port)
        let password = try #require(database["password"] as? String)
        let connection = try connect(cluster, user: expected, password: password, database: expected)
        #expect(try connection.query("SELECT current_database()").first?.first == expected)

        let status = StatusView.instances(recorded: try ws.recorded(), desired: [])
        #expect(status.first?.resources.database?.name == expected)
        #expect(status.first?.resources.database?.driver == "postgres")
    }

    @Test func theDatabaseIsUsableWithExactlyTheCredentialsInTheEnvFile() async throws {
        let cluster = try await TestCluster.shared()
        let ws = try workspace(port: cluster.port)
        defer { ws.delete() }
        let name = uniqueName("pgenv")
        try ws.addInstance(name, extra: "  provisioner: pg")
        #expect(try await reconciler(ws).run(ReconcileOptions()).errors.isEmpty)
        let env = try DotEnvReaders.python(ws.root.appendingPathComponent("var/instances/\(name)/.env").path)
        #expect(env["DB_CONNECTION"] == "pgsql")
        // psql, given only DB_* (the password through PGPASSWORD).
        let output = try DotEnvReaders.run(
            [
                "psql", "-X", "-h", env["DB_HOST"] ?? "", "-p", env["DB_PORT"] ?? "", "-U", env["DB_USERNAME"] ?? "",
                "-d", env["DB_DATABASE"] ?? "", "-Atc",
                "CREATE TABLE df_check (id int); INSERT INTO df_check VALUES (7); SELECT id FROM df_check",
            ],
            environment: ["PGPASSWORD": env["DB_PASSWORD"] ?? "", "PATH": "/usr/bin:/bin"])
        #expect(String(decoding: output, as: UTF8.self).hasSuffix("7\n"))
    }

    @Test func aNameTooLongForPostgresIsAValidationErrorAtItsManifest() async throws {
        let ws = try workspace(port: 5432)
        defer { ws.delete() }
        let name = String(repeating: "a", count: 62)
        try ws.addInstance(name, extra: "  provisioner: pg")
        #expect {
            _ = try reconciler(ws).loadInputs()
        } throws: { error in
            "\(error)".contains("manifests/\(name).yaml:1:1: error: database and role name 'dfe_\(name)'")
                && "\(error)".contains("at most 59 characters")
        }
    }

    @Test func aDatabaseDroppedByHandIsPlannedAsDriftAndRecreated() async throws {
        let cluster = try await TestCluster.shared()
        let ws = try workspace(port: cluster.port)
        defer { ws.delete() }
        let name = uniqueName("pgdrift")
        let database = "dfe_" + name.replacingOccurrences(of: "-", with: "_")
        try ws.addInstance(name, extra: "  provisioner: pg")
        let reconciler = reconciler(ws)
        _ = try await reconciler.run(ReconcileOptions())
        let password = try #require((ws.metadata(name)["database"] as? [String: Any])?["password"] as? String)

        try admin(cluster, "DROP DATABASE \"\(database)\"")
        let plan = try await reconciler.run(ReconcileOptions(dryRun: true))
        #expect(plan.summary.hasPendingChanges)
        #expect(plan.plan.changes.map { "\($0.resource.rawValue)/\($0.reason)" } == ["database/drift"])
        #expect(try exists(cluster, database).database == false)

        let applied = try await reconciler.run(ReconcileOptions())
        #expect(applied.errors.isEmpty)
        #expect(try exists(cluster, database) == (true, true))
        // The credentials in the metadata document still work.
        _ = try connect(cluster, user: database, password: password, database: database)
    }

    @Test func pruneWithDeleteLeavesNeitherDatabaseNorRole() async throws {
        let cluster = try await TestCluster.shared()
        let ws = try workspace(port: cluster.port)
        defer { ws.delete() }
        let name = uniqueName("pggone")
        let database = "dfe_" + name.replacingOccurrences(of: "-", with: "_")
        try ws.addInstance(name, extra: "  provisioner: pg\n  database: {deletionPolicy: Delete}")
        let reconciler = reconciler(ws)
        _ = try await reconciler.run(ReconcileOptions())
        #expect(try exists(cluster, database) == (true, true))
        try ws.remove("manifests/\(name).yaml")
        // The last manifest is gone: pruning every instance needs --prune-all.
        var options = ReconcileOptions(prune: true)
        options.pruneAll = true
        let report = try await reconciler.run(options)
        #expect(report.errors.isEmpty)
        #expect(try exists(cluster, database) == (false, false))
        #expect(try ws.recorded()[name] == nil)
    }

    @Test func withTheServerStoppedOnlyItsInstancesFailAndTheOthersConverge() async throws {
        // A cluster of its own, so stopping it does not disturb the other tests.
        let directory = try TestCluster.makeTempDirectory()
        let port = try TestCluster.freePort()
        let (started, output) = try TestCluster.runScript(["start", directory, String(port)], log: directory + ".log")
        try #require(started == 0, "\(output)")
        var stopped = false
        defer {
            if !stopped { _ = try? TestCluster.runScript(["stop", directory], log: directory + ".log") }
            try? FileManager.default.removeItem(atPath: directory)
        }
        let ws = try workspace(port: port)
        defer { ws.delete() }
        try ws.addInstance("lite-one")
        try ws.addInstance("pg-one", extra: "  provisioner: pg")
        let reconciler = reconciler(ws)
        #expect(try await reconciler.run(ReconcileOptions()).errors.isEmpty)

        _ = try TestCluster.runScript(["stop", directory], log: directory + ".log")
        stopped = true
        try ws.addInstance("lite-two")
        try ws.addInstance("pg-one", extra: "  provisioner: pg\n  state: locked")
        let report = try await reconciler.run(ReconcileOptions())
        #expect(report.errors.map(\.instance) == ["pg-one"])
        #expect(report.errors.first?.message.contains("127.0.0.1:\(port)") == true)
        // The admin password ("postgres", also the driver's name) is never part of the message as a value.
        #expect(!(report.errors.first?.message.contains("password=") ?? true), "\(report.errors)")
        let state = try ws.recorded()
        #expect(state["lite-one"]?.phase == .ready)
        #expect(state["lite-two"]?.phase == .ready)
        #expect(state["pg-one"]?.phase == .failed)
        #expect(state["pg-one"]?.nextAttemptAt != nil)
    }
}
