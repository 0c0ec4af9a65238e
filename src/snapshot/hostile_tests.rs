//! Files and lines a delivery should never hold: each is refused, named, and counted, and
//! none can stall a build or make it buffer without bound.

use super::*;
use crate::domain::{Date, InsurerNumber};
use std::path::{Path, PathBuf};

const HEADER: &str = "insurer_number,symbol,number,branch,name,name_kana,sex,birthdate,relationship,qualification_date,copay_ratio";
const ROW: &str = "33120015,12,3456,01,山田 太郎,ヤマダ タロウ,1,1980-01-23,1,2015-04-01,30";

fn ctx() -> FileContext {
    FileContext {
        file: "33120015/20260401.csv".into(),
        path: PathBuf::from("SNAPSHOTS/33120015/20260401.csv"),
        insurer: InsurerNumber::parse("33120015").expect("test insurer"),
        snapshot_date: Date::parse("2026-04-01").expect("date"),
    }
}

fn entry() -> InsurerEntry {
    InsurerEntry {
        number: InsurerNumber::parse("33120015").expect("number"),
        name: "test".to_owned(),
        kind: crate::domain::InsurerKind::Kyosai,
        line: 2,
    }
}

/// `(line, rule)` of every row of `text`, and the file's counts.
fn outcomes(text: &[u8]) -> (Vec<(u64, String)>, FileSummary) {
    let mut out = Vec::new();
    let summary = read_snapshot_bytes(text, &ctx(), |o| {
        out.push(match o {
            RowOutcome::Indexed { line, .. } => (line, "ok".to_owned()),
            RowOutcome::Rejected(i) => (i.line, format!("{} {}", i.rule, i.reason)),
        })
    })
    .expect("file accepted");
    assert_eq!(summary.rows_read, summary.indexed + summary.rejected);
    assert_eq!(summary.rows_read, out.len() as u64);
    (out, summary)
}

#[test]
fn an_overlong_line_is_r0_and_the_lines_after_it_keep_their_numbers() {
    let long = format!("{ROW},{}", "x".repeat(read::LINE_BYTES_MAX));
    for newline in ["\n", "\r\n"] {
        let text = [HEADER, ROW, &long, ROW, "", &long, &long, ROW].join(newline);
        let (out, summary) = outcomes(text.as_bytes());
        let lines: Vec<u64> = out.iter().map(|o| o.0).collect();
        assert_eq!(lines, [2, 3, 4, 6, 7, 8], "{newline:?}");
        for (i, (_, what)) in out.iter().enumerate() {
            let rejected = [1, 3, 4].contains(&i);
            assert_eq!(what.starts_with("R0 the line is"), rejected, "{what}");
        }
        assert_eq!((summary.indexed, summary.rejected), (3, 3));
    }
}

#[test]
fn an_overlong_last_line_without_a_newline_is_r0() {
    let text = format!("{HEADER}\n{ROW}\n{}", "y".repeat(read::LINE_BYTES_MAX + 1));
    let (out, _) = outcomes(text.as_bytes());
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].0, 3);
    assert!(out[1]
        .1
        .contains(&format!("is {} bytes", read::LINE_BYTES_MAX + 1)));
}

#[test]
fn a_line_of_exactly_the_bound_is_read() {
    let pad = read::LINE_BYTES_MAX - ROW.len() - 1;
    let header = format!("{HEADER},extra");
    let row = format!("{ROW},{}", "z".repeat(pad));
    assert_eq!(row.len(), read::LINE_BYTES_MAX);
    let (out, _) = outcomes(format!("{header}\n{row}\n").as_bytes());
    assert_eq!(out, [(2, "ok".to_owned())]);
}

