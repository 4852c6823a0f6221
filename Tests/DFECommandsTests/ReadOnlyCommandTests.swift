import DFECore
import DFEState
import DFETestSupport
import Foundation
import Testing

/// Read-only commands change no byte, mode or mtime of the state or `var/`, and work on a read-only state.
@Suite(.serialized) struct ReadOnlyCommandTests {
    static let readCommands: [[String]] = [
        ["validate"], ["plan"], ["reconcile", "--dry-run", "--output", "json"], ["status"], ["status", "alpha"],
        ["history"], ["history", "--output", "json"], ["provisioners"],
    ]

    /// Every entry below `var/` (and the root itself) with its mode, mtime and, for files, size and digest.
    func varListing(_ ws: TemporaryWorkspace) throws -> [String] {
        let base = ws.root.appendingPathComponent("var")
        var lines: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: base.path)
        var paths = [""]
        while let path = enumerator?.nextObject() as? String { paths.append(path) }
        for path in paths.sorted() {
            let full = path.isEmpty ? base.path : base.appendingPathComponent(path).path
            var info = stat()
            guard lstat(full, &info) == 0 else { continue }
            var line = "\(path) \(String(info.st_mode, radix: 8)) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
            if (info.st_mode & S_IFMT) == S_IFREG {
                let data = try Data(contentsOf: URL(fileURLWithPath: full))
                line += " \(data.count) " + SHA256.hexString(SHA256.digest(data))
            }
            lines.append(line)
        }
        return lines
    }

    /// Makes `var/` read-only: directories 0500, the state files 0400 (other files keep their 0600/0644).
    func makeReadOnly(_ ws: TemporaryWorkspace) throws {
        let base = ws.root.appendingPathComponent("var")
        let enumerator = FileManager.default.enumerator(atPath: base.path)
        var paths: [String] = []
        while let path = enumerator?.nextObject() as? String { paths.append(base.appendingPathComponent(path).path) }
        for path in paths + [base.path] {
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                chmod(path, 0o500)
            } else if path.hasPrefix(ws.stateURL.path) {
                chmod(path, 0o400)
            }
        }
    }

    /// Runs dfe without any capability (root then obeys file modes, like any user).
    func unprivileged(_ arguments: [String], in ws: TemporaryWorkspace) async throws -> ProcessResult {
        if getuid() != 0 { return try await DFEBinary.run(arguments, in: ws.root) }
        return try await DFEBinary.run(
            arguments, in: ws.root, prefix: ["/usr/bin/setpriv", "--inh-caps=-all", "--bounding-set=-all"])
    }

    @Test func readCommandsLeaveVarByteModeAndMtimeIdenticalOnAReadOnlyState() async throws {
        let ws = try TemporaryWorkspace(prefix: "dfe-ro")
        defer {
            chmodTree(ws.root)
            ws.delete()
        }
        try ws.addInstance("alpha")
        try ws.addInstance("beta")
        let apply = try await DFEBinary.run(["reconcile"], in: ws.root)
        try #require(apply.status == 0, "\(apply.stderr)")
        try makeReadOnly(ws)
        let before = try varListing(ws)
        for command in Self.readCommands {
            let result = try await unprivileged(command, in: ws)
            #expect(result.status == 0, "\(command): \(result.stdout) \(result.stderr)")
            #expect(try varListing(ws) == before, "\(command) changed var/")
        }
    }

    @Test func readCommandsReadARunInProgressWithoutTouchingItsWal() async throws {
        let ws = try TemporaryWorkspace(prefix: "dfe-ro")
        defer {
            chmodTree(ws.root)
            ws.delete()
        }
        for index in 0..<150 { try ws.addInstance(String(format: "inst-%04d", index)) }
        try ws.addInstance("alpha")
        let run = try DFEBinary.start(["reconcile", "--parallelism", "1"], in: ws.root)
        var midway = false
        for _ in 0..<1000 where !midway {
            try await Task.sleep(for: .milliseconds(10))
            let steps =
                FileManager.default.fileExists(atPath: ws.stateURL.path)
                ? (try? SQLiteShell.query(ws.stateURL.path, "SELECT count(*) FROM journal")).flatMap { Int($0 ?? "") }
                : nil
            midway = (steps ?? 0) >= 5 && run.isRunning
        }
        kill(run.processIdentifier, SIGKILL)
        run.waitUntilExit()
        try #require(midway, "the run finished before it could be killed")
        try #require(FileManager.default.fileExists(atPath: ws.stateURL.path + "-wal"))
        try makeReadOnly(ws)
        let before = try varListing(ws)
        for command in [
            ["status", "--output", "json"], ["history", "--output", "json"], ["plan", "--output", "json"],
        ] {
            let result = try await unprivileged(command, in: ws)
            #expect([0, 2].contains(result.status), "\(command): \(result.stderr)")
            #expect(try varListing(ws) == before, "\(command) changed var/")
            if command[0] == "history" {
                let entries = DFEBinary.json(result)?["entries"] as? [Any]
                #expect((entries?.count ?? 0) > 0, "the WAL's committed steps were not read")
            }
        }
    }

    @Test func everyCommandRefusesAStateWrittenByANewerDfe() async throws {
        let ws = try TemporaryWorkspace(prefix: "dfe-ro")
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let apply = try await DFEBinary.run(["reconcile"], in: ws.root)
        try #require(apply.status == 0)
        try SQLiteShell.execute(
            ws.stateURL.path, "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
        for command in [
            ["plan"], ["reconcile", "--dry-run"], ["reconcile"], ["status"], ["history"], ["unlock", "--force"],
        ] {
            let result = try await DFEBinary.run(command, in: ws.root)
            #expect(result.status == 1, "\(command): \(result.stdout)")
            #expect(result.stderr.contains("written by a newer dfe"), "\(command): \(result.stderr)")
        }
    }

    @Test func aRunByAnotherUserThanTheStateOwnerIsRefusedUnlessAllowed() async throws {
        guard getuid() == 0 else { return }
        let ws = try TemporaryWorkspace(prefix: "dfe-user")
        defer { ws.delete() }
        try ws.addInstance("alpha")
        let apply = try await DFEBinary.run(["reconcile"], in: ws.root)
        try #require(apply.status == 0)
        // The state belongs to the service user; root types a run by hand.
        guard let nobody = getpwnam("nobody") else { return }
        chown(ws.stateURL.path, nobody.pointee.pw_uid, nobody.pointee.pw_gid)
        try ws.addInstance("beta")
        for command in [["reconcile"], ["unlock", "--force"]] {
            let refused = try await DFEBinary.run(command, in: ws.root)
            #expect(refused.status == 1)
            #expect(
                refused.stderr.contains("is owned by user 'nobody' but this run is user 'root'")
                    && refused.stderr.contains("sudo -u nobody dfe"), "\(refused.stderr)")
        }
        #expect(!ws.exists("var/instances/beta"))
        let plan = try await DFEBinary.run(["plan"], in: ws.root)
        #expect(plan.status == 2, "read-only commands need no ownership: \(plan.stderr)")
        let allowed = try await DFEBinary.run(["reconcile", "--allow-other-user"], in: ws.root)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(ws.exists("var/instances/beta/instance.json"))
    }
}

/// Makes a tree writable again so it can be removed.
func chmodTree(_ root: URL) {
    let enumerator = FileManager.default.enumerator(atPath: root.path)
    chmod(root.path, 0o700)
    while let path = enumerator?.nextObject() as? String {
        let full = root.appendingPathComponent(path).path
        var info = stat()
        guard lstat(full, &info) == 0 else { continue }
        chmod(full, (info.st_mode & S_IFMT) == S_IFDIR ? 0o700 : 0o600)
    }
}
