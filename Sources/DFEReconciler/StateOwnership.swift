public import DFEState
public import Foundation

/// Refuses a writing run by a user other than the owner of the state.
///
/// A hand-typed run as root in a service user's workspace would otherwise leave root-owned files that the
/// service then cannot read. The owner is the state file's, or before it exists, the nearest existing
/// directory above it.
public enum StateOwnership {
    /// Throws `.otherUser` when this process's effective user does not own the state.
    public static func check(_ state: URL, root: URL) throws(StateError) {
        // A server-side state (postgres://) has no file owner; its roles decide who may write.
        guard state.isFileURL, let owner = owner(of: state) else { return }
        let current = geteuid()
        guard owner != current else { return }
        throw StateError.otherUser(current: userName(current), owner: userName(owner), path: state.path)
    }

    /// The owner of `url`, or of its nearest existing ancestor.
    static func owner(of url: URL) -> uid_t? {
        var candidate = url.standardizedFileURL
        while true {
            var info = stat()
            if lstat(candidate.path, &info) == 0 { return info.st_uid }
            let parent = candidate.deletingLastPathComponent()
            if parent.path == candidate.path { return nil }
            candidate = parent
        }
    }

    /// The user name of a uid, or the number when it has none.
    static func userName(_ uid: uid_t) -> String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return String(uid) }
        return String(cString: name)
    }
}
