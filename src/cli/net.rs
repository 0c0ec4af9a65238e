//! The commands on the network: serve, demo (build, then serve), auth-line, load.

use super::args::{AuthLineArgs, DemoArgs, LoadArgs, ServeArgs};
use super::person_key;
use crate::server::Driver;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

pub(super) fn run_demo(args: DemoArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let snapshots = args
        .snapshots
        .clone()
        .unwrap_or_else(crate::demo::builtin_snapshots);
    anyhow::ensure!(
        snapshots.join("insurers.csv").is_file(),
        "no demo delivery at {} (it ships in the repository's data-gen/demo); pass --snapshots DIR, e.g. one made by shikaku-datagen",
        snapshots.display()
    );
    let key = person_key(key_file.as_deref())?;
    println!(
        "building {} into {} ...",
        snapshots.display(),
        args.data.display()
    );
    if let Some(out) = crate::demo::build(&snapshots, &args.data, key.clone())? {
        let t = &out.report.totals;
        println!(
            "published {}: {} rows read, {} indexed, {} rejected, {} duplicates",
            out.generation, t.rows_read, t.rows_indexed, t.rows_rejected, t.rows_deduplicated
        );
        let rules: Vec<String> = t.by_rule.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("findings by rule: {}", rules.join(", "));
        println!("report: {}", out.generation_dir.display());
    }
    let queries = snapshots.join("queries.csv");
    if queries.is_file() {
        println!("\nqueries to try (expected validity from the generator's ground truth):");
        for e in crate::demo::examples(&queries)? {
            println!("  # {} query, expected validity {}", e.kind, e.expected);
            println!("  {}", e.redis_cli(args.resp.port()));
            println!("  {}", e.curl(args.http.port()));
        }
        if let Some(e) = crate::demo::kohi_example(&snapshots)? {
            println!("  # public-expense (公費) query, expected validity 1 (a 医療券 for one clinic: the curl names it)");
            println!("  {}", e.redis_cli(args.resp.port()));
            println!("  {}", e.curl(args.http.port()));
        }
        println!(
            "  curl -s localhost:{}/metrics | head; curl -s localhost:{}/v1/generation\n",
            args.http.port(),
            args.http.port()
        );
        println!(
            "  tail -n 3 {}/audit-*.jsonl   # the audit log: who asked about whom\n",
            demo_audit_dir(&args.data).display()
        );
        println!(
            "  curl -s --data-binary @{} localhost:{}/v1/claims | head   # a month's claims checked\n",
            crate::demo::builtin_claims().display(),
            args.http.port()
        );
    }
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let audit_dir = demo_audit_dir(&args.data);
    run_serve(
        ServeArgs {
            data: args.data,
            resp: args.resp,
            http: args.http,
            threads: 0,
            driver: Driver::Auto,
            poll_us: crate::server::ServeConfig::default()
                .poll_window
                .as_micros() as u64,
            auth: None,
            trusted_keys: None,
            audit_dir: Some(audit_dir),
            memory_budget_bytes: crate::server::budget::DEFAULT_MEMORY_BUDGET_BYTES,
            head_deadline_secs: crate::server::limits::HEAD_DEADLINE.as_secs(),
            body_deadline_secs: crate::server::limits::BODY_DEADLINE.as_secs(),
            max_connections_per_core: None,
            preload: false,
            follow: Default::default(),
            key: Default::default(),
        },
        key,
    )
}

/// The demo keeps its audit log beside its generations.
fn demo_audit_dir(data: &std::path::Path) -> PathBuf {
    data.join("audit")
}

