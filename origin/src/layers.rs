//! The origin's modules depend one way: each on the layers below it, never on one above, and
//! never in a circle. This test reads `origin/src` and fails on a back edge, a cycle, a module
//! placed in no layer, or axum or `AppState` named below the HTTP layer, so the shape holds as
//! the code grows. A new module is placed in [`LAYERS`] by whoever adds it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top to bottom; a module may use its own layer's and lower layers' modules (without a cycle).
const LAYERS: &[(&str, &[&str])] = &[
    ("wiring", &["startup"]),
    ("the process's edges", &["http", "consume"]),
    ("domain", &["purchase", "preload", "fencing", "products", "orders", "dead_letters", "rooms"]),
    ("infrastructure", &["stock", "broker"]),
    ("shared", &["configuration", "metrics", "error"]),
];

/// Layers below the HTTP layer that may not speak HTTP: no axum, no handler state.
const NO_HTTP_BELOW: usize = 2;

/// Files that are not a module's (the crate root, the binary, this test).
const NOT_MODULES: &[&str] = &["lib.rs", "main.rs", "layers.rs"];

/// The source of every top-level module, test code and comments left out: module → text.
fn module_sources(src: &Path) -> BTreeMap<String, String> {
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read origin/src") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            let first = relative.components().next().expect("a file").as_os_str().to_string_lossy().to_string();
            if NOT_MODULES.contains(&first.as_str()) {
                continue;
            }
            let module = first.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).expect("read a source file");
            sources.entry(module).or_default().push_str(&code_only(&text));
        }
    }
    sources
}

/// The text before the file's test module, without `//` comments.
fn code_only(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
    before_tests.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The top-level modules `code` names: `crate::m` paths and the heads of `use crate::{a, b::c}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Each item at the group's top level starts with a module name.
            let (mut depth, mut at_item_start) = (0usize, true);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_item_start = true,
                    c if c.is_whitespace() => {}
                    _ if at_item_start && depth == 0 => {
                        named.insert(ident(&group[j..]));
                        at_item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            named.insert(ident(rest));
        }
    }
    named
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// The module graph: module → the other modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = module_sources(&src);
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, code)| {
            let uses = named_modules(code).into_iter().filter(|m| m != module && modules.contains(m)).collect();
            (module.clone(), uses)
        })
        .collect()
}

/// A cycle through `start`, if there is one (depth-first, so the first found).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().expect("a path").clone();
        for next in graph.get(&here).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn every_module_is_in_a_layer_and_depends_only_downward_without_cycles() {
    let graph = graph();
    assert!(graph.len() >= 10, "the source was not read: {:?}", graph.keys());
    let mut problems = Vec::new();
    for (module, uses) in &graph {
        let Some(layer) = layer_of(module) else {
            problems.push(format!("module `{module}` is in no layer: place it in LAYERS (origin/src/layers.rs)"));
            continue;
        };
        for used in uses {
            if layer_of(used).is_some_and(|l| l < layer) {
                problems.push(format!(
                    "`{module}` ({}) uses `{used}` ({}), a layer above it",
                    LAYERS[layer].0,
                    LAYERS[layer_of(used).expect("placed")].0
                ));
            }
        }
    }
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            problems.push(format!("a cycle: {}", cycle.join(" → ")));
            break;
        }
    }
    assert!(problems.is_empty(), "the origin's layering is broken:\n{}", problems.join("\n"));
}

#[test]
fn below_the_http_layer_no_module_speaks_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for (module, code) in module_sources(&src) {
        // error.rs is the one bridge until the error contract is typed: it turns errors into answers.
        if layer_of(&module).is_some_and(|l| l >= NO_HTTP_BELOW) && module != "error" {
            for word in ["axum", "AppState"] {
                if code.contains(word) {
                    problems.push(format!("`{module}` names {word}: handlers and their state belong in `http`"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reader_sees_grouped_and_plain_paths() {
    let code = "use crate::{broker::{a, b}, stock::X};\nlet x = crate::orders::f();\nuse crate::metrics;";
    let named: Vec<String> = named_modules(code).into_iter().collect();
    assert_eq!(named, ["broker", "metrics", "orders", "stock"]);
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(cycle_from(&graph, "a"), Some(vec!["a".into(), "b".into(), "a".into()]));
    assert_eq!(cycle_from(&graph, "c"), None);
}
