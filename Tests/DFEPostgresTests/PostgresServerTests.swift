import DFECore
import DFEProvision
import DFETestSupport
import Foundation
import Testing

@testable import DFEPostgres

/// Behaviour against a real PostgreSQL server (a throwaway cluster started once per run).
@Suite(
    .enabled(
        if: TestCluster.enabled,
        "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin; install postgresql-15 (with CI=true these tests fail instead)"
    )
)
struct PostgresServerTests {
    @Test func aNonSuperuserAdminWithCreateRoleAndCreateDBProvisionsAndDeletes() async throws {
        let cluster = try await TestCluster.shared()
        try admin(cluster, "CREATE ROLE dfe_operator LOGIN CREATEROLE CREATEDB PASSWORD 'operator-password'")
        let driver = try makeDriver(
            [
                "url": "postgres://dfe_operator@127.0.0.1:\(cluster.port)/postgres", "passwordEnv": "OPERATOR_PW",
                "sslmode": "disable",
            ],
            environment: ["OPERATOR_PW": "operator-password"])
        let ctx = context(driver, "operated")
        let outputs = try await driver.apply(ctx)
        let password = try #require(outputs["password"])
        _ = try connect(cluster, user: "dfe_operated", password: password, database: "dfe_operated")
        #expect(try exists(cluster, "dfe_operated") == (true, true))

        try await driver.delete(context(driver, "operated", recorded: outputs))
        #expect(try exists(cluster, "dfe_operated") == (false, false))
    }

    @Test func appliedRoleLogsInToItsOwnDatabaseAndPublicCannotConnect() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try clusterDriver(cluster)
        let outputs = try await driver.apply(context(driver, "login-check"))

        #expect(outputs["driver"] == "postgres")
        #expect(outputs["host"] == "127.0.0.1")
        #expect(outputs["port"] == String(cluster.port))
        #expect(outputs["name"] == "dfe_login_check")
        #expect(outputs["username"] == "dfe_login_check")
        let password = try #require(outputs["password"])
        #expect(password.count >= 32)
        #expect(password.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })

        let own = try connect(cluster, user: "dfe_login_check", password: password, database: "dfe_login_check")
        let who = try own.query("SELECT current_user, current_database()")
        #expect(who.first == ["dfe_login_check", "dfe_login_check"])

