/// `--selector KEY=VALUE` (repeatable): instances whose labels have every pair.
public struct LabelSelector: Sendable, Hashable, CustomStringConvertible {
    /// Required labels; an empty selector matches everything.
    public var labels: [String: String]

    public init(_ labels: [String: String] = [:]) { self.labels = labels }

    /// Parses `KEY=VALUE` terms; the same key twice with different values is an error (nothing could match).
    public static func parse(_ terms: [String]) throws(SelectionError) -> LabelSelector {
        var labels: [String: String] = [:]
        for term in terms {
            guard let equals = term.firstIndex(of: "="), equals != term.startIndex else {
                throw .malformedSelector(term)
            }
            let key = String(term[..<equals])
            let value = String(term[term.index(after: equals)...])
            if let existing = labels[key], existing != value { throw .contradictorySelector(key) }
            labels[key] = value
        }
        return LabelSelector(labels)
    }

    public var isEmpty: Bool { labels.isEmpty }

    /// Whether `labels` has every required pair.
    public func matches(_ labels: [String: String]) -> Bool {
        self.labels.allSatisfy { labels[$0.key] == $0.value }
    }

    /// `key=value,key=value`, sorted.
    public var description: String {
        labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}

/// Why `--only` or `--selector` cannot be used.
public enum SelectionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `--selector` not of the form `KEY=VALUE`.
    case malformedSelector(String)
    /// The same key with two values.
    case contradictorySelector(String)
    /// `--only` names instances neither in the manifests nor in the state.
    case unknownInstances([String])
    /// The selector (with `--only`, if any) matches no instance.
    case selectorMatchesNothing(LabelSelector)

    public var description: String {
        switch self {
        case .malformedSelector(let term):
            "invalid --selector '\(term)': use KEY=VALUE, e.g. --selector team=acme"
        case .contradictorySelector(let key):
            "--selector gives label '\(key)' two different values: no instance can match"
        case .unknownInstances(let names):
            "--only \(names.joined(separator: ", ")): no such instance in the manifests or the state; `dfe status` lists them"
        case .selectorMatchesNothing(let selector):
            "--selector \(selector) matches no instance in the manifests or the state; `dfe status` shows their labels"
        }
    }
}

/// Which instances a run is limited to.
public enum Selection {
    /// The names `--only` and `--selector` limit a run to, or nil for all.
    ///
    /// A desired instance is matched on its manifest's labels; a recorded one without a manifest (an orphan) on
    /// the labels last applied. Every `--only` name must be known, and a selector must match at least one instance.
    public static func names(
        only: Set<String>?, selector: LabelSelector, desired: [DesiredInstance], recorded: [String: RecordedInstance]
    ) throws(SelectionError) -> Set<String>? {
        var labels: [String: [String: String]] = [:]
        for (name, record) in recorded { labels[name] = record.labels }
        for instance in desired { labels[instance.name] = instance.spec.labels }
        if let only {
            let unknown = only.filter { labels[$0] == nil }.sorted()
            if !unknown.isEmpty { throw .unknownInstances(unknown) }
        }
        guard !selector.isEmpty else { return only }
        var chosen = Set(labels.filter { selector.matches($0.value) }.keys)
        if let only { chosen.formIntersection(only) }
        if chosen.isEmpty { throw .selectorMatchesNothing(selector) }
        return chosen
    }
}

/// A prune refused before anything is done.
public enum PruneRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// No manifest is left and the run would delete every recorded instance.
    case everyInstance(count: Int)
    /// More instances would be pruned than `maxPrune` allows.
    case overLimit(count: Int, limit: Int)

    public var description: String {
        switch self {
        case .everyInstance(let count):
            "refusing to prune: no manifest is left, so this would delete all \(count) recorded instance\(count == 1 ? "" : "s"); check that --manifests (or the checkout) is the right one, or run again with --prune-all if every instance is really to go"
        case .overLimit(let count, let limit):
            "refusing to prune: this would prune \(count) instances, more than maxPrune: \(limit) in config/dfe.yaml; prune fewer at a time with --only NAME or --selector KEY=VALUE, raise maxPrune, or run again with --prune-all"
        }
    }
}

/// The safety checks on a plan's prunes.
public enum PruneGuard {
    /// Refuses a plan that prunes every recorded instance while no manifest is left, or more than `maxPrune`;
    /// `pruneAll` (`--prune-all`) lifts both.
    public static func check(_ plan: Plan, manifests: Int, maxPrune: Int?, pruneAll: Bool) -> PruneRefusal? {
        guard !pruneAll else { return nil }
        let pruned = plan.instances.filter { $0.disposition == .prune }.count
        guard pruned > 0 else { return nil }
        if manifests == 0 { return .everyInstance(count: pruned) }
        if let maxPrune, pruned > maxPrune { return .overLimit(count: pruned, limit: maxPrune) }
        return nil
    }
}