#[test]
fn a_quote_left_open_before_an_overlong_line_is_r0_and_nothing_is_lost() {
    let open = ROW.replacen("山田", "\"山田", 1);
    let long = "q".repeat(read::LINE_BYTES_MAX + 10);
    let text = [HEADER, &open, ROW, &long, ROW].join("\n");
    let (out, _) = outcomes(text.as_bytes());
    let lines: Vec<u64> = out.iter().map(|o| o.0).collect();
    assert_eq!(lines, [2, 4, 5]);
    assert!(out[0].1.starts_with("R0 a quoted cell"), "{}", out[0].1);
    assert!(out[1].1.starts_with("R0 the line is"), "{}", out[1].1);
    assert_eq!(out[2].1, "ok");
}

#[test]
fn an_overlong_header_rejects_the_file_under_f2() {
    let text = format!("{HEADER},{}\n{ROW}\n", "h".repeat(read::LINE_BYTES_MAX));
    let err = read_snapshot_bytes(text.as_bytes(), &ctx(), |_| {}).unwrap_err();
    assert_eq!(err.rule(), Rule::F2);
    assert!(err.to_string().contains("line 1"), "{err}");
}

fn snapshot_file(root: &Path) -> SnapshotFile {
    SnapshotFile {
        path: root.join("33120015/20260401.csv"),
        rel_path: "33120015/20260401.csv".into(),
        date: Date::parse("2026-04-01").expect("date"),
    }
}

/// Reading `file` is refused under F3 naming it and saying `expected`, with 0 rows read.
fn check_refused(file: &SnapshotFile, expected: &str) {
    let err = read_snapshot(file, &entry(), |_| panic!("no row may be read")).unwrap_err();
    assert_eq!(err.rule(), Rule::F3, "{err}");
    let said = err.to_string();
    assert!(said.contains("33120015/20260401.csv"), "{said}");
    assert!(said.contains(expected), "{said}");
    let s = account_rejected_file(file, Some(entry().number), err.rule(), "", &said);
    assert_eq!((s.rows_read, s.rejected), (0, 0));
}

#[test]
fn a_named_pipe_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("33120015")).expect("mkdir");
    let file = snapshot_file(dir.path());
    let made = std::process::Command::new("mkfifo")
        .arg(&file.path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo");
    // Were the pipe opened blocking, this would wait forever for a writer.
    check_refused(&file, "a named pipe (FIFO)");
}

#[test]
fn a_socket_and_a_directory_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("33120015")).expect("mkdir");
    let file = snapshot_file(dir.path());
    let listener = std::os::unix::net::UnixListener::bind(&file.path).expect("bind");
    check_refused(&file, "a socket");
    drop(listener);
    std::fs::remove_file(&file.path).expect("rm");
    std::fs::create_dir(&file.path).expect("mkdir");
    check_refused(&file, "a directory");
}

#[test]
fn a_link_to_a_device_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("33120015")).expect("mkdir");
    let file = snapshot_file(dir.path());
    std::os::unix::fs::symlink("/dev/zero", &file.path).expect("symlink");
    // /dev/zero lies outside the snapshots too; the link is caught first either way.
    check_refused(&file, "outside the snapshots directory");
}

#[test]
fn a_link_out_of_the_snapshots_is_refused_and_one_inside_is_read() {
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret.csv");
    std::fs::write(&secret, format!("{HEADER}\n{ROW}\n")).expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("33120015")).expect("mkdir");
    let file = snapshot_file(dir.path());
    std::os::unix::fs::symlink(&secret, &file.path).expect("symlink");
    check_refused(&file, "outside the snapshots directory");

    std::fs::remove_file(&file.path).expect("rm");
    let inside = dir.path().join("shared.csv");
    std::fs::write(&inside, format!("{HEADER}\n{ROW}\n")).expect("write");
    std::os::unix::fs::symlink(&inside, &file.path).expect("symlink");
    let mut rows = 0;
    let summary = read_snapshot(&file, &entry(), |_| rows += 1).expect("inside is read");
    assert_eq!((rows, summary.indexed), (1, 1));
}
