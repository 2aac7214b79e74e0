//! `docs/api.md` is generated from `proto/vdb/v1/vdb.proto` (its comments,
//! RPCs, messages, fields and enums) and must match it: this test renders
//! the page and compares. After changing the proto, regenerate with
//! `VDB_BLESS=1 cargo test -p vdb-proto --test api_doc`.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on purpose")]

use std::fmt::Write as _;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Default)]
struct Item {
    kind: &'static str, // "message" | "enum"
    name: String,
    doc: Vec<String>,
    /// (label, type, name, number, doc) for fields; (name, number, doc) for
    /// enum values with empty label and type.
    fields: Vec<(String, String, String, String, String)>,
}

struct Rpc {
    name: String,
    request: String,
    response: String,
    doc: String,
}

/// A line-based reader of vdb's proto (one declaration per line, comments
/// on the lines before what they describe); panics on anything else so a
/// new construct cannot slip through undocumented.
fn parse(proto: &str) -> (Vec<String>, Vec<Rpc>, Vec<Item>) {
    let mut header = Vec::new();
    let mut rpcs = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    let mut current: Option<Item> = None;
    // The oneof being read inside the current message.
    let mut oneof: Option<String> = None;
    let mut in_service = false;
    let mut seen_syntax = false;
    for (n, raw) in proto.lines().enumerate() {
        let line = raw.trim();
        let at = || format!("vdb.proto line {}: {raw:?}", n + 1);
        if let Some(c) = line.strip_prefix("//") {
            comment.push(c.strip_prefix(' ').unwrap_or(c).to_string());
            continue;
        }
        if line.is_empty() {
            if !seen_syntax && !comment.is_empty() {
                header.append(&mut comment);
                header.push(String::new());
            }
            comment.clear();
            continue;
        }
        if line.starts_with("syntax") {
            header.append(&mut comment);
            seen_syntax = true;
            continue;
        }
        if line.starts_with("package") {
            comment.clear();
            continue;
        }
        if line.starts_with("service ") {
            in_service = true;
            comment.clear();
            continue;
        }
        if let Some(rest) = line.strip_prefix("rpc ") {
            assert!(in_service, "{}", at());
            let (name, rest) = rest.split_once('(').expect("rpc name");
            let (request, rest) = rest.split_once(')').expect("rpc request");
            let rest = rest.trim().strip_prefix("returns").expect("returns").trim();
            let response = rest
                .trim_start_matches('(')
                .split(')')
                .next()
                .expect("rpc response");
            assert!(!comment.is_empty(), "undocumented rpc: {}", at());
            rpcs.push(Rpc {
                name: name.trim().to_string(),
                request: request.trim().to_string(),
                response: response.trim().to_string(),
                doc: comment.join(" "),
            });
            comment.clear();
            continue;
        }
        for kind in ["message", "enum"] {
            if let Some(rest) = line.strip_prefix(kind).and_then(|r| r.strip_prefix(' ')) {
                assert!(current.is_none(), "nested declaration: {}", at());
                assert!(!comment.is_empty(), "undocumented {kind}: {}", at());
                let item = Item {
                    kind,
                    name: rest
                        .trim_end_matches("{}")
                        .trim_end_matches('{')
                        .trim()
                        .to_string(),
                    doc: std::mem::take(&mut comment),
                    fields: Vec::new(),
                };
                // `message Empty {}` opens and closes on one line.
                if rest.ends_with("{}") {
                    items.push(item);
                } else {
                    current = Some(item);
                }
            }
        }
        if line.starts_with("message ") || line.starts_with("enum ") {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("oneof ")
            .and_then(|r| r.strip_suffix('{'))
        {
            assert!(current.is_some() && oneof.is_none(), "{}", at());
            oneof = Some(name.trim().to_string());
            comment.clear();
            continue;
        }
        if line == "}" && oneof.is_some() {
            oneof = None;
            comment.clear();
            continue;
        }
        if line == "}" {
            if let Some(item) = current.take() {
                items.push(item);
            } else {
                in_service = false;
            }
            comment.clear();
            continue;
        }
        let item = current
            .as_mut()
            .unwrap_or_else(|| panic!("unexpected: {}", at()));
        let decl = line.strip_suffix(';').unwrap_or_else(|| panic!("{}", at()));
        let (lhs, number) = decl.split_once('=').unwrap_or_else(|| panic!("{}", at()));
        // `map<K, V> name`: one type word.
        let lhs = match lhs
            .trim()
            .strip_prefix("map<")
            .and_then(|r| r.split_once('>'))
        {
            Some((kv, name)) => format!("map<{}> {name}", kv.replace(' ', "")),
            None => lhs.to_string(),
        };
        let mut words: Vec<&str> = lhs.split_whitespace().collect();
        let label = oneof.as_ref().map(|o| format!("oneof {o}"));
        if let Some(l) = &label {
            words.insert(0, l);
        }
        let doc = comment.join(" ");
        comment.clear();
        let number = number.trim().to_string();
        match (item.kind, words.as_slice()) {
            ("enum", [name]) => {
                item.fields
                    .push((String::new(), String::new(), name.to_string(), number, doc))
            }
            ("message", [ty, name]) => {
                item.fields
                    .push((String::new(), ty.to_string(), name.to_string(), number, doc))
            }
            ("message", [label, ty, name])
                if matches!(*label, "optional" | "repeated") || label.starts_with("oneof ") =>
            {
                item.fields.push((
                    label.to_string(),
                    ty.to_string(),
                    name.to_string(),
                    number,
                    doc,
                ))
            }
            _ => panic!("unexpected: {}", at()),
        }
    }
    (header, rpcs, items)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn render(proto: &str) -> String {
    let (header, rpcs, items) = parse(proto);
    let mut out = String::new();
    out.push_str("# API reference: `vdb.v1`\n\n");
    out.push_str(
        "Generated from [`proto/vdb/v1/vdb.proto`](../proto/vdb/v1/vdb.proto) by \
         `crates/vdb-proto/tests/api_doc.rs`, which fails when this page and the \
         proto disagree; do not edit by hand — after changing the proto run \
         `VDB_BLESS=1 cargo test -p vdb-proto --test api_doc`. How to run the \
         server, its flags, limits and status codes: [server.md](server.md).\n\n",
    );
    for line in header {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(
        "\n## Service `Vdb`\n\n| RPC | request | response | what it does |\n|---|---|---|---|\n",
    );
    for r in &rpcs {
        let link = |t: &str| {
            let bare = t.trim_start_matches("stream ").trim();
            let stream = if t.starts_with("stream ") {
                "stream of "
            } else {
                ""
            };
            format!("{stream}[`{bare}`](#{})", bare.to_lowercase())
        };
        writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            r.name,
            link(&r.request),
            link(&r.response),
            cell(&r.doc)
        )
        .unwrap();
    }
    let names: Vec<String> = items.iter().map(|i| i.name.clone()).collect();
    let type_link = |t: &str| {
        let value = t
            .strip_prefix("map<")
            .and_then(|r| r.strip_suffix('>'))
            .and_then(|kv| kv.split_once(','));
        if names.iter().any(|n| n == t) {
            format!("[`{t}`](#{})", t.to_lowercase())
        } else if let Some((k, v)) = value.filter(|(_, v)| names.iter().any(|n| n == v)) {
            format!("map of `{k}` to [`{v}`](#{})", v.to_lowercase())
        } else {
            format!("`{t}`")
        }
    };
    for kind in ["message", "enum"] {
        out.push_str(if kind == "message" {
            "\n## Messages\n"
        } else {
            "\n## Enums\n"
        });
        for item in items.iter().filter(|i| i.kind == kind) {
            writeln!(out, "\n### {}\n\n{}\n", item.name, item.doc.join(" ")).unwrap();
            if item.fields.is_empty() {
                out.push_str("No fields.\n");
                continue;
            }
            if kind == "message" {
                out.push_str("| # | field | type | meaning |\n|---|---|---|---|\n");
                for (label, ty, name, number, doc) in &item.fields {
                    let ty = match label.as_str() {
                        "" => type_link(ty),
                        l => format!("{l} {}", type_link(ty)),
                    };
                    writeln!(out, "| {number} | `{name}` | {ty} | {} |", cell(doc)).unwrap();
                }
            } else {
                out.push_str("| value | name | meaning |\n|---|---|---|\n");
                for (_, _, name, number, doc) in &item.fields {
                    writeln!(out, "| {number} | `{name}` | {} |", cell(doc)).unwrap();
                }
            }
        }
    }
    out
}

#[test]
fn docs_api_md_matches_the_proto() {
    let proto = std::fs::read_to_string(root().join("proto/vdb/v1/vdb.proto")).unwrap();
    let page = render(&proto);
    let path = root().join("docs/api.md");
    if std::env::var_os("VDB_BLESS").is_some() {
        std::fs::write(&path, &page).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == page,
        "docs/api.md does not match proto/vdb/v1/vdb.proto; regenerate it with \
         `VDB_BLESS=1 cargo test -p vdb-proto --test api_doc`"
    );
}

#[test]
fn every_rpc_message_and_field_is_on_the_page() {
    let proto = std::fs::read_to_string(root().join("proto/vdb/v1/vdb.proto")).unwrap();
    let (_, rpcs, items) = parse(&proto);
    let page = render(&proto);
    assert!(rpcs.len() >= 14, "{} rpcs", rpcs.len());
    for r in &rpcs {
        assert!(page.contains(&format!("| `{}` |", r.name)), "{}", r.name);
    }
    for i in &items {
        assert!(page.contains(&format!("### {}\n", i.name)), "{}", i.name);
        for (_, _, name, _, doc) in &i.fields {
            assert!(page.contains(&format!("`{name}`")), "{}.{name}", i.name);
            assert!(
                !doc.is_empty(),
                "{}.{name} has no comment in the proto",
                i.name
            );
        }
    }
}
