import DFECore
import DFEDrivers
import DFEProvision
import Foundation
import Testing

@Suite struct LocalStorageTests {
    /// printf 'ops@acme.example' | sha256sum
    static let acmeHash = "368ba38420654f1136663c32a718d71228b97ed6ca6446f712c58fbba2ab1dfb"

    static let instanceTree = [
        "", "/applications", "/.private", "/.private/.cache", "/.private/.limits_cache", "/.private/config",
        "/.private/scripts", "/.private/scripts.user", "/.private/logs", "/.private/packages",
    ]

    @Test func ownerHashIsSha256OfTheLowercasedOwner() {
        #expect(LocalStorageProvisioner.ownerHash("Ops@Acme.Example") == Self.acmeHash)
        #expect(LocalStorageProvisioner.ownerHash("ops@acme.example") == Self.acmeHash)
    }

    @Test func fieldsDescribeTheHashedOwnerLayout() throws {
        let directory = try DriverDirectory()
        let root = directory.path("storage")
        let storage = LocalStorageProvisioner(root: root, zone: "eu-1")
        let fields = storage.fields(
            for: testSpec("acme-prod", owner: "Ops@Acme.Example", quota: 5 << 30), host: testHost, dependencies: [:])
        let owner = "\(root)/eu-1/36/\(Self.acmeHash)"
        #expect(fields["path"] == "\(owner)/acme-prod")
        #expect(fields["privatePath"] == "\(owner)/acme-prod/.private")
        #expect(fields["ownerPrivatePath"] == "\(owner)/.private")
        #expect(fields["snapshotPath"] == "\(owner)/.private/snapshots")
        #expect(fields["zone"] == "eu-1")
        #expect(fields["owner"] == "ops@acme.example")
        #expect(fields["quota"] == "5Gi")
        #expect(fields["driver"] == "local")
    }

    @Test func applyCreatesExactlyTheDesignLayoutWithMode0750() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let spec = testSpec("acme-prod", owner: "Ops@Acme.Example")
        let outputs = try await storage.apply(context(storage, spec))

