public import Foundation

/// Reading manifest and config files safely and naming them relative to the workspace.
public enum WorkspaceFiles {
    /// Largest file accepted (1 MiB).
    public static let maxFileSize = 1 << 20

    /// `url` relative to `root` when it lies below it, else absolute.
    public static func relativePath(_ url: URL, to root: URL) -> String {
        let path = url.standardizedFileURL.path
        let base = root.standardizedFileURL.path
        let prefix = base.hasSuffix("/") ? base : base + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    /// Outcome of reading one text file.
    enum ReadResult {
        case text(String)
        case missing
        case tooLarge(Int)
        case unreadable(String)
    }

    /// Reads a UTF-8 file, refusing files over the size limit before reading them.
    static func read(_ url: URL) -> ReadResult {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return .missing }
        if Int(info.st_size) > maxFileSize { return .tooLarge(Int(info.st_size)) }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            return .unreadable("cannot read file")
        }
        if data.count > maxFileSize { return .tooLarge(data.count) }
        guard let text = String(data: data, encoding: .utf8) else { return .unreadable("file is not UTF-8") }
        return .text(text)
    }

    /// Every `*.yaml`/`*.yml` file below `directory`, recursively (following symbolic links, once each),
    /// sorted by path; plus the directories that could not be read.
    ///
    /// An unreadable directory must abort the run: its manifests would otherwise look deleted, and a prune
    /// would delete their instances.
    package static func yamlFiles(below directory: URL) -> (files: [URL], unreadable: [(URL, String)]) {
        var files: [String] = []
        var unreadable: [(URL, String)] = []
        var visited = Set<String>()
        var pending = [directory.standardizedFileURL.path]
        while let current = pending.popLast() {
            let real = URL(fileURLWithPath: current).resolvingSymlinksInPath().path
            guard visited.insert(real).inserted else { continue }
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: current)
            } catch {
                let reason = String(cString: strerror(access(current, R_OK | X_OK) == 0 ? EIO : errno))
                unreadable.append((URL(fileURLWithPath: current), reason))
                continue
            }
            for name in names where !name.hasPrefix(".") {
                let path = current + "/" + name
                var info = stat()
                // stat() follows symbolic links: linked files and directories count like their targets.
                guard stat(path, &info) == 0 else {
                    var link = stat()
                    if lstat(path, &link) == 0, link.st_mode & S_IFMT == S_IFLNK,
                        name.hasSuffix(".yaml") || name.hasSuffix(".yml")
                    {
                        files.append(path)  // a dangling link is read and reported, not skipped
                    }
                    continue
                }
                switch info.st_mode & S_IFMT {
                case S_IFDIR: pending.append(path)
                case S_IFREG where name.hasSuffix(".yaml") || name.hasSuffix(".yml"): files.append(path)
                default: break
                }
            }
        }
        return (files.sorted().map { URL(fileURLWithPath: $0) }, unreadable)
    }
}
