import DFECore
import DFEProvision
import Foundation
import Testing

/// A private directory under the temp directory, removed when released.
final class DriverDirectory: Sendable {
    let url: URL

    init() throws {
        url = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)
            .appendingPathComponent("dfe-drivers-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// An absolute path below the directory.
    func path(_ relative: String) -> String { url.appendingPathComponent(relative).path }

    /// Every path below `relative` (relative to it), sorted.
    func listing(_ relative: String = "") -> [String] {
        let base = relative.isEmpty ? url.path : path(relative)
        guard let enumerator = FileManager.default.enumerator(atPath: base) else { return [] }
        var paths: [String] = []
        while let path = enumerator.nextObject() as? String { paths.append(path) }
        return paths.sorted()
    }
}

enum Files {
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    static func isDirectory(_ path: String) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &flag) && flag.boolValue
    }

    static func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int
    }

    static func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    static func write(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }
}

/// The host every driver test uses.
let testHost = HostConfig(
    name: "dreamfactory", provides: [:],
    offerings: [
        "instance-version": Offering(
            key: "instance-version", name: "DreamFactory version", suggested: "7.4",
            items: ["6.2": "old", "7.4": "current"])
    ],
    resourceURI: "/api/v2/system/", location: SourceLocation(path: "config/provisioners.yaml"))

func testSpec(
    _ name: String, owner: String = "ops@example.com", state: PlatformState = .active, quota: Int64? = nil,
    offerings: [String: String] = ["instance-version": "7.4"]
) -> InstanceSpec {
    InstanceSpec(
        name: name, owner: owner, provisioner: "dreamfactory", offerings: offerings, state: state, storageQuota: quota,
        source: SourceLocation(path: "manifests/\(name).yaml"))
}

/// The state id every driver test works in.
let testStateID = "0e6c4f1a-test-state"

/// The context a reconciler hands a driver for `spec`.
func context(
    _ driver: any SubProvisioner, _ spec: InstanceSpec, recorded: RecordedResource? = nil,
    dependencies: [ResourceKind: [String: String]] = [:], dependencyFields: [ResourceKind: FieldSet] = [:],
    stateID: String? = testStateID
) -> ResourceContext {
    ResourceContext(
        name: spec.name, owner: spec.owner, spec: spec, host: testHost,
        fields: driver.fields(for: spec, host: testHost, dependencies: dependencyFields), recorded: recorded,
        dependencies: dependencies, stateID: stateID)
}

/// What the state remembers after a successful apply.
func recorded(_ kind: ResourceKind, _ context: ResourceContext, driver: String, outputs: [String: String])
    -> RecordedResource
{
    RecordedResource(
        kind: kind, host: testHost.name, driver: driver, specHash: context.fields.hash, fields: context.fields,
        outputs: outputs)
}

/// The context used to delete a resource of a pruned instance (no spec, no desired fields).
func pruneContext(_ name: String, recorded: RecordedResource, stateID: String = testStateID) -> ResourceContext {
    ResourceContext(
        name: name, owner: "ops@example.com", spec: nil, host: testHost, fields: FieldSet(), recorded: recorded,
        stateID: stateID)
}

/// A resource recorded with only an output path (for delete-safety tests).
func recordedPath(_ kind: ResourceKind, _ path: String, driver: String) -> RecordedResource {
    RecordedResource(
        kind: kind, host: testHost.name, driver: driver, specHash: "", fields: FieldSet(["path": path]),
        outputs: ["path": path])
}
