public import DFECore
import Yams

/// A YAML node reduced to what the schema needs, with its location; aliases already expanded (bounded).
public struct YNode: Sendable {
    /// The node's value.
    public indirect enum Value: Sendable {
        /// A scalar with its raw text; `isNull` for `~`, `null` or nothing; `tag` is the resolved YAML type.
        case scalar(String, tag: ScalarType)
        case mapping([(key: YNode, value: YNode)])
        case sequence([YNode])
    }

    /// The resolved type of a scalar.
    public enum ScalarType: String, Sendable {
        case string, bool, int, float, null, other

        /// The YAML 1.1 core type of a plain scalar, as Yams' default resolver would decide it.
        static func classify(_ text: String) -> ScalarType {
            switch text {
            case "", "~", "null", "Null", "NULL":
                return .null
            case "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On",
                "ON", "off", "Off", "OFF":
                return .bool
            default:
                break
            }
            var digits = Substring(text)
            if digits.first == "-" || digits.first == "+" { digits = digits.dropFirst() }
            guard let first = digits.first, first.isASCII, first.isNumber || first == "." else { return .string }
            if digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "_") }) { return .int }
            if Double(digits.filter { $0 != "_" }) != nil { return .float }
            return .string
        }
    }

    public var value: Value
    public var location: SourceLocation

    /// A short name of the node's kind for error messages.
    public var kindName: String {
        switch value {
        case .scalar(_, let tag): tag == .null ? "null" : tag.rawValue
        case .mapping: "mapping"
        case .sequence: "sequence"
        }
    }
}

/// Parses YAML text into located documents, reporting syntax errors and bounding alias expansion.
enum YAMLDocuments {
    /// The most nodes one document may expand to (aliases count every time they are followed).
    static let nodeBudget = 10_000

    /// Every non-empty document of `text`; on error, the documents before it and a diagnostic.
    static func parse(_ text: String, path: String) -> (documents: [YNode], diagnostics: [Diagnostic]) {
        var documents: [YNode] = []
        let parser: Parser
        do {
            // The basic resolver tags every plain scalar as a string; `ScalarType.classify` types them
            // without the regular expressions of Yams' default resolver (a third of the parse time).
            parser = try Parser(yaml: text, resolver: .basic, encoding: .utf8)
        } catch {
            return ([], [diagnostic(error, path: path)])
        }
        while true {
            let root: Node?
            do {
                root = try parser.nextRoot()
            } catch {
                return (documents, [diagnostic(error, path: path)])
            }
            guard let root else { break }
            var budget = nodeBudget
            var anchors = Set<String>()
            guard let node = convert(root, path: path, budget: &budget, anchors: &anchors) else {
                let names = anchors.sorted().map { "*\($0)" }.joined(separator: ", ")
                let location = location(of: root, path: path)
                return (
                    documents,
                    [
                        Diagnostic(
                            "document expands to more than \(nodeBudget) nodes through aliases (\(names.isEmpty ? "aliases" : names)); remove the aliases",
                            at: location)
                    ]
                )
            }
            if case .scalar(_, .null) = node.value { continue }
            documents.append(node)
        }
        return (documents, [])
    }

    private static func location(of node: Node, path: String) -> SourceLocation {
        SourceLocation(path: path, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
    }

    private static func convert(_ node: Node, path: String, budget: inout Int, anchors: inout Set<String>) -> YNode? {
        budget -= 1
        guard budget >= 0 else { return nil }
        if let anchor = node.anchor { anchors.insert(anchor.rawValue) }
        let here = location(of: node, path: path)
        switch node {
        case .scalar(let scalar):
            let type: YNode.ScalarType
            switch Tag.Name(rawValue: node.tag.description) {
            case _ where scalar.style != .plain: type = .string
            case .str: type = YNode.ScalarType.classify(scalar.string)
            case .null: type = .null
            case .bool: type = .bool
            case .int: type = .int
            case .float: type = .float
            default: type = .other
            }
            return YNode(value: .scalar(scalar.string, tag: type), location: here)
        case .mapping(let mapping):
            var pairs: [(key: YNode, value: YNode)] = []
            for (key, value) in mapping {
                guard let k = convert(key, path: path, budget: &budget, anchors: &anchors),
                    let v = convert(value, path: path, budget: &budget, anchors: &anchors)
                else { return nil }
                pairs.append((k, v))
            }
            return YNode(value: .mapping(pairs), location: here)
        case .sequence(let sequence):
            var items: [YNode] = []
            for item in sequence {
                guard let converted = convert(item, path: path, budget: &budget, anchors: &anchors) else { return nil }
                items.append(converted)
            }
            return YNode(value: .sequence(items), location: here)
        case .alias(let alias):
            anchors.insert(alias.anchor.rawValue)
            return YNode(value: .scalar("", tag: .null), location: here)
        }
    }

    private static func diagnostic(_ error: any Error, path: String) -> Diagnostic {
        guard let yaml = error as? YamlError else {
            return Diagnostic("cannot parse YAML: \(error)", at: SourceLocation(path: path))
        }
        switch yaml {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var message = "invalid YAML: \(problem)"
            if let context { message += " (\(context.text) at line \(context.mark.line))" }
            return Diagnostic(message, at: SourceLocation(path: path, line: mark.line, column: mark.column))
        case .reader(let problem, _, _, _):
            return Diagnostic("invalid YAML: \(problem)", at: SourceLocation(path: path))
        case .duplicatedKeysInMapping(let duplicates, let context):
            return Diagnostic(
                "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in mapping",
                at: SourceLocation(path: path, line: context.mark.line, column: context.mark.column))
        default:
            return Diagnostic("invalid YAML: \(yaml)", at: SourceLocation(path: path))
        }
    }
}

/// Reads one mapping against a schema, collecting every problem instead of stopping at the first.
struct SchemaReader {
    var diagnostics: [Diagnostic] = []

