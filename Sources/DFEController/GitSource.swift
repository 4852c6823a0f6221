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
                    logger.info("new commit", metadata: ["revision": "\(sha)", "ref": "\(options.ref)"])
                    let tree = try await checkout(sha)
                    let manifests = tree.appendingPathComponent(options.path).standardizedFileURL
                    // A symbolic link leaving the repository is never followed: the commit is refused (and
                    // checked again on every fetch, so the error stays until a commit fixes it).
                    if let escaping = Git.escapingLinks(manifests, repository: tree).first {
                        throw Git.LinkEscape(file: escaping)
                    }
                    seen = sha
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

/// Runs the git command-line tool: no terminal prompts, stdin from /dev/null, output captured, a scrubbed
/// environment and a timeout.
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
        process.environment = environment(from: ProcessInfo.processInfo.environment)
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
                return
            }
            // A hung fetch (a server that never answers) is killed.
            let pid = process.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds) {
                if process.isRunning { kill(pid, SIGKILL) }
            }
        }
        try? outHandle.close()
        try? errHandle.close()
        let output = ((try? String(contentsOf: outURL, encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if process.terminationReason == .uncaughtSignal, process.terminationStatus == SIGKILL {
            throw Failure(
                arguments: arguments, status: process.terminationStatus,
                output: "timed out after \(DurationText.format(timeout)) and was killed")
        }
        guard process.terminationStatus == 0 else {
            let error = ((try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(arguments: arguments, status: process.terminationStatus, output: error)
        }
        return output
    }

    /// How long one git command may run.
    static let timeout: Duration = .seconds(120)

    /// Only what git needs from the environment: never the admin password variables of the service.
    static func environment(from environment: [String: String]) -> [String: String] {
        var result = ["GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"]
        for key in passedThrough { if let value = environment[key] { result[key] = value } }
        return result
    }

    /// The variables git may see: its search path and home, locale, askpass and SSH agent, TLS and proxies.
    static let passedThrough = [
        "PATH", "HOME", "LANG", "TMPDIR", "XDG_CONFIG_HOME", "GIT_ASKPASS", "SSH_ASKPASS", "SSH_AUTH_SOCK",
        "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR", "http_proxy", "https_proxy",
        "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
    ]

    /// A symbolic link in the manifests that points outside the repository.
    struct LinkEscape: Error, CustomStringConvertible {
        var file: String
        var description: String {
            "\(file) is a symbolic link that leaves the repository; dfe does not follow it (its content is not read): replace it with the file itself"
        }
    }

    /// The paths (relative to `repository`) of symbolic links at or below `directory` whose targets lie
    /// outside `repository`; the directory itself counts too.
    static func escapingLinks(_ directory: URL, repository: URL) -> [String] {
        let root = repository.resolvingSymlinksInPath().standardizedFileURL.path
        func inside(_ url: URL) -> Bool {
            let path = url.resolvingSymlinksInPath().standardizedFileURL.path
            return path == root || path.hasPrefix(root + "/")
        }
        func relative(_ url: URL) -> String {
            let path = url.standardizedFileURL.path
            let base = repository.standardizedFileURL.path + "/"
            return path.hasPrefix(base) ? String(path.dropFirst(base.count)) : path
        }
        // Every component from the repository down to the manifests directory.
        var escaping: [String] = []
        var walk = repository.standardizedFileURL
        for component in relative(directory).split(separator: "/") {
            walk.appendPathComponent(String(component))
            if isLink(walk.path), !inside(walk) { return [relative(walk)] }
        }
        guard inside(directory),
            let enumerator = FileManager.default.enumerator(atPath: directory.path)
        else { return escaping }
        while let entry = enumerator.nextObject() as? String {
            let url = directory.appendingPathComponent(entry)
            if isLink(url.path), !inside(url) { escaping.append(relative(url)) }
        }
        return escaping.sorted()
    }

    static func isLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }
}
