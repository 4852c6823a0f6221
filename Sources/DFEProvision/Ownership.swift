public import DFECore

/// The record every object a driver creates carries: which instance of which owner, in which state.
///
/// Stored as the `dfe_owner` row of a SQLite database, a `COMMENT ON` a PostgreSQL role and database, an
/// equivalent in MySQL, and a marker file in directories. Encoded as one line of text,
/// `dfe-owner/v1 {"instance":…,"owner":…,"stateID":…}`, so a comment can be read back exactly.
public struct OwnershipRecord: Sendable, Hashable, Codable, CustomStringConvertible {
    public var instance: String
    /// The instance's owner, lowercased (owners compare case-insensitively, like the storage owner hash).
    public var owner: String
    public var stateID: String

    public init(instance: String, owner: String, stateID: String) {
        self.instance = instance
        self.owner = owner.lowercased()
        self.stateID = stateID
    }

    static let tag = "dfe-owner/v1 "

    /// The one-line text form, for comments and marker files.
    public var encoded: String {
        Self.tag + JSONText.encode(["instance": instance, "owner": owner, "stateID": stateID])
    }

    /// Parses `encoded` text; nil when it is not an ownership record.
    public static func decode(_ text: String?) -> OwnershipRecord? {
        guard var text, text.hasPrefix(tag) else { return nil }
        text.removeFirst(tag.count)
        while let last = text.last, last.isNewline { text.removeLast() }
        guard let map = JSONText.decodeStringMap(text), let instance = map["instance"], let owner = map["owner"],
            let stateID = map["stateID"], !instance.isEmpty, !stateID.isEmpty
        else { return nil }
        return OwnershipRecord(instance: instance, owner: owner, stateID: stateID)
    }

    public var description: String { "instance '\(instance)' of owner '\(owner)' in state \(stateID)" }

    /// Whether an object carrying `found` may be used for the resource of `context`, and if not, why.
    ///
    /// Ours only when instance, owner and state id are all the same. `object` names the object in messages.
    public static func verdict(found: OwnershipRecord?, for context: ResourceContext, object: String)
        -> OwnershipVerdict
    {
        guard let found else {
            return .conflict(
                "\(object) exists but carries no dfe ownership record, so it is not this instance's; dfe never adopts, changes or deletes it: move it away (or drop it) by hand if it is not needed, or pick another instance name, then reconcile"
            )
        }
        guard let mine = context.ownershipRecord else {
            return .conflict(
                "\(object) belongs to \(found), not to this state (which has no id yet); dfe never takes over another state's objects: use that workspace's state, or remove the object by hand, then reconcile"
            )
        }
        if found.stateID != mine.stateID {
            return .conflict(
                "\(object) belongs to \(found), not to this state (\(mine.stateID)); dfe never takes over another workspace's objects: use a different prefix, root or server for this workspace, or remove the object by hand, then reconcile"
            )
        }
        if found.instance != mine.instance {
            return .conflict(
                "\(object) belongs to instance '\(found.instance)', not '\(mine.instance)'; two instances must not share an object: rename one, then reconcile"
            )
        }
        if found.owner != mine.owner {
            // The owner of an instance this state manages changed (and its data was moved by hand): ours,
            // with the record to be rewritten. Never so for a retained resource (not recorded any more).
            if context.recorded != nil { return .restamp }
            return .conflict(
                "\(object) was made for owner '\(found.owner)', not '\(mine.owner)'; retained data is never handed to another owner: restore the owner in the manifest, or move the data away by hand, then reconcile"
            )
        }
        return .ours
    }
}

/// Whether an existing object may be used, adopted or deleted.
public enum OwnershipVerdict: Sendable, Hashable {
    case ours
    /// Ours (recorded in this state), but the record names the instance's former owner: rewrite it.
    case restamp
    /// Not ours; the message says what to do.
    case conflict(String)
}

extension OwnershipVerdict {
    /// The message of a conflict, else nil.
    public var conflictMessage: String? {
        if case .conflict(let message) = self { return message }
        return nil
    }
}
