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

    /// Every `*.yaml`/`*.yml` file below `directory`, recursively, sorted by path.
    static func yamlFiles(below directory: URL) -> [URL] {
        guard
            let enumerator = FileManager.default.enumerator(
                at: directory, includingPropertiesForKeys: [.isRegularFileKey], options: [])
        else { return [] }
        var files: [URL] = []
        for case let url as URL in enumerator {
            let ext = url.pathExtension
            guard ext == "yaml" || ext == "yml" else { continue }
            if url.lastPathComponent.hasPrefix(".") { continue }
            // stat() follows symbolic links: a linked manifest counts like the file it points to.
            var info = stat()
            if stat(url.path, &info) == 0, info.st_mode & S_IFMT == S_IFREG {
                files.append(url.standardizedFileURL)
            } else if lstat(url.path, &info) == 0, info.st_mode & S_IFMT == S_IFLNK {
                // A dangling link is read (and reported as missing) rather than silently skipped.
                files.append(url.standardizedFileURL)
            }
        }
        return files.map { ($0.path, $0) }.sorted { $0.0 < $1.0 }.map(\.1)
    }
}
