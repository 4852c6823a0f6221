import DFECore
import DFEReconciler
public import Foundation
import Synchronization

/// A small HTML writer: text is always escaped; markup is only what this file writes.
struct HTMLWriter {
    private(set) var output = ""

    init(capacity: Int = 4096) {
        output.reserveCapacity(capacity)
    }

    /// Appends trusted markup written in this file (never a value).
    mutating func raw(_ markup: String) { output += markup }

    /// Appends a value, escaped for text and attribute contexts.
    mutating func text(_ value: String) { output += Self.escape(value) }

    /// Appends `<tag attr="value"...>text</tag>` with everything escaped.
    mutating func element(_ tag: String, _ attributes: [(String, String)] = [], text value: String) {
        open(tag, attributes)
        text(value)
        output += "</\(tag)>"
    }

    /// Appends an opening tag with escaped attribute values.
    mutating func open(_ tag: String, _ attributes: [(String, String)] = []) {
        output += "<\(tag)"
        for (name, value) in attributes { output += " \(name)=\"\(Self.escape(value))\"" }
        output += ">"
    }

    /// `&`, `<`, `>`, `"` and `'` as entities; control characters shown as visible `\u{...}` escapes.
    static func escape(_ value: String) -> String {
        var result = ""
        result.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028
                    || scalar.value == 0x2029
                {
                    result += "\\u" + String(format: "%04x", scalar.value)
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result
    }

    /// A path segment percent-encoded for a link (instance names are DNS labels, but never trust that).
    static func pathSegment(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))
            ?? ""
    }
}

/// The server-rendered fleet page (`/`) and instance page (`/instances/NAME`).
///
/// Readable without JavaScript; a small inline script filters the table and refreshes the page's data. Phase and
/// health show as words with a colour. The fleet page is rendered once per version of the fleet view.
final class FleetPages: Sendable {
    private let cache = Mutex<(version: Int, body: Data)?>(nil)

    /// Seconds between refreshes of the page's data by its script.
    static let refreshSeconds = 10

    /// The fleet page for `snapshot`, from the cache when the fleet has not changed.
    func fleet(_ snapshot: FleetView.Snapshot) -> Data {
        if let cached = cache.withLock({ $0 }), cached.version == snapshot.version { return cached.body }
        let body = Data(Self.renderFleet(snapshot).utf8)
        cache.withLock { current in
            if current == nil || current!.version < snapshot.version { current = (snapshot.version, body) }
        }
        return body
    }

    /// The page of one instance.
    func instance(_ instance: InstanceStatus, history: [StepRecord]) -> Data {
        Data(Self.renderInstance(instance, history: history).utf8)
    }

    /// The page for an unknown instance.
    func notFound(_ name: String) -> Data {
        var html = HTMLWriter()
        Self.head(&html, title: "unknown instance")
        html.raw("<main><p><a href=\"/\">&larr; fleet</a></p><h1>Unknown instance</h1><p>No instance named <code>")
        html.text(name)
        html.raw("</code> is known to this controller.</p></main></body></html>\n")
        return Data(html.output.utf8)
    }

    // MARK: Rendering

    /// The CSS class of a phase's colour.
    static func tone(phase: String) -> String {
        switch phase {
        case "ready": "good"
        case "failed": "bad"
        case "pending", "provisioning": "busy"
        case "deprovisioning", "orphaned", "drifted": "warn"
        default: "idle"
        }
    }

    /// The CSS class of a health status's colour.
    static func tone(health: String) -> String {
        switch health {
        case "healthy": "good"
        case "unhealthy": "bad"
        default: "idle"
        }
    }

