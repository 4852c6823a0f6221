import DFECore
import DFEReconciler
import DFETestSupport
import Foundation
import Testing

@Suite struct EnvUsabilityTests {
    @Test func theSQLiteDatabaseIsUsableWithExactlyTheCredentialsInTheEnvFile() async throws {
        let ws = try TemporaryWorkspace()
        defer { ws.delete() }
        try ws.addInstance("lite")
        #expect(try await ws.reconciler().run(ReconcileOptions()).errors.isEmpty)
        let env = try DotEnvReaders.python(ws.root.appendingPathComponent("var/instances/lite/.env").path)
        #expect(env["DB_CONNECTION"] == "sqlite")
        #expect(env["DB_HOST"] == nil)
        // Python's sqlite3 module, given only DB_DATABASE.
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.execute("CREATE TABLE df_check (id INTEGER)")
            db.execute("INSERT INTO df_check VALUES (7)")
            db.commit()
            print(db.execute("SELECT id FROM df_check").fetchone()[0])
            """
        let output = try DotEnvReaders.run(["python3", "-c", script, env["DB_DATABASE"] ?? ""])
        #expect(String(decoding: output, as: UTF8.self) == "7\n")
    }
}
