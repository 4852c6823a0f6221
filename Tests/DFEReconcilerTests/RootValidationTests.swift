import DFECore
import DFEDrivers
import DFEReconciler
import DFETestSupport
import Foundation
import Testing

/// Driver roots that would let a delete reach what is not an instance's are refused before anything runs.
@Suite struct RootValidationTests {
    /// A one-host config with these three roots (storage, database, instance), each on its own line.
    static func provisioners(storage: String, database: String, instance: String) -> String {
        """
        default: dreamfactory
        hosts:
          dreamfactory:
            provides:
              storage: {driver: local, root: \(storage), zone: local}
              database: {driver: sqlite, root: \(database)}
              instance: {driver: dreamfactory, root: \(instance), domain: dfe.localhost}
            resource-uri: /api/v2/system/

        """
    }

    func diagnostics(_ provisioners: String) throws -> [String] {
        let ws = try TemporaryWorkspace(provisioners: provisioners)
        defer { ws.delete() }
        try ws.addInstance("alpha")
        do {
            _ = try InputLoader.load(ws.workspace, registry: BuiltinDrivers.registry(), environment: [:])
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test(arguments: [
        // (storage, database, instance, expected located message part)
        ("var/storage", "var/databases", ".", "config/provisioners.yaml:7:", "contains the manifests directory"),
        ("/", "var/databases", "var/instances", "config/provisioners.yaml:5:", "is the file system root"),
        ("''", "var/databases", "var/instances", "config/provisioners.yaml:5:", "is empty"),
        ("var/x", "var/x", "var/instances", "config/provisioners.yaml:6:", "is the same directory as"),
        ("var/x", "var/databases", "var/x/inner", "config/provisioners.yaml:7:", "lies inside"),
        ("var", "var/databases", "var/instances", "config/provisioners.yaml:5:", "contains the state"),
        ("var/storage", "config", "var/instances", "config/provisioners.yaml:6:", "contains the config directory"),
    ])
    func aDangerousDriverRootIsALocatedErrorBeforeAnythingRuns(
        storage: String, database: String, instance: String, location: String, message: String
    ) throws {
        let found = try diagnostics(Self.provisioners(storage: storage, database: database, instance: instance))
        #expect(
            found.contains { $0.hasPrefix(location) && $0.contains(": error: ") && $0.contains(message) }, "\(found)")
    }

    @Test func theEmbeddedDefaultRootsAreValid() throws {
        #expect(try diagnostics(TemporaryWorkspace.defaultProvisioners).isEmpty)
    }

    @Test func twoHostsMayShareOneStorageRootButNotNestIt() throws {
        let shared =
            TemporaryWorkspace.defaultProvisioners + """
                  other:
                    provides:
                      storage: {driver: local, root: var/storage, zone: eu}
                      database: {driver: sqlite, root: var/databases}
                      instance: {driver: dreamfactory, root: var/instances, domain: dfe.localhost}
                    resource-uri: /api/v2/system/

                """
        #expect(try diagnostics(shared).isEmpty)
        let nested = shared.replacingOccurrences(
            of: "root: var/storage, zone: eu", with: "root: var/storage/local, zone: eu")
        let found = try diagnostics(nested)
        #expect(found.contains { $0.contains("lies inside") }, "\(found)")
    }

    @Test func aRunWithADangerousRootTouchesNothing() async throws {
        let ws = try TemporaryWorkspace(
            provisioners: Self.provisioners(storage: "var/storage", database: "var/databases", instance: "."))
        defer { ws.delete() }
        try ws.addInstance("alpha")
        await #expect(throws: ReconcileError.self) { _ = try await ws.reconciler().run(ReconcileOptions()) }
        #expect(!ws.exists("var"))
    }
}
