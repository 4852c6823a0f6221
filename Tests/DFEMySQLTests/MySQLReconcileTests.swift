import DFECore
import DFEDrivers
import DFEProvision
import DFEReconciler
import DFETestSupport
import Foundation
import Testing

@testable import DFEMySQL

/// Whole reconciles with instances on a real MariaDB server next to sqlite ones.
@Suite(.enabled(if: TestServer.enabled, "MariaDB is missing (install mariadb-server, mariadb-client)"))
struct MySQLReconcileTests {
    /// A workspace with a default sqlite host and a `my` host on `port`.
    func workspace(port: Int) throws -> TemporaryWorkspace {
        let provisioners =
            TemporaryWorkspace.defaultProvisioners + """
                  my:
                    provides:
                      instance: {driver: dreamfactory, root: var/instances, domain: dfe.localhost}
                      storage: {driver: local, root: var/storage, zone: local}
                      database:
                        driver: mysql
                        url: mysql://admin@127.0.0.1:\(port)
                        passwordEnv: \(TestServer.passwordVariable)
                        connectTimeout: 2s

                """
        return try TemporaryWorkspace(prefix: "dfe-my", provisioners: provisioners)
    }

    func reconciler(_ ws: TemporaryWorkspace) -> Reconciler {
        var registry = BuiltinDrivers.registry()
        MySQLDriver.register(into: &registry)
        return Reconciler(
            workspace: ws.workspace, registry: registry,
            environment: [TestServer.passwordVariable: TestServer.adminPassword])
    }

    @Test func theDatabaseIsUsableWithExactlyTheCredentialsInTheEnvFile() async throws {
        let server = try await TestServer.shared()
        let ws = try workspace(port: server.port)
        defer { ws.delete() }
        let name = uniqueName("envapp")
        try ws.addInstance(name, extra: "  provisioner: my")
        let report = try await reconciler(ws).run(ReconcileOptions())
        #expect(report.errors.isEmpty, "\(report.errors)")

        let env = try DotEnvReaders.python(ws.root.appendingPathComponent("var/instances/\(name)/.env").path)
        #expect(env["DB_CONNECTION"] == "mysql")
        #expect(env["DB_DATABASE"] == objectName(name))
        let database = try #require(ws.metadata(name)["database"] as? [String: Any])
        #expect(database["driver"] as? String == "mysql")
        // The MariaDB client, given only DB_* (the password through MYSQL_PWD, never on the command line).
        let output = try DotEnvReaders.run(
            [
                "mariadb", "--no-defaults", "--protocol=TCP", "-h", env["DB_HOST"] ?? "", "-P", env["DB_PORT"] ?? "",
                "-u", env["DB_USERNAME"] ?? "", env["DB_DATABASE"] ?? "", "-N", "-e",
                "CREATE TABLE df_check (id INT); INSERT INTO df_check VALUES (7); SELECT id FROM df_check",
            ],
            environment: ["MYSQL_PWD": env["DB_PASSWORD"] ?? "", "PATH": "/usr/bin:/bin"])
        #expect(String(decoding: output, as: UTF8.self) == "7\n")
    }

    @Test func pruneWithDeleteLeavesNoDatabaseAndNoUser() async throws {
        let server = try await TestServer.shared()
        let ws = try workspace(port: server.port)
        defer { ws.delete() }
        let name = uniqueName("prune")
        let object = objectName(name)
        try ws.addInstance(name, extra: "  provisioner: my\n  database: {deletionPolicy: Delete}")
        try ws.addInstance("keeper")
        let reconciler = reconciler(ws)
        #expect(try await reconciler.run(ReconcileOptions()).errors.isEmpty)
        #expect(try exists(server, object) == (true, true))
        try ws.remove("manifests/\(name).yaml")
        let report = try await reconciler.run(ReconcileOptions(prune: true))
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(try admin(server, "SELECT user FROM mysql.user WHERE user = '\(object)'").isEmpty)
        #expect(
            try admin(server, "SHOW DATABASES LIKE '\(object.replacingOccurrences(of: "_", with: "\\\\_"))'").isEmpty)
        #expect(try ws.recorded()[name] == nil)
    }

    @Test func withTheServerDownOnlyItsInstancesFail() async throws {
        let port = try TestServer.freePort()
        let ws = try workspace(port: port)
        defer { ws.delete() }
        try ws.addInstance("lite-one")
        try ws.addInstance("my-one", extra: "  provisioner: my")
        let report = try await reconciler(ws).run(ReconcileOptions())
        #expect(report.errors.map(\.instance) == ["my-one"])
        #expect(report.errors.first?.message.contains("127.0.0.1:\(port)") == true)
        let state = try ws.recorded()
        #expect(state["lite-one"]?.phase == .ready)
        #expect(state["my-one"]?.phase == .failed)
    }

    @Test func aNameTooLongForMySQLIsAValidationErrorAtItsManifest() async throws {
        let ws = try workspace(port: 3306)
        defer { ws.delete() }
        let name = String(repeating: "b", count: 29)
        try ws.addInstance(name, extra: "  provisioner: my")
        #expect {
            _ = try reconciler(ws).loadInputs()
        } throws: { error in
            "\(error)".contains("manifests/\(name).yaml:1:1: error: database and user name 'dfe_\(name)'")
        }
    }
}