pub(super) fn run_serve(
    args: ServeArgs,
    key: crate::domain::PersonKey,
) -> anyhow::Result<ExitCode> {
    use crate::server::{serve_until_signal, AuthTable, ServeConfig};
    let auth = args.auth.as_deref().map(AuthTable::load).transpose()?;
    if let Some(table) = &auth {
        tracing::info!(clients = table.len(), "authentication required");
    }
    // Before the first generation is opened: every open from here on (reloads, a replica's
    // generations held ready) places its bytes so.
    if args.preload {
        crate::index::set_residence(crate::index::Residence::Preloaded);
    }
    if let Some(path) = &args.trusted_keys {
        let keys = crate::signing::TrustedKeys::load(path)?;
        tracing::info!(keys = keys.len(), file = %path.display(), "signed generations by these keys are checked by checksums only");
        crate::signing::set_trusted_keys(keys);
    }
    let config = ServeConfig {
        resp: args.resp,
        http: args.http,
        threads: usize::from(args.threads),
        auth,
        pin: true,
        driver: args.driver,
        poll_window: std::time::Duration::from_micros(args.poll_us),
        audit_dir: args.audit_dir,
        memory_budget_bytes: args.memory_budget_bytes,
        head_deadline: std::time::Duration::from_secs(args.head_deadline_secs),
        body_deadline: std::time::Duration::from_secs(args.body_deadline_secs),
        max_connections_per_core: args.max_connections_per_core.map(|n| n as usize),
    };
    // A replica of a fleet catches up first: it needs a live generation to serve, and opens
    // its ports only then (minutes later, at its first promote). A port another program
    // holds is said now, not then.
    if args.follow.follow.is_some() {
        for (what, addr) in [("--resp", config.resp), ("--http", config.http)] {
            crate::server::claim_port(addr)
                .with_context(|| format!("cannot listen on {addr} ({what})"))?;
        }
    }
    let mut following =
        crate::fleet::command::Following::start(&args.follow, &args.data, key.clone())?;
    serve_until_signal(&args.data, config, key, |server, id| {
        if let Some(f) = following.take() {
            if let Err(e) = f.run_beside(server.live().clone(), server.reload_flag()) {
                eprintln!("error: cannot start following the fleet: {e:#}");
                std::process::exit(1);
            }
        }
        eprintln!(
            "shikaku serving generation {id}: RESP on {}, HTTP on {}",
            server.resp_addr(),
            server.http_addr()
        );
        // Under systemd (Type=notify): ready now, the generation verified, the ports open
        // and the signal handlers installed.
        if let Err(e) = crate::server::systemd::notify(&crate::server::systemd::ready_message(id)) {
            tracing::warn!("could not tell systemd the server is ready ($NOTIFY_SOCKET): {e}");
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_auth_line(args: AuthLineArgs) -> anyhow::Result<ExitCode> {
    use crate::server::auth::{new_entry, Role};
    let code = crate::domain::InstitutionCode::parse(&args.institution_code)
        .map_err(|e| anyhow::anyhow!("--institution-code: {e}"))?;
    let role = Role::parse(&args.role)
        .ok_or_else(|| anyhow::anyhow!("--role must be query or admin, not {:?}", args.role))?;
    let (token, line) = new_entry(code, role).context("reading the OS random source")?;
    eprintln!(
        "credential for {code} (give it to the institution; it is stored nowhere): {code}:{token}"
    );
    eprintln!("append this line to the auth file:");
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    use crate::load::{self, Length, LoadConfig, Workload};
    use std::net::ToSocketAddrs;
    let addr = args
        .addr
        .to_socket_addrs()
        .with_context(|| format!("--addr {:?}", args.addr))?
        .next()
        .with_context(|| format!("--addr {:?} resolves to no address", args.addr))?;
    let auth = match &args.auth {
        None => None,
        Some(a) => {
            let (code, token) = a.split_once(':').context("--auth must be CODE:TOKEN")?;
            Some((code.to_string(), token.to_string()))
        }
    };
    let length = match (args.requests, args.duration) {
        (Some(k), _) => Length::Requests(k),
        (None, d) => Length::Duration(d.unwrap_or(10.0)),
    };
    let cfg = LoadConfig {
        addr,
        connections: args.connections,
        pipeline: args.pipeline,
        batch: args.batch,
        rate: args.rate,
        max_outstanding: args.max_outstanding,
        length,
        threads: args.threads,
        auth,
        warmup: args.warmup,
    };
    cfg.check()?;
    let workload = Workload::load(&args.queries, args.mode)?;
    tracing::info!(
        "{} requests from {} ({} rows skipped)",
        workload.len(),
        args.queries.display(),
        workload.skipped
    );
    let report = load::run(&cfg, std::sync::Arc::new(workload), args.mode)
        .with_context(|| format!("load against {addr}"))?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
