import DFECore
import DFEProvision
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failure of the test harness itself (server could not start, and so on).
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One throwaway MariaDB server per test run, started lazily by `scripts/mariadb-server`.
enum TestServer {
    /// The package root, found from this file's path.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var script: String { packageRoot.appendingPathComponent("scripts/mariadb-server").path }

    /// Whether the MariaDB server and client are installed.
    static var binariesPresent: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/mariadbd")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/mariadb")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/mariadb-install-db")
    }

    /// Whether we run in CI, where missing binaries are a failure rather than a skip.
    static var inCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Server tests run when the binaries are there, and always in CI (so that they fail there).
    static var enabled: Bool { binariesPresent || inCI }

    static let adminPassword = "admin"
    static let passwordVariable = "DFE_TEST_MYSQL_ADMIN_PASSWORD"

    /// The shared server, started on first use.
    static func shared() async throws -> RunningServer {
        try await ServerHolder.shared.server()
    }

    /// Starts a server in a fresh short directory on a free loopback port (retrying on a port race).
    static func start() throws -> RunningServer {
        guard binariesPresent else {
            throw HarnessError(
                "MariaDB not found (install mariadb-server and mariadb-client); CI=true makes this a failure"
            )
        }
        let dir = try makeTempDirectory()
        serverToStop.withLock { $0 = dir }
        _ = registerStopAtExit
        var lastError = ""
        for _ in 0..<5 {
            let port = try freePort()
            let (status, output) = try runScript(["start", dir, String(port)], log: dir + ".log")
            if status == 0 { return RunningServer(directory: dir, port: port) }
            lastError = output
        }
        throw HarnessError("scripts/mariadb-server start failed: \(lastError)")
    }

    /// Runs `scripts/mariadb-server` with no inherited stdin/stdout and stderr into a log file.
    static func runScript(_ arguments: [String], log: String) throws -> (Int32, String) {
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

    /// A fresh `/tmp/dfe-my-XXXXXX` directory (short, so the socket path stays well under 107 bytes).
    static func makeTempDirectory() throws -> String {
        var template = Array("/tmp/dfe-my-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        guard made else { throw HarnessError("mkdtemp failed: errno \(errno)") }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A loopback TCP port nothing listens on right now (bind to port 0 and read it back).
    static func freePort() throws -> Int {
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

/// A started server: its directory and port; the admin is `admin`/`admin`, the general log `DIR/general.log`.
struct RunningServer: Sendable {
    var directory: String
    var port: Int

    var generalLog: String { directory + "/general.log" }
}

/// Starts the server once and hands it to every test.
actor ServerHolder {
    static let shared = ServerHolder()
    private var starting: Task<RunningServer, any Error>?

    func server() async throws -> RunningServer {
        if let starting { return try await starting.value }
        let task = Task { try await offloaded { try TestServer.start() } }
        starting = task
        return try await task.value
    }
}

/// The directory of the server to stop when the test process exits.
let serverToStop = Mutex<String?>(nil)

/// Registers (once) an exit handler that stops the server and removes its directory.
let registerStopAtExit: Void = {
    atexit {
        guard let dir = serverToStop.withLock({ $0 }) else { return }
        // posix_spawn, not Foundation: we are inside exit().
        let command = "\"$0\" stop \"$1\" >/dev/null 2>&1 </dev/null; rm -rf \"$1\""
        let arguments = ["/bin/bash", "-c", command, TestServer.script, dir]
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
