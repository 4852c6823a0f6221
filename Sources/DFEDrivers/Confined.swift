import DFEProvision
import Foundation

/// File operations confined below a driver root: every component below the root is opened relative to its
/// parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, entries are inspected with `fstatat(AT_SYMLINK_NOFOLLOW)`
/// and removed with `unlinkat`, so a symbolic link swapped in at any level is never followed.
enum Confined {
    /// A failure while confined, with errno's text.
    static func failure(_ what: String, _ path: String, errno code: Int32 = errno) -> DriverError {
        let reason = String(cString: strerror(code))
        let errorClass: DriverErrorClass =
            switch code {
            case EACCES, EPERM, EROFS: .terminal(.permission)
            case ELOOP, ENOTDIR: .terminal(.conflict)
            default: .retryable
            }
        let hint =
            code == ELOOP || code == ENOTDIR ? " (a symbolic link or file is in the way; dfe never follows it)" : ""
        return DriverError("cannot \(what) \(path): \(reason)\(hint)", class: errorClass)
    }

    /// Opens `root` (followed: it is the configured root), then each of `components` below it without following
    /// symbolic links; returns the last descriptor, or nil when a component is absent.
    static func openDirectory(root: String, components: [String]) throws(DriverError) -> Int32? {
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw failure("open", root)
        }
        var path = root
        for component in components {
            guard isPlainName(component) else {
                close(fd)
                throw DriverError(
                    "refusing path component '\(component)' below \(root)", class: .terminal(.configuration))
            }
            path += "/" + component
            let next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let code = errno
            close(fd)
            if next < 0 {
                if code == ENOENT { return nil }
                throw failure("open directory", path, errno: code)
            }
            fd = next
        }
        return fd
    }

    /// Whether a name is one path component (not empty, `.`, `..`, and without `/`).
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }

    /// What an entry of a directory is, not following a symbolic link.
    static func kind(_ dirfd: Int32, _ name: String) -> FileSystem.Entry {
        var info = stat()
        guard fstatat(dirfd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return .absent }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .file
        default: return .other
        }
    }

    /// Reads a small regular file of a directory (not following a link); nil when absent or not a regular file.
    static func readFile(_ dirfd: Int32, _ name: String, limit: Int = 65536) -> String? {
        let fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        var buffer = [UInt8](repeating: 0, count: limit)
        let count = read(fd, &buffer, limit)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// Removes `name` in `dirfd` and everything below it, never following a symbolic link (a link is removed
    /// itself); absent is success. `path` is for messages.
    static func removeTree(_ parent: Int32, _ name: String, path: String) throws(DriverError) {
        switch kind(parent, name) {
        case .absent:
            return
        case .file, .other:
            if unlinkat(parent, name, 0) != 0, errno != ENOENT { throw failure("remove", path) }
            return
        case .directory:
            break
        }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw failure("open directory", path)
        }
        // fdopendir takes over the descriptor; closedir closes it.
        guard let directory = fdopendir(fd) else {
            let code = errno
            close(fd)
            throw failure("read directory", path, errno: code)
        }
        var names: [String] = []
        while let entry = readdir(directory) {
            let child = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if child != ".", child != ".." { names.append(child) }
        }
        let childFD = dirfd(directory)
        defer { closedir(directory) }
        for child in names { try removeTree(childFD, child, path: path + "/" + child) }
        if unlinkat(parent, name, AT_REMOVEDIR) != 0, errno != ENOENT { throw failure("remove directory", path) }
    }

    /// The components of `path` below `root`, or nil when it does not lie strictly below it (string check only:
    /// the components are then opened without following links).
    static func components(of path: String, below root: String) -> [String]? {
        let base = root.hasSuffix("/") ? root : root + "/"
        guard path.hasPrefix(base) else { return nil }
        let parts = path.dropFirst(base.count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, parts.allSatisfy(isPlainName) else { return nil }
        return parts
    }

    /// Whether a directory has no entries.
    static func isEmptyDirectory(_ parent: Int32, _ name: String) -> Bool {
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0, let directory = fdopendir(fd) else {
            if fd >= 0 { close(fd) }
            return false
        }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let child = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            // Our own marker's temporary file (a write killed midway) does not count.
            if child != ".", child != "..", child != "." + OwnerMarker.fileName + ".dfe-tmp" { return false }
        }
        return true
    }
}

/// The ownership marker `.dfe-owner` that dfe writes into every directory it creates for an instance.
enum OwnerMarker {
    static let fileName = ".dfe-owner"

    /// Whether a directory may be used (or deleted) for `context`.
    enum Verdict: Equatable {
        case absent
        case ours
        /// No marker, but made by this state (recorded) or empty: write the marker.
        case oursWithoutMarker
        case conflict(String)
    }

    /// Judges the directory `path` (`components` below `root`), opening nothing through a symbolic link.
    static func verdict(root: String, components: [String], path: String, context: ResourceContext) -> Verdict {
        guard let name = components.last else { return .conflict("\(path) is the driver root") }
        let parent: Int32?
        do {
            parent = try Confined.openDirectory(root: root, components: Array(components.dropLast()))
        } catch {
            return .conflict("\(error.message)")
        }
        guard let parent else { return .absent }
        defer { close(parent) }
        switch Confined.kind(parent, name) {
        case .absent: return .absent
        case .file, .other:
            return .conflict(
                "\(path) is not a directory (a file or symbolic link is in the way); dfe never follows or replaces it: move it away by hand, then reconcile"
            )
        case .directory: break
        }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return .conflict("\(Confined.failure("open directory", path).message)") }
        defer { close(fd) }
        if let text = Confined.readFile(fd, fileName) {
            switch OwnershipRecord.verdict(found: OwnershipRecord.decode(text), for: context, object: path) {
            case .ours: return .ours
            case .restamp: return .oursWithoutMarker
            case .conflict(let message): return .conflict(message)
            }
        }
        if context.recorded != nil || Confined.isEmptyDirectory(parent, name) { return .oursWithoutMarker }
        return .conflict(
            "\(path) exists but carries no dfe ownership marker (\(fileName)), so it is not this instance's; dfe never adopts, changes or deletes it: move it away by hand if it is not needed, then reconcile"
        )
    }

    /// Writes the marker of `context` into the directory `path`.
    static func write(_ path: String, _ context: ResourceContext) throws {
        guard let record = context.ownershipRecord else {
            throw DriverError("no state id: cannot record who owns \(path)", class: .terminal(.configuration))
        }
        try FileSystem.writeAtomically(Data((record.encoded + "\n").utf8), to: path + "/" + fileName, mode: 0o640)
    }
}
