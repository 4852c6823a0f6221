import DFECore
import DFEProvision
public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failure of the test harness itself (cluster could not start, and so on).
public struct HarnessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One throwaway PostgreSQL cluster per test run, started lazily by `scripts/pg-cluster`.
public enum TestCluster {
    /// The package root, found from this file's path.
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static var script: String { packageRoot.appendingPathComponent("scripts/pg-cluster").path }

    /// Whether PostgreSQL server binaries are installed.
    public static var binariesPresent: Bool {
        let base = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        return versions.contains { FileManager.default.isExecutableFile(atPath: "\(base)/\($0)/bin/pg_ctl") }
    }

    /// Whether we run in CI, where missing binaries are a failure rather than a skip.
    public static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Server tests run when the binaries are there, and always in CI (so that they fail there).
    public static var enabled: Bool { binariesPresent || inCI }

    public static let adminPassword = "postgres"
    public static let passwordVariable = "DFE_TEST_PG_ADMIN_PASSWORD"

    /// The shared cluster, started on first use.
    public static func shared() async throws -> RunningCluster {
        try await ClusterHolder.shared.cluster()
    }

    /// Starts a cluster in a fresh short directory on a free loopback port (retrying on a port race).
    public static func start() throws -> RunningCluster {
        guard binariesPresent else {
            throw HarnessError(
                "PostgreSQL binaries not found in /usr/lib/postgresql/*/bin (install postgresql-15); CI=true makes this a failure"
            )
        }
        let dir = try makeTempDirectory()
        clusterToStop.withLock { $0 = dir }
        _ = registerStopAtExit
        var lastError = ""
        for _ in 0..<5 {
            let port = try freePort()
            let (status, output) = try runScript(["start", dir, String(port)], log: dir + ".log")
            if status == 0 { return RunningCluster(directory: dir, port: port) }
            lastError = output
        }
        throw HarnessError("scripts/pg-cluster start failed: \(lastError)")
    }

    /// Runs `scripts/pg-cluster` with no inherited stdin/stdout and stderr into a log file.
    public static func runScript(_ arguments: [String], log: String) throws -> (Int32, String) {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: log) }
        let errors = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        defer { try? errors.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script] + arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return (process.terminationStatus, output)
    }

    /// A fresh `/tmp/dfe-pg-XXXXXX` directory (short, so the socket path stays well under 107 bytes).
    public static func makeTempDirectory() throws -> String {
        var template = Array("/tmp/dfe-pg-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        guard made else { throw HarnessError("mkdtemp failed: errno \(errno)") }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A loopback TCP port nothing listens on right now (bind to port 0 and read it back).
    public static func freePort() throws -> Int {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw HarnessError("socket failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw HarnessError("bind failed: errno \(errno)") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw HarnessError("getsockname failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A started cluster: its directory and port; the superuser is `postgres`/`postgres`.
public struct RunningCluster: Sendable {
    public var directory: String
    public var port: Int
}

/// Starts the cluster once and hands it to every test.
actor ClusterHolder {
    static let shared = ClusterHolder()
    private var starting: Task<RunningCluster, any Error>?

    func cluster() async throws -> RunningCluster {
        if let starting { return try await starting.value }
        let task = Task { try await offloaded { try TestCluster.start() } }
        starting = task
        return try await task.value
    }
}

/// The directory of the cluster to stop when the test process exits.
let clusterToStop = Mutex<String?>(nil)

/// Registers (once) an exit handler that stops the cluster and removes its directory.
let registerStopAtExit: Void = {
    atexit {
        guard let dir = clusterToStop.withLock({ $0 }) else { return }
        // posix_spawn, not Foundation: we are inside exit().
        let command = "\"$0\" stop \"$1\" >/dev/null 2>&1 </dev/null; rm -rf \"$1\""
        let arguments = ["/bin/bash", "-c", command, TestCluster.script, dir]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        defer {
            for pointer in argv { free(pointer) }
        }
        var pid = pid_t()
        if posix_spawn(&pid, "/bin/bash", nil, nil, argv, environ) == 0 {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }
}()
