//! The documentation is the contract users read: it names every configuration key the
//! schema has, every flag the CLI takes and every route the API serves; its links resolve;
//! and nothing in the repository points outside it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .output()
        .expect("switchboard runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every property name in a JSON Schema, at any depth.
fn properties(schema: &serde_json::Value, into: &mut BTreeSet<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                into.extend(props.keys().cloned());
            }
            for value in map.values() {
                properties(value, into);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| properties(v, into)),
        _ => {}
    }
}

#[test]
fn the_configuration_reference_names_every_key_of_the_schema() {
    let doc = read("docs/configuration.md");
    let schema: serde_json::Value = serde_json::from_str(&cli(&["schema"])).unwrap();
    let mut keys = BTreeSet::new();
    properties(&schema, &mut keys);
    assert!(keys.len() > 40, "{keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not name {missing:?}"
    );
}

#[test]
fn the_cli_reference_names_every_command_and_flag() {
    let doc = read("docs/cli.md");
    let help = cli(&["--help"]);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    let mut missing = Vec::new();
    for command in commands {
        if !doc.contains(&format!("switchboard {command}")) {
            missing.push(format!("switchboard {command}"));
        }
        for line in cli(&[command, "--help"]).lines() {
            let flag = line
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .map(|w| {
                    w.trim_end_matches([',', ')', '.'])
                        .split('=')
                        .next()
                        .unwrap()
                        .to_string()
                });
            if let Some(flag) = flag
                && line.trim_start().starts_with('-')
                && !["--help", "--version"].contains(&flag.as_str())
                && !doc.contains(&flag)
            {
                missing.push(format!("{command} {flag}"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/cli.md does not name {missing:?}");
}

#[test]
fn the_api_reference_names_every_route() {
    let doc = read("docs/http-api.md");
    let openapi: serde_json::Value = serde_json::from_str(&read("docs/openapi.json")).unwrap();
    let missing: Vec<&String> = openapi["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|path| !doc.contains(path.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/http-api.md does not name {missing:?}"
    );
}

/// The repository's own text files, as git lists them.
fn tracked() -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files"])
        .current_dir(root())
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| root().join(l))
            .filter(|p| {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                [
                    "rs", "md", "yaml", "yml", "toml", "json", "html", "js", "css", "sh", "txt",
                ]
                .contains(&ext)
                    || p.ends_with(".ci/run")
            })
            .collect(),
        // Not a git checkout (a source tarball): the files under the usual folders.
        _ => Vec::new(),
    }
}

#[test]
fn nothing_in_the_repository_points_outside_it() {
    // Spelled in pieces, so that this file does not find itself.
    let outside = [
        format!("..{}shared", '/'),
        format!("SPEC{}md", '.'),
        format!("seeds{}", '/'),
        format!("Appendix {}", 'A'),
        '\u{a7}'.to_string(),
    ];
    let mut found = Vec::new();
    for path in tracked() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            if let Some(word) = outside.iter().find(|w| line.contains(w.as_str())) {
                found.push(format!(
                    "{}:{}: {word}",
                    path.strip_prefix(root()).unwrap().display(),
                    n + 1
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references outside the repository:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_link_in_the_documentation_resolves() {
    let mut pages: Vec<PathBuf> = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    for dir in ["docs", "examples"] {
        for entry in walk(&root().join(dir)) {
            if entry.extension().is_some_and(|e| e == "md") {
                pages.push(entry);
            }
        }
    }
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut broken = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for capture in link.captures_iter(&text) {
            let target = &capture[1];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            if !page.parent().unwrap().join(file).exists() {
                broken.push(format!(
                    "{}: {target}",
                    page.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}
