import DFECore
import Foundation
import Logging
import ServiceLifecycle

/// Where manifests come from in GitOps mode: `--git URL --ref REF --path DIR`.
public struct GitSourceOptions: Sendable, Hashable {
    public var url: String
    public var ref: String
    /// The manifests directory inside the repository.
    public var path: String
    /// How often to fetch; nil: the resync interval.
    public var interval: Duration?

    public init(url: String, ref: String = "main", path: String = "manifests", interval: Duration? = nil) {
        self.url = url
        self.ref = ref
        self.path = path
        self.interval = interval
    }

    /// The URL as it may be shown: any `user:password@` (a token) replaced by `(sensitive)@`.
    public var displayURL: String { Self.redact(url, in: url) }

    /// `text` with the credentials of `url`, if it has any, replaced by `(sensitive)`.
    static func redact(_ text: String, in url: String) -> String {
        guard let components = URLComponents(string: url), components.user != nil || components.password != nil,
            let scheme = components.scheme, let range = url.range(of: "\(scheme)://"),
            let at = url[range.upperBound...].firstIndex(of: "@")
        else { return text }
        let credentials = String(url[range.upperBound..<at])
        return text.replacingOccurrences(of: credentials, with: Sensitive.placeholder)
    }
}

/// Fetches the ref at start and every interval; checks each new commit out into its own work tree and hands it
/// to the engine, which reconciles it once with the commit as revision.
///
/// Layout under `ROOT/var/git/`: `repo.git` (a bare clone) and `checkouts/SHA` (the adopted commit's work tree;
/// others are removed). A work tree is never changed once checked out, so a load never sees half a checkout.
struct GitSource: Service {
    let options: GitSourceOptions
    let interval: Duration
    /// `ROOT/var/git`.
    let directory: URL
    let engine: Engine
    let state: ControllerState
    let logger: Logger

    var repository: URL { directory.appendingPathComponent("repo.git") }
    var checkouts: URL { directory.appendingPathComponent("checkouts") }

    func run() async throws {
        try await prepare()
        var seen: String?
        var adopted: URL?
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let sha = try await fetch()
                state.update { $0.sourceError = nil }
                if sha != seen {
                    seen = sha
                    logger.info("new commit", metadata: ["revision": "\(sha)", "ref": "\(options.ref)"])
                    let tree = try await checkout(sha)
                    let manifests = tree.appendingPathComponent(options.path).standardizedFileURL
                    if await engine.adoptCommit(sha, manifests: manifests) {
                        if let adopted, adopted != tree { await removeCheckout(adopted) }
                        adopted = tree
                    } else if tree != adopted {
                        await removeCheckout(tree)
                    }
                }
            } catch {
                let message = GitSourceOptions.redact("\(error)", in: options.url)
                logger.error("git fetch failed", metadata: ["url": "\(options.displayURL)", "error": "\(message)"])
                state.update { $0.sourceError = "git \(options.displayURL) \(options.ref): \(message)" }
            }
            let deadline = ContinuousClock.now + interval
            while ContinuousClock.now < deadline, !Task.isShuttingDownGracefully, !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Creates the bare repository if needed and forgets work trees of an earlier run.
    func prepare() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: repository.appendingPathComponent("HEAD").path) {
            try? FileManager.default.removeItem(at: repository)
            try await Git.run(["init", "--quiet", "--bare", repository.path])
        }
        try? FileManager.default.removeItem(at: checkouts)
        try await Git.run(["-C", repository.path, "worktree", "prune"])
    }

    /// Fetches the ref and returns its commit.
    func fetch() async throws -> String {
        try await Git.run(["-C", repository.path, "fetch", "--quiet", "--no-tags", options.url, options.ref])
        return try await Git.run(["-C", repository.path, "rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}"])
    }

    /// Checks `sha` out (detached) into `checkouts/SHA`, unless already there.
    func checkout(_ sha: String) async throws -> URL {
        let tree = checkouts.appendingPathComponent(sha)
        if FileManager.default.fileExists(atPath: tree.appendingPathComponent(".git").path) { return tree }
        try FileManager.default.createDirectory(at: checkouts, withIntermediateDirectories: true)
        try await Git.run(["-C", repository.path, "worktree", "add", "--quiet", "--force", "--detach", tree.path, sha])
        return tree
    }

    /// Removes a work tree (best effort).
    func removeCheckout(_ tree: URL) async {
        _ = try? await Git.run(["-C", repository.path, "worktree", "remove", "--force", tree.path])
        try? FileManager.default.removeItem(at: tree)
    }
}

/// Runs the git command-line tool: no terminal prompts, stdin from /dev/null, output captured.
enum Git {
    struct Failure: Error, CustomStringConvertible {
        var arguments: [String]
        var status: Int32
        var output: String
        var description: String {
            "git \(arguments.first == "-C" ? arguments.dropFirst(2).first ?? "" : arguments.first ?? "") exited \(status): \(output)"
        }
    }

    /// Runs `git ARGS`, returning trimmed stdout; throws with stderr when it fails.
    @discardableResult
    static func run(_ arguments: [String]) async throws -> String {
        let scratch = FileManager.default.temporaryDirectory
        let outURL = scratch.appendingPathComponent("dfe-git-\(UUID().uuidString).out")
        let errURL = scratch.appendingPathComponent("dfe-git-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_TERMINAL_PROMPT"] = "0"
        environment["LC_ALL"] = "C"
        process.environment = environment
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        process.standardOutput = outHandle
        process.standardError = errHandle
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try? outHandle.close()
        try? errHandle.close()
        let output = ((try? String(contentsOf: outURL, encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0 else {
            let error = ((try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(arguments: arguments, status: process.terminationStatus, output: error)
        }
        return output
    }
}
