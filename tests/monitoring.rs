//! deploy/: the Prometheus alerting rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`), and every metric and label the rules and the Grafana dashboard
//! name is one a running server exports on /metrics (a replica following a fleet adds its own).
//!
//! promtool comes from Debian's `prometheus` package, which `.ci/run` installs. Outside CI
//! without it the promtool checks are skipped with a message; with CI=true they never are.

mod server_support;

use server_support::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// Whether promtool can run here; panics under CI, where it must.
fn have_promtool() -> bool {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "promtool is missing under CI: .ci/run must install Debian's prometheus package"
        );
        eprintln!("skipped: promtool not found (apt-get install -y prometheus)");
    }
    found
}

fn promtool(args: &[&str], dir: &Path) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_check_and_pass_their_unit_tests() {
    if !have_promtool() {
        return;
    }
    let dir = deploy("prometheus");
    promtool(&["check", "rules", "alerts.yml"], &dir);
    promtool(&["test", "rules", "alerts_test.yml"], &dir);
}

/// The metric names and label names of a Prometheus text exposition.
fn exported(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        names.insert(line[..end].to_owned());
        if let Some(inner) = line[end..]
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
        {
            for pair in inner.0.split(',') {
                labels.insert(pair.split('=').next().unwrap().to_owned());
            }
        }
    }
    (names, labels)
}

/// Every `shikaku_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("shikaku_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        found.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    found
}

/// Every label named in a `by (…)` or `without (…)` clause of `text`.
fn grouping_labels(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for clause in ["by (", "without ("] {
        for part in text.split(clause).skip(1) {
            let inner = part.split(')').next().unwrap();
            found.extend(inner.split(',').map(|l| l.trim().to_owned()));
        }
    }
    found
}

fn metrics_text() -> String {
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    let r = http.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    r.body
}

/// What a replica following a fleet adds to `/metrics` (`serve --follow`): the lines its
/// report writes, taken from the report itself rather than a second server with a store.
fn fleet_metrics_text() -> String {
    use shikaku::server::live::FleetReport;
    let mut text = String::new();
    shikaku::fleet::FollowHealth::new("r1").write_metrics(&mut text, "g1");
    text
}

#[test]
fn alerts_and_dashboard_name_only_exported_metrics() {
    let (mut names, mut labels) = exported(&metrics_text());
    let (fleet_names, fleet_labels) = exported(&fleet_metrics_text());
    assert!(
        fleet_names.contains("shikaku_fleet_behind_seconds"),
        "{fleet_names:?}"
    );
    names.extend(fleet_names);
    labels.extend(fleet_labels);
    // Labels Prometheus adds to every series it scrapes.
    labels.extend(["instance".to_owned(), "job".to_owned()]);
    let alerts = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(deploy("grafana/shikaku.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 10, "{} queries", exprs.len());
    for (what, text) in [
        ("alerts.yml", alerts.as_str()),
        ("dashboard", &exprs.join("\n")),
    ] {
        let named = metric_names(text);
        assert!(named.len() >= 5, "{what}: {named:?}");
        let unknown: Vec<_> = named.difference(&names).collect();
        assert!(
            unknown.is_empty(),
            "{what} names metrics /metrics lacks: {unknown:?}"
        );
        let unknown: Vec<_> = grouping_labels(text)
            .into_iter()
            .filter(|l| !labels.contains(l))
            .collect();
        assert!(
            unknown.is_empty(),
            "{what} groups by labels /metrics lacks: {unknown:?}"
        );
    }
    // Each panel is told apart by its id, and says what it shows.
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len());
    assert!(panels
        .iter()
        .all(|p| !p["description"].as_str().unwrap().is_empty()));
}

#[test]
fn the_checks_catch_an_unknown_metric() {
    let (names, _) = exported(
        "# HELP a_b x\nshikaku_queries_total{command=\"card\"} 1\nshikaku_reload_refused 0\n",
    );
    let named = metric_names("rate(shikaku_queries_total[5m]) + shikaku_reload_refusd");
    let unknown: Vec<_> = named.difference(&names).collect();
    assert_eq!(unknown, ["shikaku_reload_refusd"]);
    assert_eq!(
        grouping_labels("sum by (instance, le) (x) + sum without (via) (y)"),
        BTreeSet::from(["instance".into(), "le".into(), "via".into()])
    );
}
