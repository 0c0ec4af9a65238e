//! The architecture invariants a reading of the source can check; ARCHITECTURE.md names the
//! test of each on its line. The source is read as text: comments and test modules are left
//! out, since only the code of the library itself is bound by the rooms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The `.rs` files under `src/<dir>` (all of `src/` for ""), with their text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut out = Vec::new();
    walk(&root, &mut out);
    assert!(!out.is_empty(), "no sources under {}", root.display());
    out
}

/// The path below `src/`, with `/` separators.
fn rel(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    path.strip_prefix(&src)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// The library code of a file: nothing of a `tests.rs`, nothing from an inline test module
/// on (the project keeps them last), and no `//` comments.
fn code(path: &Path, text: &str) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let mut out = String::new();
    let mut test_attr = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if test_attr && trimmed.contains("mod ") && trimmed.ends_with('{') {
            break;
        }
        test_attr = trimmed == "#[cfg(test)]";
        let line = line.find("//").map_or(line, |at| &line[..at]);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The top-level modules a piece of code names through `crate::` (`crate::a::…` and
/// `crate::{a, b::…}`).
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The top-level module a file belongs to (`index` for `src/index/steps.rs`).
fn module_of(path: &Path) -> String {
    let rel = rel(path);
    let first = rel.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_owned()
}

fn offenders(dir: &str, bad: impl Fn(&str) -> bool) -> Vec<String> {
    sources(dir)
        .into_iter()
        .filter(|(p, t)| bad(&code(p, t)))
        .map(|(p, _)| rel(&p))
        .collect()
}

#[test]
fn index_imports_nothing_from_query() {
    let bad = offenders("index", |c| crate_modules(c).contains("query"));
    assert!(bad.is_empty(), "index files naming query: {bad:?}");
}

#[test]
fn format_does_no_file_io() {
    let bad = offenders("format", |c| {
        c.contains("std::fs") || c.contains("File::") || c.contains("OpenOptions")
    });
    assert!(bad.is_empty(), "format files doing file I/O: {bad:?}");
}

#[test]
fn the_server_never_writes_index_files_and_the_build_never_talks_to_it() {
    let bad = offenders("server", |c| {
        let m = crate_modules(c);
        m.contains("nightly") || c.contains("format::writer")
    });
    assert!(bad.is_empty(), "server files naming the build: {bad:?}");
    let bad = offenders("nightly", |c| crate_modules(c).contains("server"));
    assert!(bad.is_empty(), "build files naming the server: {bad:?}");
}

/// The order of the lookup steps is the staged lookup's alone (`src/index/staged.rs`): no
/// other file of the library takes a step, so a new kind of record or a rule of the layers
/// is added in one place and every path (RESP, HTTP, batch, claims, `query`) sees it.
#[test]
fn only_the_staged_lookup_takes_the_lookup_steps() {
    const STEPS: [&str; 13] = [
        ".card_probe(",
        ".prefetch_probe(",
        ".probed_records(",
        ".lost_person(",
        ".person_entry(",
        ".prefetch_person_bucket(",
        ".prefetch_person_entry(",
        ".prefetch_person_refs(",
        ".prefetch_person_records(",
        ".prefetch_person_text(",
        ".prefetch_search_entry(",
        ".prefetch_search_recipient(",
        ".narrow_search(",
    ];
    let bad: Vec<String> = sources("")
        .into_iter()
        .filter(|(p, _)| rel(p) != "index/staged.rs")
        .filter_map(|(p, t)| {
            let c = code(&p, &t);
            let taken: Vec<_> = STEPS.iter().filter(|s| c.contains(*s)).collect();
            (!taken.is_empty()).then(|| format!("{}: {taken:?}", rel(&p)))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "lookup steps taken outside the staged lookup: {bad:?}"
    );
    let staged =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/index/staged.rs"))
            .unwrap();
    let missing: Vec<_> = STEPS.iter().filter(|s| !staged.contains(*s)).collect();
    assert!(
        missing.is_empty(),
        "steps the staged lookup does not take: {missing:?}"
    );
}

#[test]
fn load_does_not_import_server() {
    let bad = offenders("load", |c| crate_modules(c).contains("server"));
    assert!(bad.is_empty(), "load files naming server: {bad:?}");
}

/// The modules' `crate::` imports form no circle (a module may name only modules that do
/// not, through any chain, name it back).
#[test]
fn no_import_circles_between_modules() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in sources("") {
        let from = module_of(&path);
        let names = crate_modules(&code(&path, &text));
        let edges = graph.entry(from.clone()).or_default();
        edges.extend(names.into_iter().filter(|m| *m != from));
    }
    // Depth-first search for a back edge, reporting the circle found.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut circle = path[at..].to_vec();
            circle.push(m.to_owned());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        let circle = visit(m, &graph, &mut Vec::new(), &mut done);
        assert!(
            circle.is_none(),
            "import circle: {}",
            circle.unwrap().join(" -> ")
        );
    }
}

/// The files ARCHITECTURE.md allows `unsafe` in, and nowhere else; each site is allowed by
/// name (`#[allow(unsafe_code)]`) and explained (`// SAFETY:` just above it); the crate root
/// denies it everywhere else.
#[test]
fn unsafe_only_where_allowed() {
    const ALLOWED: [&str; 4] = [
        "allocator.rs",
        "cli/mod.rs",
        "index/mmap.rs",
        "index/prefetch.rs",
    ];
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(
        lib.lines().any(|l| l.trim() == "#![deny(unsafe_code)]"),
        "src/lib.rs must deny unsafe_code"
    );
    let is_unsafe = |line: &str| {
        line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == "unsafe")
    };
    let mut seen = BTreeSet::new();
    for (path, text) in sources("") {
        let name = rel(&path);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.find("//").map_or(*line, |at| &line[..at]);
            if !is_unsafe(code) {
                continue;
            }
            assert!(
                ALLOWED.contains(&name.as_str()),
                "unsafe in {name}:{}, which ARCHITECTURE.md does not allow",
                i + 1
            );
            let above = &lines[i.saturating_sub(8)..i];
            assert!(
                above
                    .iter()
                    .any(|l| l.trim_start().starts_with("// SAFETY:")),
                "{name}:{}: unsafe without a // SAFETY: comment above it",
                i + 1
            );
            assert!(
                text.contains("#[allow(unsafe_code)]"),
                "{name}: unsafe without #[allow(unsafe_code)]"
            );
            seen.insert(name.clone());
        }
    }
    // An entry of the list with no unsafe left in it is stale: remove it here and in
    // ARCHITECTURE.md.
    let unused: Vec<_> = ALLOWED.iter().filter(|a| !seen.contains(**a)).collect();
    assert!(unused.is_empty(), "allowed but without unsafe: {unused:?}");
}

