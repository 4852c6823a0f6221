import DFECore
import DFEState
import DFEStatePostgres
import DFETestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Three `dfe controller` processes on one PostgreSQL state, as an HA deployment runs them.
@Suite("high availability on a PostgreSQL state", .serialized)
struct HighAvailabilityTests {
    /// Three controllers on loopback ports sharing `state`, with logs `controller-N.log`.
    static func start(_ workspace: TemporaryWorkspace, _ state: TestState) throws -> [RunningController] {
        let extra = ["--state", state.location.absoluteString, "--state-schema", state.schema]
        return try (0..<3).map { index in
            try RunningController(
                root: workspace.root, extra: extra, interval: "1h", logName: "controller-\(index).log")
        }
    }

    /// The indexes of the controllers whose metrics say they lead.
    static func leaders(_ controllers: [RunningController]) async -> [Int] {
        var result: [Int] = []
        for (index, controller) in controllers.enumerated() where controller.process.isRunning {
            if let metrics = await controller.get("/metrics")?.body,
                metrics.contains("\ndfe_leader 1.0\n") || metrics.contains("\ndfe_leader 1\n")
            {
                result.append(index)
            }
        }
        return result
    }

    static func logs(_ controllers: [RunningController]) -> String {
        controllers.enumerated().map { "--- controller \($0.offset)\n\($0.element.output)" }.joined(separator: "\n")
    }

    static func appKey(_ workspace: TemporaryWorkspace, _ name: String) -> String? {
        guard let metadata = try? workspace.metadata(name), let key = metadata["appKey"] as? [String: Any] else {
            return nil
        }
        return "\(key["clientId"] ?? "")/\(key["clientSecret"] ?? "")"
    }

    @Test("kill -9 of the leader mid-apply: a standby leads within 20 s and finishes, nothing applied twice")
    func aKilledLeaderIsReplacedAndNothingIsAppliedTwice() async throws {
        guard TestCluster.enabled else { return }
        let state = try await TestState(.postgres)
        PostgresStateBackend.register()
        let backend = try StateBackends.backend(for: state.location, schema: state.schema)
        let workspace = try TemporaryWorkspace(prefix: "dfe-ha-kill")
        defer { workspace.delete() }
        let names = (0..<300).map { String(format: "ha-%03d", $0) }
        for name in names { try workspace.addInstance(name) }
        let controllers = try Self.start(workspace, state)
        defer {
            for controller in controllers { controller.kill() }
        }

        // Exactly one leads; the others stand by naming it.
        let one = await eventually { await Self.leaders(controllers).count == 1 }
        try #require(one, "no single leader:\n\(Self.logs(controllers))")
        let leader = try #require(await Self.leaders(controllers).first)
        let leaderPID = controllers[leader].process.processIdentifier
        for (index, standby) in controllers.enumerated() where index != leader {
            let ready = await standby.get("/readyz")
            #expect(ready?.status == 503)
            #expect(ready?.body.hasPrefix("standby; leader is \(leaderPID)@") == true, "\(ready?.body ?? "")")
            #expect(await standby.get("/healthz")?.status == 200)
        }

        // Mid-apply: some steps done, most not.
        let midway = await eventually(within: .seconds(60), every: .milliseconds(20)) {
            let done = (try? backend.history(instance: nil, limit: 10_000))?.filter { $0.status == .succeeded }.count
            return (done ?? 0) >= 60
        }
        try #require(midway, "the leader never started applying:\n\(Self.logs(controllers))")
        kill(leaderPID, SIGKILL)
        controllers[leader].process.waitUntilExit()
        let killedAt = ContinuousClock.now
        let before = Dictionary(
            uniqueKeysWithValues: names.compactMap { n in Self.appKey(workspace, n).map { (n, $0) } })
        let succeededAtKill = try backend.history(instance: nil, limit: 10_000).filter { $0.status == .succeeded }.count
        #expect(succeededAtKill < names.count * 3, "the kill came too late to interrupt anything")

        let replaced = await eventually(within: .seconds(20), every: .milliseconds(100)) {
            let leaders = await Self.leaders(controllers)
            return leaders.count == 1 && leaders.first != leader
        }
        #expect(replaced, "no standby led within 20 s:\n\(Self.logs(controllers))")
        #expect(ContinuousClock.now - killedAt < .seconds(20))

        let finished = await eventually(within: .seconds(120), every: .milliseconds(250)) {
            guard let recorded = try? backend.snapshot(withFields: false) else { return false }
            return recorded.count == names.count && recorded.values.allSatisfy { $0.phase == .ready }
        }
        #expect(finished, "not finished:\n\(Self.logs(controllers))")
        let journal = try backend.history(instance: nil, limit: 100_000)
        #expect(!journal.contains { $0.status == .started })
        var outcomes: [String: Int] = [:]
        for entry in journal where entry.status == .succeeded {
            outcomes["\(entry.instance)/\(entry.resource.rawValue)/\(entry.action.rawValue)", default: 0] += 1
        }
        #expect(outcomes.count == names.count * 3)
        #expect(outcomes.values.allSatisfy { $0 == 1 }, "duplicate outcomes: \(outcomes.filter { $0.value > 1 })")
        for (name, key) in before { #expect(Self.appKey(workspace, name) == key, "app key of \(name) changed") }
        let leftovers = workspace.allPaths().filter { $0.hasSuffix(".dfe-tmp") }
        #expect(leftovers.isEmpty, "temp files left: \(leftovers)")
        #expect(await Self.leaders(controllers).count == 1)
    }

    @Test("SIGTERM of the leader releases the lease at once and a standby leads within 3 s")
    func aTerminatedLeaderHandsOverWithinThreeSeconds() async throws {
        guard TestCluster.enabled else { return }
        let state = try await TestState(.postgres)
        let workspace = try TemporaryWorkspace(prefix: "dfe-ha-term")
        defer { workspace.delete() }
        try workspace.addInstance("steady")
        let controllers = try Self.start(workspace, state)
        defer {
            for controller in controllers { controller.kill() }
        }
        let settled = await eventually {
            let leaders = await Self.leaders(controllers)
            guard leaders.count == 1, let leader = leaders.first else { return false }
            return await controllers[leader].get("/readyz")?.status == 200
        }
        try #require(settled, "no ready leader:\n\(Self.logs(controllers))")
        let leader = try #require(await Self.leaders(controllers).first)
        let stopped = ContinuousClock.now
        let status = await controllers[leader].terminate()
        #expect(status == 0)
        let handedOver = await eventually(within: .seconds(3), every: .milliseconds(50)) {
            let leaders = await Self.leaders(controllers)
            return leaders.count == 1 && leaders.first != leader
        }
        #expect(handedOver, "no standby led within 3 s:\n\(Self.logs(controllers))")
        #expect(ContinuousClock.now - stopped < .seconds(3) + .milliseconds(500))
    }
}
