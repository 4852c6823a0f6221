import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Which watched tree changed.
struct WatchedChange: Sendable, Hashable {
    var manifests = false
    var config = false

    var isEmpty: Bool { !manifests && !config }

    mutating func formUnion(_ other: WatchedChange) {
        manifests = manifests || other.manifests
        config = config || other.config
    }
}

/// Watches the manifests and config directories recursively and reports changes, debounced.
///
/// Linux uses inotify (one watch per directory; new subdirectories get watches as they appear; a vanished root is
/// watched again when it comes back). Elsewhere it compares a fingerprint of the trees every second.
struct FileWatcher: Service {
    /// A directory to watch and what it holds.
    struct Root: Sendable {
        var url: URL
        var isConfig: Bool
    }

    let roots: [Root]
    let debounce: Duration
    let logger: Logger
    let onChange: @Sendable (WatchedChange) async -> Void
    /// How often the event queue is looked at.
    var poll: Duration = .milliseconds(50)

    func run() async throws {
        #if os(Linux)
            try await runInotify()
        #else
            await runPolling()
        #endif
    }

    /// Waits out the debounce, then reports; returns what is still pending.
    private func flush(
        _ pending: WatchedChange, lastEvent: ContinuousClock.Instant
    ) async -> WatchedChange {
        guard !pending.isEmpty, ContinuousClock.now - lastEvent >= debounce else { return pending }
        logger.info(
            "files changed",
            metadata: ["manifests": "\(pending.manifests)", "config": "\(pending.config)"])
        await onChange(pending)
        return WatchedChange()
    }

    #if os(Linux)
        private func runInotify() async throws {
            let inotify = try Inotify()
            var pending = WatchedChange()
            var lastEvent = ContinuousClock.now
            var lastRootCheck = ContinuousClock.now
            for root in roots { inotify.watchTree(root.url.path, isConfig: root.isConfig, logger: logger) }
            logger.info(
                "watching files", metadata: ["directories": "\(roots.map(\.url.path).joined(separator: ","))"])
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                let change = inotify.drain(logger: logger)
                if !change.isEmpty {
                    pending.formUnion(change)
                    lastEvent = .now
                }
                if ContinuousClock.now - lastRootCheck >= .seconds(1) {
                    lastRootCheck = .now
                    for root in roots where !inotify.isWatching(root.url.path) {
                        if inotify.watchTree(root.url.path, isConfig: root.isConfig, logger: logger) {
                            logger.info("watching again", metadata: ["directory": "\(root.url.path)"])
                            pending.formUnion(
                                root.isConfig ? WatchedChange(config: true) : WatchedChange(manifests: true))
                            lastEvent = .now
                        }
                    }
                }
                pending = await flush(pending, lastEvent: lastEvent)
                try? await Task.sleep(for: poll)
            }
        }
    #else
        private func runPolling() async {
            func fingerprint(_ root: URL) -> [String: Date] {
                var result: [String: Date] = [:]
                let keys: [URLResourceKey] = [.contentModificationDateKey]
                guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: keys)
                else { return result }
                for case let url as URL in enumerator {
                    result[url.path] = (try? url.resourceValues(forKeys: Set(keys)))?.contentModificationDate
                }
                return result
            }
            var prints = roots.map { fingerprint($0.url) }
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                var change = WatchedChange()
                for (index, root) in roots.enumerated() {
                    let now = fingerprint(root.url)
                    if now != prints[index] {
                        prints[index] = now
                        if root.isConfig { change.config = true } else { change.manifests = true }
                    }
                }
                if !change.isEmpty { _ = await flush(change, lastEvent: .now - debounce) }
            }
        }
    #endif
}

#if os(Linux)
    /// An inotify instance (non-blocking, close-on-exec) with one watch per directory.
    final class Inotify {
        struct WatchError: Error, CustomStringConvertible {
            var description: String
        }

        let fd: Int32
        /// Watch descriptor -> (directory path, is config).
        private var watches: [Int32: (path: String, isConfig: Bool)] = [:]
        private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

        static let mask: UInt32 =
            UInt32(IN_CREATE) | UInt32(IN_DELETE) | UInt32(IN_MODIFY) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_FROM)
            | UInt32(IN_MOVED_TO) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF) | UInt32(IN_ATTRIB)

        init() throws {
            fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard fd >= 0 else {
                throw WatchError(description: "inotify_init1 failed: \(String(cString: strerror(errno)))")
            }
        }

        deinit { close(fd) }

        /// Whether `path` itself has a watch.
        func isWatching(_ path: String) -> Bool { watches.values.contains { $0.path == path } }

        /// Adds watches on `path` and every directory below it; false when `path` is not a directory.
        @discardableResult
        func watchTree(_ path: String, isConfig: Bool, logger: Logger) -> Bool {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                return false
            }
            let wd = inotify_add_watch(fd, path, Self.mask)
            guard wd >= 0 else {
                logger.warning(
                    "cannot watch directory",
                    metadata: ["directory": "\(path)", "error": "\(String(cString: strerror(errno)))"])
                return false
            }
            watches[wd] = (path, isConfig)
            let children = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            for child in children {
                let childPath = path + "/" + child
                var childIsDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: childPath, isDirectory: &childIsDirectory),
                    childIsDirectory.boolValue
                {
                    watchTree(childPath, isConfig: isConfig, logger: logger)
                }
            }
            return true
        }

        /// Reads every pending event; adds watches for new directories; returns which trees changed.
        func drain(logger: Logger) -> WatchedChange {
            var change = WatchedChange()
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                guard count > 0 else { break }
                var events: [(wd: Int32, mask: UInt32, name: String)] = []
                buffer.withUnsafeBytes { raw in
                    var offset = 0
                    while offset + 16 <= count {
                        let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                        let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                        let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                        let nameBytes = raw[(offset + 16)..<min(count, offset + 16 + length)].prefix { $0 != 0 }
                        events.append((wd, mask, String(decoding: nameBytes, as: UTF8.self)))
                        offset += 16 + length
                    }
                }
                for event in events {
                    if event.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                        change.manifests = true
                        change.config = true
                        continue
                    }
                    guard let watch = watches[event.wd] else { continue }
                    if event.mask & UInt32(IN_IGNORED) != 0 {
                        watches[event.wd] = nil
                    }
                    if watch.isConfig { change.config = true } else { change.manifests = true }
                    let isDirectory = event.mask & UInt32(IN_ISDIR) != 0
                    let appeared = event.mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0
                    if isDirectory, appeared, !event.name.isEmpty {
                        watchTree(watch.path + "/" + event.name, isConfig: watch.isConfig, logger: logger)
                    }
                }
            }
            return change
        }
    }
#endif