    mutating func error(_ message: String, at location: SourceLocation) {
        diagnostics.append(Diagnostic(message, at: location))
    }

    /// The pairs of a mapping node keyed by string, reporting non-mappings, duplicate and unknown keys.
    mutating func mapping(_ node: YNode, what: String, allowed: Set<String>?) -> [String: YNode]? {
        guard case .mapping(let pairs) = node.value else {
            error("\(what) must be a mapping, found \(node.kindName)", at: node.location)
            return nil
        }
        var result: [String: YNode] = [:]
        for (key, value) in pairs {
            guard case .scalar(let name, let tag) = key.value, tag != .null else {
                error("\(what) has a key that is not a string", at: key.location)
                continue
            }
            if result[name] != nil {
                error("duplicate key '\(name)' in \(what)", at: key.location)
                continue
            }
            if let allowed, !allowed.contains(name) {
                let known = allowed.sorted().joined(separator: ", ")
                error("unknown field '\(name)' in \(what); known fields: \(known)", at: key.location)
                continue
            }
            result[name] = value
        }
        return result
    }

    /// A scalar read as a string (numbers such as `7.4` included); nil and an error for others.
    mutating func string(_ node: YNode, what: String, allowEmpty: Bool = false) -> String? {
        guard case .scalar(let text, let tag) = node.value, tag != .null else {
            error("\(what) must be a string, found \(node.kindName)", at: node.location)
            return nil
        }
        if !allowEmpty, text.isEmpty {
            error("\(what) must not be empty", at: node.location)
            return nil
        }
        _ = tag
        return text
    }

    /// A boolean (`true`/`false`).
    mutating func bool(_ node: YNode, what: String) -> Bool? {
        guard case .scalar(let text, .bool) = node.value else {
            if case .scalar(let text, .string) = node.value, ["true", "false"].contains(text.lowercased()) {
                error(
                    "\(what) must be true or false, found the string '\(text)': drop the quotes (\(what.split(separator: ".").last ?? ""): \(text.lowercased()))",
                    at: node.location)
                return nil
            }
            error("\(what) must be true or false, found \(node.kindName)", at: node.location)
            return nil
        }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        default: return false
        }
    }

    /// A whole number.
    mutating func int(_ node: YNode, what: String) -> Int? {
        guard case .scalar(let text, .int) = node.value, let value = Int(text) else {
            error("\(what) must be a whole number, found \(node.kindName)", at: node.location)
            return nil
        }
        return value
    }

    /// A string from a closed set.
    mutating func choice(_ node: YNode, what: String, from choices: [String]) -> String? {
        guard let text = string(node, what: what) else { return nil }
        guard choices.contains(text) else {
            error("\(what) must be one of \(choices.joined(separator: ", ")), found '\(text)'", at: node.location)
            return nil
        }
        return text
    }

    /// A string → string mapping.
    mutating func stringMap(_ node: YNode, what: String) -> [String: String]? {
        guard let pairs = mapping(node, what: what, allowed: nil) else { return nil }
        var result: [String: String] = [:]
        for (key, value) in pairs {
            if let text = string(value, what: "\(what).\(key)", allowEmpty: true) { result[key] = text }
        }
        return result
    }
}
