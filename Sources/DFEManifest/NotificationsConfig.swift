import DFECore
import Foundation

extension ConfigLoader {
    /// `notifications:` — a list of `{url, events, secretFile}`, every problem located.
    static func notifications(_ node: YNode, root: URL, reader: inout SchemaReader) -> [NotificationTarget] {
        guard case .sequence(let items) = node.value else {
            reader.error("notifications must be a list of {url, events, secretFile}", at: node.location)
            return []
        }
        var targets: [NotificationTarget] = []
        let known = NotificationEvent.allCases.map(\.rawValue)
        for (index, item) in items.enumerated() {
            let what = "notifications[\(index)]"
            guard let map = reader.mapping(item, what: what, allowed: ["url", "events", "secretFile"]) else { continue }
            var valid = true
            var url: String?
            if let node = map["url"], let text = reader.string(node, what: "\(what).url") {
                let parsed = URL(string: text)
                if let scheme = parsed?.scheme?.lowercased(), ["http", "https"].contains(scheme),
                    parsed?.host?.isEmpty == false
                {
                    url = text
                } else {
                    reader.error("\(what).url must be an http:// or https:// URL, found '\(text)'", at: node.location)
                }
            } else if map["url"] == nil {
                reader.error("\(what) needs a url", at: item.location)
            }
            var events = Set<NotificationEvent>()
            if let node = map["events"] {
                if case .sequence(let names) = node.value, !names.isEmpty {
                    for name in names {
                        if let text = reader.choice(name, what: "\(what).events item", from: known),
                            let event = NotificationEvent(rawValue: text)
                        {
                            events.insert(event)
                        } else {
                            valid = false
                        }
                    }
                } else {
                    reader.error(
                        "\(what).events must be a non-empty list of \(known.joined(separator: ", "))",
                        at: node.location)
                    valid = false
                }
            } else {
                reader.error("\(what) needs events (any of \(known.joined(separator: ", ")))", at: item.location)
                valid = false
            }
            var secretFile: String?
            if let node = map["secretFile"], let text = reader.string(node, what: "\(what).secretFile") {
                secretFile = text.hasPrefix("/") ? text : root.appendingPathComponent(text).path
            } else if map["secretFile"] == nil {
                reader.error("\(what) needs a secretFile (mode 0600) holding the signing secret", at: item.location)
            }
            if valid, let url, let secretFile {
                targets.append(NotificationTarget(url: url, events: events, secretFile: secretFile))
            }
        }
        return targets
    }
}