    static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
        header,main{padding:12px 24px}header{background:#1b1f24;color:#fff}header h1{margin:0;font-size:20px}
        header p{margin:4px 0 0;color:#c9d1d9}a{color:#0b5cad}
        .counts{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}.count{background:#fff;border:1px solid #d0d7de;
        border-radius:6px;padding:6px 10px}.count b{font-size:18px;margin-right:4px}
        table{border-collapse:collapse;width:100%;background:#fff}th,td{border-bottom:1px solid #d0d7de;
        padding:6px 8px;text-align:left;vertical-align:top}th{background:#eef1f4}
        .badge{display:inline-block;border-radius:10px;padding:1px 8px;font-weight:600;border:1px solid}
        .good{background:#dafbe1;color:#116329;border-color:#4ac26b}.bad{background:#ffebe9;color:#a40e26;
        border-color:#ff8182}.busy{background:#ddf4ff;color:#0550ae;border-color:#54aeff}.warn{background:#fff8c5;
        color:#7d4e00;border-color:#d4a72c}.idle{background:#f6f8fa;color:#57606a;border-color:#afb8c1}
        .error{color:#a40e26;max-width:40em;word-break:break-word}code{font-size:13px}
        #filter{padding:6px 8px;width:24em;max-width:100%;border:1px solid #afb8c1;border-radius:6px}
        dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}dt{font-weight:600}dd{margin:0}
        """

    static func head(_ html: inout HTMLWriter, title: String) {
        html.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        html.raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>")
        html.text(title)
        html.raw("</title><style>\(style)</style></head><body>")
    }

    static func badge(_ html: inout HTMLWriter, _ word: String, tone: String) {
        html.element("span", [("class", "badge \(tone)")], text: word)
    }

    static func renderFleet(_ snapshot: FleetView.Snapshot) -> String {
        var html = HTMLWriter(capacity: 1024 + snapshot.instances.count * 400)
        head(&html, title: "dfe fleet")
        html.raw("<header><h1>dfe fleet</h1><p>")
        html.text("\(snapshot.instances.count) instances")
        if let at = snapshot.refreshedAt { html.text(" · updated \(ISO8601DateFormatter().string(from: at))") }
        html.raw(
            "</p></header><main><section id=\"summary\" aria-label=\"counts\"><div class=\"counts\" id=\"phases\">")
        var phaseNames = Phase.allCases.map(\.rawValue)
        phaseNames += Set(snapshot.instances.map(\.phase)).subtracting(phaseNames).sorted()
        let phaseCounts = Dictionary(grouping: snapshot.instances, by: \.phase).mapValues(\.count)
        for phase in phaseNames {
            html.open("span", [("class", "count"), ("data-phase", phase)])
            html.element("b", text: "\(phaseCounts[phase] ?? 0)")
            badge(&html, phase, tone: tone(phase: phase))
            html.raw("</span>")
        }
        html.raw("</div><div class=\"counts\" id=\"health\">")
        for status in ControllerMetrics.healthStatuses {
            html.open("span", [("class", "count"), ("data-health", status)])
            html.element("b", text: "\(snapshot.health[status] ?? 0)")
            badge(&html, status, tone: tone(health: status))
            html.raw("</span>")
        }
        html.raw("</div></section>")
        html.raw(
            "<p><label for=\"filter\">Filter </label><input id=\"filter\" type=\"search\" "
                + "placeholder=\"name, owner, phase, error…\" autocomplete=\"off\"> <span id=\"shown\"></span></p>")
        html.raw(
            "<table id=\"instances\"><thead><tr><th>Name</th><th>Owner</th><th>Phase</th><th>Health</th>"
                + "<th>Revision</th><th>Last error</th><th>Next attempt</th></tr></thead><tbody>")
        for instance in snapshot.instances {
            let health = FleetView.healthStatus(of: instance)
            html.open("tr", [("data-name", instance.name), ("data-phase", instance.phase), ("data-health", health)])
            html.raw("<td>")
            html.element("a", [("href", "/instances/" + HTMLWriter.pathSegment(instance.name))], text: instance.name)
            html.raw("</td>")
            html.element("td", text: instance.owner)
            html.raw("<td>")
            badge(&html, instance.phase, tone: tone(phase: instance.phase))
            html.raw("</td><td>")
            badge(&html, health, tone: tone(health: health))
            html.raw("</td>")
            html.element("td", [("class", "revision")], text: instance.revision.map { String($0.prefix(12)) } ?? "")
            html.element("td", [("class", "error")], text: instance.lastError ?? "")
            html.element("td", text: instance.nextAttemptAt ?? "")
            html.raw("</tr>")
        }
        html.raw("</tbody></table>")
        if snapshot.instances.isEmpty { html.raw("<p id=\"empty\">No instances yet.</p>") }
        html.raw("</main><script>\(script)</script></body></html>\n")
        return html.output
    }

    /// Filters rows by the text typed (all words must match) and refreshes counts and rows in place.
    static let script = """
        (function(){
        var input=document.getElementById('filter'),shown=document.getElementById('shown');
        function apply(){var words=input.value.toLowerCase().split(/\\s+/).filter(Boolean),rows=document.querySelectorAll('#instances tbody tr'),n=0;
        rows.forEach(function(r){var t=r.textContent.toLowerCase(),ok=words.every(function(w){return t.indexOf(w)>=0});r.hidden=!ok;if(ok)n++});
        shown.textContent=words.length?n+' of '+rows.length+' shown':'';}
        input.addEventListener('input',apply);
        setInterval(function(){if(document.hidden)return;fetch(location.pathname,{cache:'no-store'}).then(function(r){return r.ok?r.text():null}).then(function(t){
        if(!t)return;var d=new DOMParser().parseFromString(t,'text/html');
        ['summary'].forEach(function(id){var n=d.getElementById(id);if(n)document.getElementById(id).replaceWith(n)});
        var b=d.querySelector('#instances tbody');if(b)document.querySelector('#instances tbody').replaceWith(b);apply();}).catch(function(){})},
        \(refreshSeconds * 1000));
        })();
        """

    static func renderInstance(_ instance: InstanceStatus, history: [StepRecord]) -> String {
        var html = HTMLWriter()
        head(&html, title: "\(instance.name) · dfe")
        html.raw("<header><h1>")
        html.text(instance.name)
        html.raw("</h1><p><a href=\"/\" style=\"color:#c9d1d9\">&larr; fleet</a></p></header><main><dl>")
        func row(_ term: String, _ value: String?) {
            html.element("dt", text: term)
            html.element("dd", text: value ?? "—")
        }
        let health = FleetView.healthStatus(of: instance)
        html.raw("<dt>Phase</dt><dd id=\"phase\">")
        badge(&html, instance.phase, tone: tone(phase: instance.phase))
        html.raw("</dd><dt>Health</dt><dd id=\"health\">")
        badge(&html, health, tone: tone(health: health))
        html.raw("</dd>")
        row("Owner", instance.owner)
        row("Provisioner", instance.provisioner)
        row("Revision", instance.revision)
        row("Attempts", "\(instance.attempts)")
        html.raw("<dt>Last error</dt>")
        html.element("dd", [("class", "error"), ("id", "last-error")], text: instance.lastError ?? "—")
        row("Next attempt", instance.nextAttemptAt)
        row("Protected", instance.protect ? "yes" : "no")
        row(
            "Labels",
            instance.labels.isEmpty
                ? nil
                : instance.labels.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }
                    .joined(separator: ", "))
        html.raw("</dl><h2>Resources</h2><table id=\"resources\"><thead><tr><th>Resource</th><th>Driver</th>")
        html.raw("<th>Where</th></tr></thead><tbody>")
        let resources = instance.resources
        func resource(_ kind: String, _ driver: String?, _ whereabouts: [String?]) {
            html.raw("<tr>")
            html.element("td", text: kind)
            html.element("td", text: driver ?? "—")
            let parts = whereabouts.compactMap { $0 }
            html.element("td", text: parts.isEmpty ? "—" : parts.joined(separator: " · "))
            html.raw("</tr>")
        }
        resource("storage", resources.storage?.driver, [resources.storage?.path])
        let database = resources.database
        resource(
            "database", database?.driver,
            [
                database?.path, database?.name,
                database?.host.map { host in database?.port.map { "\(host):\($0)" } ?? host },
            ])
        resource(
            "instance", resources.instance?.driver, [resources.instance?.endpoint, resources.instance?.metadataPath])
        html.raw("</tbody></table><h2>Recent history</h2>")
        if history.isEmpty {
            html.raw("<p id=\"no-history\">No steps applied since this controller started.</p>")
        } else {
            html.raw("<table id=\"history\"><thead><tr><th>At</th><th>Resource</th><th>Action</th><th>Reason</th>")
            html.raw("<th>Result</th><th>Duration</th></tr></thead><tbody>")
            let formatter = ISO8601DateFormatter()
            for step in history {
                html.raw("<tr>")
                html.element("td", text: formatter.string(from: step.at))
                html.element("td", text: step.resource.rawValue)
                html.element("td", text: step.action.rawValue)
                html.element("td", text: step.reason)
                html.raw("<td>")
                if let error = step.error {
                    badge(&html, "failed", tone: "bad")
                    html.raw(" ")
                    html.element("span", [("class", "error")], text: error)
                } else {
                    badge(&html, "ok", tone: "good")
                }
                html.raw("</td>")
                html.element("td", text: DurationText.format(step.duration))
                html.raw("</tr>")
            }
            html.raw("</tbody></table>")
        }
        html.raw("</main></body></html>\n")
        return html.output
    }
}