        try admin(cluster, "CREATE ROLE outsider_login_check LOGIN PASSWORD 'outsider-password'")
        let refused = #expect(throws: PGFailure.self) {
            try connect(
                cluster, user: "outsider_login_check", password: "outsider-password", database: "dfe_login_check")
        }
        #expect(refused?.message.contains("permission denied for database") == true)
        // The outsider itself can log in elsewhere: the refusal is the revoked CONNECT, not a bad login.
        _ = try connect(cluster, user: "outsider_login_check", password: "outsider-password", database: "postgres")
    }

    @Test func applyTwiceIsIdempotentAndKeepsThePassword() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try clusterDriver(cluster)
        let first = try await driver.apply(context(driver, "twice"))
        let second = try await driver.apply(context(driver, "twice", recorded: first))
        #expect(second == first)
        #expect(try await driver.observe(context(driver, "twice", recorded: second)) == .ok)
        let password = try #require(second["password"])
        _ = try connect(cluster, user: "dfe_twice", password: password, database: "dfe_twice")
    }

    @Test func applyResetsTheRolePasswordToTheRecordedOne() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try clusterDriver(cluster)
        let first = try await driver.apply(context(driver, "reset-password"))
        try admin(cluster, "ALTER ROLE dfe_reset_password PASSWORD 'changed-by-hand'")
        let second = try await driver.apply(context(driver, "reset-password", recorded: first))
        let password = try #require(second["password"])
        #expect(password == first["password"])
        _ = try connect(cluster, user: "dfe_reset_password", password: password, database: "dfe_reset_password")
    }

    @Test func observeReportsMissingThenOkThenDriftAndApplyRepairs() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try clusterDriver(cluster)
        #expect(try await driver.observe(context(driver, "drift")) == .missing)

        let outputs = try await driver.apply(context(driver, "drift"))
        #expect(try await driver.observe(context(driver, "drift", recorded: outputs)) == .ok)

        try admin(cluster, "DROP DATABASE dfe_drift")
        #expect(
            try await driver.observe(context(driver, "drift", recorded: outputs))
                == .drifted("database dfe_drift missing"))

        let repaired = try await driver.apply(context(driver, "drift", recorded: outputs))
        #expect(repaired == outputs)
        #expect(try await driver.observe(context(driver, "drift", recorded: repaired)) == .ok)
        let password = try #require(repaired["password"])
        _ = try connect(cluster, user: "dfe_drift", password: password, database: "dfe_drift")

        try admin(cluster, "GRANT CONNECT ON DATABASE dfe_drift TO PUBLIC")
        #expect(
            try await driver.observe(context(driver, "drift", recorded: repaired))
                == .drifted("database dfe_drift is open to PUBLIC"))
        _ = try await driver.apply(context(driver, "drift", recorded: repaired))
        #expect(try await driver.observe(context(driver, "drift", recorded: repaired)) == .ok)
    }

    @Test func observeOfAPrunedInstanceUsesTheRecordedNames() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try clusterDriver(cluster)
        let outputs = try await driver.apply(context(driver, "pruned"))
        #expect(try await driver.observe(pruneContext("pruned", recorded: outputs)) == .ok)
        try await driver.delete(pruneContext("pruned", recorded: outputs))
        #expect(try await driver.observe(pruneContext("pruned", recorded: outputs)) == .missing)
    }

    @Test func deleteLeavesNeitherDatabaseNorRoleEvenWithAnOpenSession() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try clusterDriver(cluster)
        let outputs = try await driver.apply(context(driver, "gone"))
        let password = try #require(outputs["password"])
        let session = try connect(cluster, user: "dfe_gone", password: password, database: "dfe_gone")
        try await driver.delete(context(driver, "gone", recorded: outputs))
        withExtendedLifetime(session) {}

        let left = try exists(cluster, "dfe_gone")
        #expect(!left.database)
        #expect(!left.role)
        #expect(try await driver.observe(context(driver, "gone")) == .missing)
        // Absent is success.
        try await driver.delete(context(driver, "gone", recorded: outputs))
    }

    @Test func databaseOwnedBySomeoneElseIsAConflictAndNeverTakenOver() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try clusterDriver(cluster)
        try admin(cluster, "CREATE DATABASE dfe_taken")
        let expected = "database dfe_taken exists and is owned by postgres, not dfe_taken; refusing to take it over"
        #expect(try await driver.observe(context(driver, "taken")) == .conflict(expected))

        let error = await #expect(throws: DriverError.self) { try await driver.apply(context(driver, "taken")) }
        #expect(error?.retryable == false)
        await #expect(throws: DriverError.self) { try await driver.delete(context(driver, "taken")) }
        let left = try exists(cluster, "dfe_taken")
        #expect(left.database)
        #expect(!left.role)
    }

    @Test func prefixOptionNamesRoleAndDatabase() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try clusterDriver(cluster, prefix: "acme_")
        let outputs = try await driver.apply(context(driver, "prefixed"))
        #expect(outputs["name"] == "acme_prefixed")
        #expect(try exists(cluster, "acme_prefixed") == (true, true))
        try await driver.delete(context(driver, "prefixed", recorded: outputs))
        #expect(try exists(cluster, "acme_prefixed") == (false, false))
    }

    @Test func wrongAdminPasswordIsARetryableUnreachableErrorWithoutThePassword() async throws {
        let cluster = try await TestCluster.shared()
        let driver = try makeDriver(
            [
                "url": "postgres://postgres@127.0.0.1:\(cluster.port)/postgres", "passwordEnv": "PW",
                "sslmode": "disable",
            ],
            environment: ["PW": "not-the-admin-password"])
        let error = await #expect(throws: DriverError.self) { try await driver.observe(context(driver, "badlogin")) }
        #expect(error?.retryable == true)
        #expect(error?.message.contains("postgres at 127.0.0.1:\(cluster.port) unreachable") == true)
        #expect(error?.message.contains("not-the-admin-password") == false)
    }
}

/// Failures that need no server.
struct PostgresUnreachableTests {
    @Test func observeAndApplyThrowARetryableDriverErrorWhenTheServerIsUnreachable() async throws {
        let port = try TestCluster.freePort()
        let driver = try makeDriver(
            [
                "url": "postgres://postgres@127.0.0.1:\(port)/postgres", "passwordEnv": "PW", "connectTimeout": "2s",
            ],
            environment: ["PW": "secret-admin-password"])
        let observed = await #expect(throws: DriverError.self) { try await driver.observe(context(driver, "away")) }
        #expect(observed?.retryable == true)
        #expect(observed?.message.hasPrefix("postgres at 127.0.0.1:\(port) unreachable: ") == true)
        #expect(observed?.message.contains("secret-admin-password") == false)

        let applied = await #expect(throws: DriverError.self) { try await driver.apply(context(driver, "away")) }
        #expect(applied?.retryable == true)
        await #expect(throws: DriverError.self) { try await driver.delete(context(driver, "away")) }
    }
}
