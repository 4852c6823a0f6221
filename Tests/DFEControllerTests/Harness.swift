import DFETestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// A `dfe controller` child process on a free loopback port; killed by `kill()` (call it in a `defer`).
final class RunningController: @unchecked Sendable {
    let process: Process
    let port: Int
    let log: URL

    /// Starts `dfe controller --root ROOT --listen 127.0.0.1:PORT --interval 2s` plus `extra`.
    init(root: URL, extra: [String] = [], interval: String = "2s", logName: String = "controller.log") throws {
        port = try freePort()
        log = root.appendingPathComponent(logName)
        process = try DFEBinary.start(
            ["controller", "--root", root.path, "--listen", "127.0.0.1:\(port)", "--interval", interval] + extra,
            in: root, output: log)
    }

    /// Kills the process if it still runs (SIGKILL): a failing test never leaves a controller behind.
    func kill() {
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Sends SIGTERM and waits for the exit status (nil if it did not exit within `timeout`).
    func terminate(timeout: Duration = .seconds(10)) async -> Int32? {
        Glibc.kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        guard !process.isRunning else { return nil }
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    /// The controller's log so far (for failure messages).
    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// GET `path`; nil when the server does not answer.
    func get(_ path: String) async -> (status: Int, body: String)? {
        await httpGet("http://127.0.0.1:\(port)\(path)")
    }

    /// GET `path` as a JSON object.
    func json(_ path: String) async -> [String: Any]? {
        guard let (status, body) = await get(path), status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    /// The instance object of `/api/v1/instances/NAME`, if any.
    func instance(_ name: String) async -> [String: Any]? {
        await json("/api/v1/instances/\(name)")
    }
}

/// A TCP port nobody listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw HarnessError("bind failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw HarnessError("getsockname failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A plain GET with a short timeout; nil on any transport error.
func httpGet(_ url: String) async -> (status: Int, body: String)? {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.timeoutIntervalForRequest = 3
    let session = URLSession(configuration: configuration)
    defer { session.finishTasksAndInvalidate() }
    guard let url = URL(string: url), let (data, response) = try? await session.data(from: url),
        let http = response as? HTTPURLResponse
    else { return nil }
    return (http.statusCode, String(decoding: data, as: UTF8.self))
}

/// Polls `check` until it holds or `timeout` passes; returns whether it held.
func eventually(
    within timeout: Duration = .seconds(20), every interval: Duration = .milliseconds(200),
    _ check: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await check() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await check()
}

/// Runs git in `directory` with a fixed identity; throws with its output when it fails.
@discardableResult
func git(_ arguments: [String], in directory: URL) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["git", "-c", "user.name=dfe test", "-c", "user.email=test@example.com"] + arguments
    process.currentDirectoryURL = directory
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let output = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard process.terminationStatus == 0 else {
        throw HarnessError("git \(arguments.joined(separator: " ")): \(output)")
    }
    return output
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