        let owner = "local/36/\(Self.acmeHash)"
        let expected =
            ["local", "local/36", owner, "\(owner)/.private", "\(owner)/.private/snapshots"]
            + Self.instanceTree.map { "\(owner)/acme-prod\($0)" }
        #expect(directory.listing("storage") == (expected + ["\(owner)/acme-prod/.dfe-owner"]).sorted())
        #expect(
            OwnershipRecord.decode(
                String(
                    decoding: Files.bytes(directory.path("storage/\(owner)/acme-prod/.dfe-owner")) ?? Data(),
                    as: UTF8.self))
                == OwnershipRecord(instance: "acme-prod", owner: "ops@acme.example", stateID: testStateID))
        for path in ["storage"] + expected.map({ "storage/\($0)" }) {
            #expect(Files.isDirectory(directory.path(path)), "\(path)")
            #expect(Files.mode(directory.path(path)) == 0o750, "\(path)")
        }
        let absolute = directory.path("storage/\(owner)")
        #expect(
            outputs == [
                "driver": "local", "path": "\(absolute)/acme-prod", "privatePath": "\(absolute)/acme-prod/.private",
                "ownerPrivatePath": "\(absolute)/.private", "snapshotPath": "\(absolute)/.private/snapshots",
            ])
    }

    @Test func observeReportsMissingOkAndDrifted() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let ctx = context(storage, testSpec("acme"))
        #expect(try await storage.observe(ctx) == .missing)
        _ = try await storage.apply(ctx)
        #expect(try await storage.observe(ctx) == .ok)
        let path = try #require(ctx.fields["path"])
        try FileManager.default.removeItem(atPath: "\(path)/.private/logs")
        guard case .drifted(let detail) = try await storage.observe(ctx) else {
            Issue.record("expected drift")
            return
        }
        #expect(detail.contains("logs"))
        try FileManager.default.removeItem(atPath: path)
        #expect(try await storage.observe(ctx) == .missing)
    }

    @Test func applyRepairsADeletedSubdirectoryAndKeepsData() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let ctx = context(storage, testSpec("acme"))
        _ = try await storage.apply(ctx)
        let path = try #require(ctx.fields["path"])
        try Files.write("\(path)/applications/app.txt", "customer data")
        try FileManager.default.removeItem(atPath: "\(path)/.private/scripts.user")
        try FileManager.default.removeItem(atPath: "\(path)/.private/config")
        _ = try await storage.apply(ctx)
        #expect(try await storage.observe(ctx) == .ok)
        #expect(Files.isDirectory("\(path)/.private/scripts.user"))
        #expect(Files.mode("\(path)/.private/config") == 0o750)
        #expect(Files.bytes("\(path)/applications/app.txt") == Data("customer data".utf8))
    }

    @Test func applyRestoresDirectoryModes() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let ctx = context(storage, testSpec("acme"))
        _ = try await storage.apply(ctx)
        let path = try #require(ctx.fields["path"])
        chmod("\(path)/applications", 0o777)
        _ = try await storage.apply(ctx)
        #expect(Files.mode("\(path)/applications") == 0o750)
    }

    @Test func aFileInTheWayFailsApplyNamingThePath() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let ctx = context(storage, testSpec("acme"))
        let path = try #require(ctx.fields["path"])
        _ = try await storage.apply(ctx)
        try FileManager.default.removeItem(atPath: "\(path)/applications")
        try Files.write("\(path)/applications", "not a directory")
        let error = await #expect(throws: DriverError.self) { _ = try await storage.apply(ctx) }
        #expect(error?.message.contains("\(path)/applications") == true, "\(String(describing: error))")
        #expect(error?.message.contains("in the way") == true)
        #expect(Files.bytes("\(path)/applications") == Data("not a directory".utf8))
    }

    @Test func aFileWhereTheInstanceTreeGoesFailsApply() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let ctx = context(storage, testSpec("acme"))
        let path = try #require(ctx.fields["path"])
        try Files.write(path, "squatter")
        guard case .conflict = try await storage.observe(ctx) else {
            Issue.record("a file where the tree goes is a conflict")
            return
        }
        let error = await #expect(throws: DriverError.self) { _ = try await storage.apply(ctx) }
        #expect(error?.message.contains(path) == true)
        #expect(error?.errorClass == .terminal(.conflict))
        #expect(Files.bytes(path) == Data("squatter".utf8))
    }

    @Test func aTreeWithoutOurMarkerOrOfAnotherStateIsAConflictNeverAdoptedOrDeleted() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let theirs = context(storage, testSpec("acme"), stateID: "another-workspace")
        let outputs = try await storage.apply(theirs)
        let path = try #require(theirs.fields["path"])
        try Files.write("\(path)/applications/app.txt", "theirs")
        let ours = context(storage, testSpec("acme"))
        guard case .conflict(let message) = try await storage.observe(ours) else {
            Issue.record("another state's tree must be a conflict")
            return
        }
        #expect(message.contains("another-workspace"))
        await #expect(throws: DriverError.self) { _ = try await storage.apply(ours) }
        let error = await #expect(throws: DriverError.self) {
            try await storage.delete(
                pruneContext("acme", recorded: recorded(.storage, ours, driver: "local", outputs: outputs)))
        }
        #expect(error?.errorClass == .terminal(.conflict))
        #expect(Files.bytes("\(path)/applications/app.txt") == Data("theirs".utf8))

        // A tree made by hand (no marker) is not adopted either.
        let handMade = context(storage, testSpec("beta"))
        try Files.write("\(try #require(handMade.fields["path"]))/data.txt", "by hand")
        guard case .conflict = try await storage.observe(handMade) else {
            Issue.record("an unmarked, unrecorded tree must be a conflict")
            return
        }
    }

    /// Replaces the directory `level` components below the storage root on the way to acme's tree by a symbolic
    /// link to a copy of that subtree elsewhere (marker included), then prunes acme with Delete.
    func swapInSymlink(atLevel level: Int) async throws {
        let directory = try DriverDirectory()
        let root = directory.path("storage")
        let storage = LocalStorageProvisioner(root: root, zone: "local")
        let acme = context(storage, testSpec("acme"))
        let outputs = try await storage.apply(acme)
        let path = try #require(acme.fields["path"])
        let parts = Array(path.dropFirst(root.count + 1).split(separator: "/").map(String.init))
        let swapped = root + "/" + parts.prefix(level).joined(separator: "/")
        let relative = parts.dropFirst(level).joined(separator: "/")
        let victim = directory.path("victim")
        try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: true)
        // The attacker's copy keeps our marker, so only the symlink check can save the victim.
        try FileManager.default.copyItem(atPath: swapped, toPath: victim + "/tree")
        try Files.write(victim + "/tree/" + relative + "/applications/precious.txt", "precious")
        try FileManager.default.removeItem(atPath: swapped)
        try FileManager.default.createSymbolicLink(atPath: swapped, withDestinationPath: victim + "/tree")
        let error = await #expect(throws: DriverError.self) {
            try await storage.delete(
                pruneContext("acme", recorded: recorded(.storage, acme, driver: "local", outputs: outputs)))
        }
        #expect(error?.errorClass == .terminal(.conflict), "level \(level): \(String(describing: error))")
        #expect(
            Files.bytes(victim + "/tree/" + relative + "/applications/precious.txt") == Data("precious".utf8),
            "level \(level)")
    }

    @Test func deleteNeverFollowsASymlinkSwappedInAtTheOwnerHashLevel() async throws {
        try await swapInSymlink(atLevel: 3)
    }

    @Test(arguments: [1, 2, 4])
    func deleteNeverFollowsASymlinkSwappedInAtTheZonePartitionOrInstanceLevel(level: Int) async throws {
        try await swapInSymlink(atLevel: level)
    }

    @Test func deleteRemovesASymlinkInsideTheTreeButNotItsTarget() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let acme = context(storage, testSpec("acme"))
        let outputs = try await storage.apply(acme)
        let path = try #require(acme.fields["path"])
        try Files.write(directory.path("victim/precious.txt"), "precious")
        try FileManager.default.createSymbolicLink(
            atPath: "\(path)/applications/link", withDestinationPath: directory.path("victim"))
        try await storage.delete(
            pruneContext("acme", recorded: recorded(.storage, acme, driver: "local", outputs: outputs)))
        #expect(!Files.exists(path))
        #expect(Files.bytes(directory.path("victim/precious.txt")) == Data("precious".utf8))
    }

    @Test func deleteRemovesOnlyTheInstanceTree() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let acme = context(storage, testSpec("acme"))
        let beta = context(storage, testSpec("beta"))
        let other = context(storage, testSpec("gamma", owner: "someone@else.example"))
        let outputs = try await storage.apply(acme)
        _ = try await storage.apply(beta)
        _ = try await storage.apply(other)
        let acmePath = try #require(acme.fields["path"])
        try Files.write("\(acmePath)/applications/app.txt", "data")
        try Files.write("\(try #require(acme.fields["snapshotPath"]))/snap.tar", "snapshot")

        try await storage.delete(
            pruneContext("acme", recorded: recorded(.storage, acme, driver: "local", outputs: outputs)))
        #expect(!Files.exists(acmePath))
        #expect(try await storage.observe(beta) == .ok)
        #expect(try await storage.observe(other) == .ok)
        #expect(Files.bytes("\(try #require(acme.fields["snapshotPath"]))/snap.tar") == Data("snapshot".utf8))

        // Deleting again is success.
        try await storage.delete(
            pruneContext("acme", recorded: recorded(.storage, acme, driver: "local", outputs: outputs)))
    }

    @Test func deleteRefusesPathsOutsideRoot() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        try Files.write(directory.path("outside/acme/keep.txt"), "keep")
        try Files.write(directory.path("storage-evil/acme/keep.txt"), "keep")
        let hostile = [
            directory.path("outside/acme"),
            directory.path("storage") + "/local/../../outside/acme",
            directory.path("storage-evil/acme"),
        ]
        for path in hostile {
            let error = await #expect(throws: DriverError.self) {
                try await storage.delete(pruneContext("acme", recorded: recordedPath(.storage, path, driver: "local")))
            }
            #expect(error?.message.contains("refusing") == true, "\(path)")
        }
        #expect(Files.bytes(directory.path("outside/acme/keep.txt")) == Data("keep".utf8))
        #expect(Files.bytes(directory.path("storage-evil/acme/keep.txt")) == Data("keep".utf8))
    }

    @Test func deleteRefusesATreeThatIsNotTheInstances() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let acme = context(storage, testSpec("acme"))
        _ = try await storage.apply(acme)
        let ownerTree = ((try #require(acme.fields["path"])) as NSString).deletingLastPathComponent
        await #expect(throws: DriverError.self) {
            try await storage.delete(pruneContext("acme", recorded: recordedPath(.storage, ownerTree, driver: "local")))
        }
        await #expect(throws: DriverError.self) {
            try await storage.delete(
                pruneContext("acme", recorded: recordedPath(.storage, directory.path("storage"), driver: "local")))
        }
        #expect(try await storage.observe(acme) == .ok)
    }

    @Test func deleteWithNothingRecordedDoesNothing() async throws {
        let directory = try DriverDirectory()
        let storage = LocalStorageProvisioner(root: directory.path("storage"), zone: "local")
        let acme = context(storage, testSpec("acme"))
        _ = try await storage.apply(acme)
        try await storage.delete(
            ResourceContext(
                name: "acme", owner: "ops@example.com", spec: nil, host: testHost, fields: FieldSet(), recorded: nil))
        #expect(try await storage.observe(acme) == .ok)
    }
}
