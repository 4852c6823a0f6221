import ArgumentParser
import DFECore
import Foundation

/// `dfe schema [manifest|config|settings]`: a JSON Schema (draft 2020-12) for editors.
struct SchemaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema", abstract: "Print a JSON Schema (draft 2020-12) of a manifest or config file.",
        discussion: """
            manifest: an instance manifest; config: config/provisioners.yaml; settings: config/dfe.yaml. Save it \
            and point an editor at it with a first line `# yaml-language-server: $schema=PATH` (the YAML language \
            server of VS Code, Neovim, Helix...). `dfe validate` stays the authority: it also checks names against \
            the config and across files.
            """)

    enum Kind: String, ExpressibleByArgument, CaseIterable, Sendable {
        case manifest, config, settings
    }

    @Argument(help: "Which schema.")
    var kind: Kind = .manifest

    func run() async throws {
        switch kind {
        case .manifest: Terminal.shared.write(jsonData(Self.manifestSchema))
        case .config: Terminal.shared.write(jsonData(Self.configSchema))
        case .settings: Terminal.shared.write(jsonData(Self.settingsSchema))
        }
    }

    static let draft = "https://json-schema.org/draft/2020-12/schema"

    static func string(_ description: String, pattern: String? = nil, values: [String]? = nil) -> [String: Any] {
        var object: [String: Any] = ["type": "string", "description": description]
        if let pattern { object["pattern"] = pattern }
        if let values { object["enum"] = values }
        return object
    }

    static func object(
        _ description: String, properties: [String: Any], required: [String] = [], closed: Bool = true
    ) -> [String: Any] {
        var object: [String: Any] = ["type": "object", "description": description, "properties": properties]
        if !required.isEmpty { object["required"] = required }
        if closed { object["additionalProperties"] = false }
        return object
    }

    static let durationPattern = "^[0-9]+(ms|s|m|h)$"
    static var policy: [String: Any] {
        string("Retain (default): forget but keep the data; Delete: delete it.", values: ["Retain", "Delete"])
    }

    static var manifestSchema: [String: Any] {
        var schema = object(
            "A dfe instance manifest (apiVersion dfe/v1, kind Instance).",
            properties: [
                "apiVersion": ["const": "dfe/v1", "description": "Always dfe/v1."],
                "kind": ["const": "Instance", "description": "Always Instance."],
                "metadata": object(
                    "The instance's name and labels.",
                    properties: [
                        "name": string(
                            "A DNS label, unique across all manifests.",
                            pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"),
                        "labels": [
                            "type": "object", "description": "String labels.",
                            "additionalProperties": ["type": "string"],
                        ],
                    ], required: ["name"]),
                "spec": object(
                    "The desired instance.",
                    properties: [
                        "owner": string("The owner's email; the storage partition derives from it."),
                        "provisioner": string("The host in config/provisioners.yaml (default: its `default`)."),
                        "offerings": [
                            "type": "object",
                            "description":
                                "Offering choices of the host; a missing key takes the offering's suggested value.",
                            "additionalProperties": ["type": ["string", "number"]],
                        ],
                        "state": string(
                            "The platform state.", values: PlatformState.allCases.map(\.rawValue)),
                        "storage": object(
                            "Storage settings.",
                            properties: [
                                "quota": string(
                                    "A size with Ki, Mi, Gi or Ti, e.g. 5Gi.", pattern: "^[1-9][0-9]*(Ki|Mi|Gi|Ti)?$"),
                                "deletionPolicy": policy,
                            ]),
                        "database": object("Database settings.", properties: ["deletionPolicy": policy]),
                        "protect": ["type": "boolean", "description": "true: never delete this instance."],
                        "suspend": ["type": "boolean", "description": "true: leave it exactly as it is."],
                    ], required: ["owner"]),
            ], required: ["apiVersion", "kind", "metadata", "spec"])
        schema["$schema"] = draft
        schema["$id"] = "dfe:manifest"
        schema["title"] = "dfe instance manifest"
        return schema
    }

    static var configSchema: [String: Any] {
        let driver: [String: Any] = [
            "description": "A driver name, or a map with `driver` and its options.",
            "oneOf": [
                ["type": "string"],
                ["type": "object", "required": ["driver"], "properties": ["driver": ["type": "string"]]],
            ],
        ]
        let offering = object(
            "An offering: a choice offered to instances.",
            properties: [
                "name": string("A human name."),
                "suggested": ["type": ["string", "number"], "description": "The default item."],
                "items": [
                    "type": "object", "description": "The choices, each with a description.",
                    "additionalProperties": ["type": "object"],
                ],
            ], required: ["items", "suggested"], closed: false)
        let host = object(
            "A host (provisioner).",
            properties: [
                "provides": object(
                    "Portable type to driver.",
                    properties: ["instance": driver, "storage": driver, "database": driver]),
                "offerings": ["type": "object", "additionalProperties": offering],
                "resource-uri": string("The endpoint through which the controller talks to an instance."),
            ], required: ["provides"], closed: false)
        var schema = object(
            "config/provisioners.yaml: the hosts.",
            properties: [
                "default": string("The host of manifests without spec.provisioner."),
                "hosts": ["type": "object", "additionalProperties": host],
            ], required: ["hosts"])
        schema["$schema"] = draft
        schema["$id"] = "dfe:config"
        schema["title"] = "dfe config/provisioners.yaml"
        return schema
    }

    static var settingsSchema: [String: Any] {
        let duration = string("A duration: 500ms, 2s, 5m, 1h.", pattern: durationPattern)
        var schema = object(
            "config/dfe.yaml: settings of dfe itself.",
            properties: [
                "naming": object(
                    "Naming rules.",
                    properties: ["forbidden": ["type": "array", "items": ["type": "string"]]]),
                "parallelism": ["type": "integer", "minimum": 1, "maximum": 256],
                "prune": ["type": "boolean"],
                "backoff": object(
                    "Retry delays of failed instances.", properties: ["initial": duration, "max": duration]),
                "controller": object(
                    "The controller.",
                    properties: [
                        "interval": duration,
                        "listen": string("HOST:PORT, e.g. 127.0.0.1:9420.", pattern: "^.+:[0-9]{1,5}$"),
                    ]),
                "notifications": [
                    "type": "array", "description": "Webhooks the controller notifies.",
                    "items": object(
                        "A webhook: POSTs signed JSON for the chosen events.",
                        properties: [
                            "url": string("An http:// or https:// URL.", pattern: "^https?://.+"),
                            "events": [
                                "type": "array", "minItems": 1,
                                "items": string(
                                    "An event.", values: NotificationEvent.allCases.map(\.rawValue)),
                            ],
                            "secretFile": string("A file (mode 0600) holding the HMAC-SHA256 signing secret."),
                        ], required: ["url", "events", "secretFile"]),
                ],
            ], closed: false)
        schema["$schema"] = draft
        schema["$id"] = "dfe:settings"
        schema["title"] = "dfe config/dfe.yaml"
        return schema
    }
}
