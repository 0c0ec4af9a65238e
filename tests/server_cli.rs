//! `shikaku serve` and `shikaku auth-line` as operators run them.

mod server_support;

use server_support::*;
use std::process::Command;

fn shikaku() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shikaku"))
}

#[test]
fn serve_with_an_auth_file_made_by_auth_line() {
    let data = data_dir();
    let out = shikaku()
        .args([
            "auth-line",
            "--institution-code",
            "0110113719",
            "--role",
            "query",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let credential = stderr
        .split_whitespace()
        .find(|w| w.starts_with("0110113719:"))
        .unwrap()
        .to_owned();
    let token = &credential["0110113719:".len()..];
    assert!(
        !line.contains(token),
        "the file line must not hold the token"
    );
    let auth = data.path().join("auth.txt");
    std::fs::write(&auth, format!("# clients\n{line}")).unwrap();

    let server = ServeProcess::start(data.path(), &["--auth".as_ref(), auth.as_os_str()]);
    let (resp, http, log) = (server.resp, server.http, &server.startup_log);
    assert!(log.contains("io_uring") || log.contains("epoll"), "{log}");
    assert!(!log.contains(token));

    let got = raw_exchange(
        resp,
        format!("PING\r\nAUTH {credential}\r\nPING\r\n").as_bytes(),
        usize::MAX,
    );
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n"
    );
    let mut client = Http::connect(http);
    let body = format!(
        r#"{{"individual_number":"{}","date":"{DATE}"}}"#,
        person(P1)
    );
    let r = client.request(
        "POST",
        "/v1/person",
        &[("Authorization", &format!("Bearer {credential}"))],
        body.as_bytes(),
    );
    assert_eq!(r.body, cli_person(data.path(), &person(P1)));
}

/// Issue 27: refused credentials, over RESP (`AUTH`, `HELLO AUTH`) and HTTP, were counted but
/// never logged. Now a line names the protocol and the institution code, never the token, at
/// most once a second per core, with how many went unlogged before it.
#[test]
fn refused_credentials_are_logged_without_the_token_at_most_once_a_second() {
    let data = data_dir();
    let (server, code, _token) = serve_one_client(data.path());
    let guess = "5eC2e7guess0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978879";
    let got = raw_exchange(
        server.resp,
        format!("AUTH {code} {guess}\r\nAUTH {code}:{guess}\r\nHELLO 3 AUTH {code} {guess}\r\n")
            .as_bytes(),
        usize::MAX,
    );
    assert!(String::from_utf8_lossy(&got).starts_with("-WRONGPASS"));
    let mut http = Http::connect(server.http);
    let bearer = format!("Bearer {code}:{guess}");
    let r = http.request("GET", "/v1/generation", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 401);
    // The next second's first refusal is logged, with the three before it unlogged.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = http.request("GET", "/v1/generation", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 401);
    let (_, log) = {
        let mut server = server;
        let _ = server.child.kill();
        server.wait()
    };
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("credentials refused"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("protocol=\"resp\"") && lines[0].contains("unlogged_before=0"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("protocol=\"http\"") && lines[1].contains("unlogged_before=3"),
        "{}",
        lines[1]
    );
    for l in &lines {
        assert!(l.contains("institution=\"0110113719\""), "{l}");
    }
    assert!(!log.contains(guess), "a token in the log: {log}");
}

#[test]
fn refuses_to_start_open_to_the_world_or_with_a_bad_auth_file() {
    let data = data_dir();
    let out = shikaku()
        .args([
            "serve",
            "--resp",
            "0.0.0.0:0",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("not a loopback address") && err.contains("--auth"),
        "{err}"
    );

    let auth = data.path().join("auth.txt");
    std::fs::write(&auth, "0110113719 query nothex\n").unwrap();
    let out = shikaku()
        .args(["serve", "--data"])
        .arg(data.path())
        .arg("--auth")
        .arg(&auth)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 1") && err.contains("64 hex"), "{err}");

    let out = shikaku()
        .args(["auth-line", "--institution-code", "0110113718"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = shikaku()
        .args(["serve", "--data", "/nonexistent/shikaku"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("error:"));
}

/// Regression: `shikaku generations list | head -0` panicked ("failed printing to stdout:
/// Broken pipe"), exit 101. A closed stdout now ends the program as it ends `cat`.
#[test]
fn regression_a_closed_stdout_ends_quietly_not_in_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let data = data_dir();
    // The reading end is closed before the program starts: its first write meets EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = shikaku()
        .args(["generations", "--data"])
        .arg(data.path())
        .arg("list")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}

/// `query --verify` checks the generation as the server does before answering; without it
/// the files are read as they are (an operator audit found a rotted byte answered silently).
#[test]
fn query_refuses_a_corrupt_generation_with_or_without_verify() {
    let data = data_dir();
    let person = person(P1);
    let ask = |extra: &[&str]| {
        shikaku()
            .args(["query", "--data"])
            .arg(data.path())
            .args(extra)
            .args(["person", "--individual-number", &person, "--date", DATE])
            .output()
            .unwrap()
    };
    let good = ask(&["--verify"]);
    assert!(good.status.success(), "{good:?}");
    let segments = data
        .path()
        .join("generations")
        .join(GENERATION)
        .join("segments");
    for entry in std::fs::read_dir(segments).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
    }
    let refused = ask(&["--verify"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed verification"), "{stderr}");
    assert!(
        stderr.contains("checksum mismatch in the segment file"),
        "{stderr}"
    );
    // Without --verify the query still verifies what it reads: the person's segments.
    let unverified = ask(&[]);
    let stderr = String::from_utf8_lossy(&unverified.stderr);
    assert_eq!(unverified.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed verification"), "{stderr}");
    assert!(
        stderr.contains("checksum mismatch in the segment file"),
        "{stderr}"
    );
    assert!(unverified.stdout.is_empty(), "{unverified:?}");
}

/// `redis-export` reads every insurer's segment, and so does `claims` with files as large as
/// a quarter of the segments (it verifies the whole generation first): a damaged one refuses
/// the run before a row is written. A small claims file verifies only what its receipts reach,
/// and a damaged segment it does not reach leaves it alone.
#[test]
fn claims_and_redis_export_refuse_a_corrupt_generation() {
    let data = data_dir();
    let small = data.path().join("RECEIPTC.UKE");
    std::fs::write(&small, b"IR,1\r\nRE,1\r\nGO,1\r\n").unwrap();
    let queries = data.path().join("queries.jsonl");
    std::fs::write(&queries, b"").unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let mut cmd = shikaku();
        cmd.args(args);
        cmd.output().unwrap()
    };
    let claims = |uke: &std::path::Path| {
        run(&[
            "claims".as_ref(),
            "--data".as_ref(),
            data.path().as_os_str(),
            uke.as_os_str(),
        ])
    };
    let export = || {
        run(&[
            "redis-export".as_ref(),
            "--data".as_ref(),
            data.path().as_os_str(),
            "--queries".as_ref(),
            queries.as_os_str(),
        ])
    };
    let segments = data
        .path()
        .join("generations")
        .join(GENERATION)
        .join("segments");
    let segment_bytes: u64 = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // Receipts of one record each (unreadable: a row each, no card to look up).
    let large = data.path().join("LARGE.UKE");
    let mut text = String::from("IR,1\r\n");
    let mut n = 0;
    while (text.len() as u64) * 4 < segment_bytes {
        n += 1;
        text.push_str(&format!("RE,{n}\r\n"));
    }
    text.push_str(&format!("GO,{n}\r\n"));
    std::fs::write(&large, text).unwrap();
    assert!(claims(&small).status.success(), "{:?}", claims(&small));
    assert!(claims(&large).status.success(), "{:?}", claims(&large));
    let first = std::fs::read_dir(&segments)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&first).unwrap();
    *bytes.last_mut().unwrap() ^= 0x55;
    std::fs::write(&first, bytes).unwrap();
    for out in [claims(&large), export()] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("failed verification"), "{stderr}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let out = claims(&small);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "{out:?}"
    );
}
