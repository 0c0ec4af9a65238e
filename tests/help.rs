//! Every `--help`: each option of each subcommand is described, a default is shown once,
//! `--person-key-file` is offered exactly where a person key is used, every help page renders,
//! and options of a command are accepted after its subcommand (`query person --data …`).

use clap::CommandFactory;
use std::process::Command;

/// Every command of the `shikaku` tree, as its path of subcommand names.
fn commands(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    out.push((path.clone(), cmd.clone()));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut p = path.clone();
        p.push(sub.get_name().to_owned());
        commands(sub, p, out);
    }
}

fn all() -> Vec<(Vec<String>, clap::Command)> {
    let mut root = shikaku::cli::Cli::command();
    root.build();
    let mut out = Vec::new();
    commands(&root, Vec::new(), &mut out);
    out
}

#[test]
fn every_option_is_described_and_shows_one_default() {
    let mut undescribed = Vec::new();
    let mut two_defaults = Vec::new();
    let mut options = 0;
    for (path, cmd) in all() {
        assert!(
            cmd.get_about().is_some() || path.is_empty(),
            "{path:?} has no description"
        );
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            options += 1;
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if help.trim().is_empty() {
                undescribed.push(format!("{} --{id}", path.join(" ")));
            }
            let shows_default = !arg.get_default_values().is_empty()
                && !arg.is_hide_default_value_set()
                && arg.get_action().takes_values();
            if shows_default && help.contains("default") {
                two_defaults.push(format!("{} --{id}: {help}", path.join(" ")));
            }
        }
    }
    assert!(options > 50, "{options} options");
    assert!(
        undescribed.is_empty(),
        "options without a description: {undescribed:#?}"
    );
    assert!(
        two_defaults.is_empty(),
        "a default said twice: {two_defaults:#?}"
    );
}

#[test]
fn the_person_key_is_offered_where_it_is_used() {
    let with_key: Vec<String> = all()
        .into_iter()
        .filter(|(_, cmd)| cmd.get_arguments().any(|a| a.get_id() == "file"))
        .map(|(path, _)| path.join(" "))
        .collect();
    let expected = [
        "build",
        "query",
        "query card",
        "query person",
        "query kohi",
        "generations rollback",
        "generations gc",
        "verify",
        "serve",
        "demo",
        "redis-export",
        "person-key hash",
        "claims",
    ];
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut got = with_key;
    got.sort();
    assert_eq!(got, want);
}

fn shikaku(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn every_help_page_renders_with_its_options() {
    for (path, cmd) in all() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = shikaku(&args);
        let page = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for arg in cmd.get_arguments().filter_map(|a| a.get_long()) {
            assert!(
                page.contains(&format!("--{arg}")),
                "{args:?} lacks --{arg}:\n{page}"
            );
        }
        assert!(
            !page.contains("SPEC"),
            "{args:?} cites a document not in the repository"
        );
    }
}

#[test]
fn options_of_a_command_are_accepted_after_its_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let missing = missing.to_str().unwrap();
    // Each reaches the command (which finds no data directory), not a usage error (exit 2).
    for args in [
        vec![
            "query",
            "person",
            "--individual-number",
            "123456789018",
            "--data",
            missing,
        ],
        vec![
            "query",
            "card",
            "--insurer-number",
            "06139992",
            "--number",
            "1",
            "--birthdate",
            "S55.1.23",
            "--data",
            missing,
            "--verify",
        ],
        vec!["generations", "list", "--data", missing],
        vec!["generations", "gc", "--keep", "2", "--data", missing],
    ] {
        let out = shikaku(&args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(said.contains("does not exist"), "{args:?}: {said}");
    }
    // An option where it does not act is refused, naming it.
    let out = shikaku(&[
        "auth-line",
        "--institution-code",
        "0110113719",
        "--person-key-file",
        "k",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--person-key-file"));
}
