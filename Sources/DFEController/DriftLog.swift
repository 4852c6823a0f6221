import DFECore

/// Remembers the reported (unrepaired) drift of each instance, so the controller reports it once per change.
struct DriftLog: Sendable {
    /// The drift last reported per instance (absent: none).
    private(set) var reported: [String: [DriftReport]] = [:]

    /// What changed for the instances this plan covers: drift that is new or different (to report), and
    /// instances whose drift is gone. Instances the plan does not cover keep what was last reported.
    mutating func update(with plan: Plan) -> (changed: [(String, [DriftReport])], cleared: [String]) {
        var changed: [(String, [DriftReport])] = []
        var cleared: [String] = []
        for instance in plan.instances {
            let now = instance.drift
            let before = reported[instance.name] ?? []
            guard now != before else { continue }
            if now.isEmpty {
                reported[instance.name] = nil
                cleared.append(instance.name)
            } else {
                reported[instance.name] = now
                changed.append((instance.name, now))
            }
        }
        return (changed, cleared)
    }
}
