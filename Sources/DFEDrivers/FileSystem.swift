import DFEProvision
import Foundation

/// Small POSIX helpers shared by the file-based drivers.
enum FileSystem {
    /// What is at a path.
    enum Entry: Equatable {
        case absent
        case directory
        case file
        case other
    }

    static func entry(_ path: String) -> Entry {
        var info = stat()
        guard lstat(path, &info) == 0 else { return .absent }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .file
        default: return .other
        }
    }

    /// The permission bits of a path, if it exists.
    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    /// Creates a directory and its parents with `mode`, refusing to replace anything that is not a directory.
    static func makeDirectory(_ path: String, mode: mode_t) throws {
        switch entry(path) {
        case .directory:
            if self.mode(path) != mode { chmod(path, mode) }
            return
        case .file, .other:
            throw DriverError(
                "cannot create directory \(path): a file is in the way; move or remove it", retryable: true)
        case .absent:
            let parent = (path as NSString).deletingLastPathComponent
            if parent != path, !parent.isEmpty, entry(parent) != .directory { try makeDirectory(parent, mode: mode) }
            if mkdir(path, mode) != 0, errno != EEXIST {
                throw DriverError("cannot create directory \(path): \(String(cString: strerror(errno)))")
            }
            chmod(path, mode)
        }
    }

    /// Writes `data` to `path` atomically (temp file + fsync + rename) with `mode`.
    static func writeAtomically(_ data: Data, to path: String, mode: mode_t) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temp = temporaryPath(for: path)
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw DriverError("cannot write \(temp): \(String(cString: strerror(errno)))") }
        var ok = true
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 {
                    ok = false
                    return
                }
                offset += written
            }
        }
        fchmod(fd, mode)
        if fsync(fd) != 0 { ok = false }
        close(fd)
        guard ok else {
            unlink(temp)
            throw DriverError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        guard rename(temp, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temp)
            throw DriverError("cannot replace \(path): \(message)")
        }
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirfd >= 0 {
            fsync(dirfd)
            close(dirfd)
        }
    }

    /// The deterministic temporary name used for atomic writes beside `path` (so a re-run cleans it up).
    static func temporaryPath(for path: String) -> String {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        return directory + "/." + name + ".dfe-tmp"
    }

    /// Removes a directory tree; absent is success.
    static func removeTree(_ path: String) throws {
        guard entry(path) != .absent else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            throw DriverError("cannot remove \(path): \(error.localizedDescription)")
        }
    }

    /// Whether `path` lies strictly below `root` (both standardized), for delete safety.
    static func isBelow(_ path: String, root: String) -> Bool {
        let standard = URL(fileURLWithPath: path).standardizedFileURL.path
        let base = URL(fileURLWithPath: root).standardizedFileURL.path
        return standard.hasPrefix(base.hasSuffix("/") ? base : base + "/") && !standard.contains("/../")
    }

    /// Random bytes from the system's cryptographic generator, hex encoded.
    static func randomHex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        var out = ""
        for _ in 0..<count {
            let byte = UInt8.random(in: 0...255, using: &generator)
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return out
    }
}