/// A file doing several jobs reads better as several files (tests excepted).
#[test]
fn files_stay_under_800_lines() {
    let long: Vec<_> = sources("")
        .into_iter()
        .filter(|(p, _)| p.file_name().is_some_and(|n| n != "tests.rs"))
        .filter(|(_, t)| t.lines().count() > 800)
        .map(|(p, t)| format!("{} ({} lines)", rel(&p), t.lines().count()))
        .collect();
    assert!(long.is_empty(), "files over 800 lines: {long:?}");
}

/// A served generation was deep-checked by this host or signed by a trusted key after the
/// builder's deep check: the checksums-only pass (`verify_checksums`) runs only where a
/// trusted signature was found, in `signing::verify_generation`; every other verification
/// for serving is the deep one.
#[test]
fn checksums_only_verification_follows_a_trusted_signature() {
    let callers: Vec<String> = sources("")
        .into_iter()
        .filter(|(p, _)| !rel(p).starts_with("index/"))
        .filter(|(p, t)| code(p, t).contains("verify_checksums("))
        .map(|(p, _)| rel(&p))
        .collect();
    assert_eq!(callers, vec!["signing/trust.rs".to_owned()]);
    let (p, t) = sources("server")
        .into_iter()
        .find(|(p, _)| rel(p) == "server/live.rs")
        .unwrap();
    assert!(code(&p, &t).contains("crate::signing::verify_generation("));
}

/// Every module under `src/` is named in ARCHITECTURE.md's code map.
#[test]
fn architecture_names_every_module() {
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let unnamed: BTreeSet<_> = sources("")
        .into_iter()
        .map(|(p, _)| module_of(&p))
        .filter(|m| m != "lib" && m != "main" && !map.contains(&format!("src/{m}")))
        .collect();
    assert!(
        unnamed.is_empty(),
        "modules ARCHITECTURE.md does not name: {unnamed:?}"
    );
}
