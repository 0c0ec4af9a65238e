//! The commands on a data directory: build, verify, generations, query, redis-export.

use super::args::{
    BuildArgs, GenerationsAction, GenerationsArgs, QueryArgs, QueryCommand, RedisExportArgs,
    VerifyArgs,
};
use super::person_key;
use crate::domain::Date;
use crate::generations::{Store, StoreError};
use crate::query::answer::answer;
use crate::query::{
    CardFields, CardQuery, KohiFields, KohiQuery, PersonFields, PersonQuery, Query,
};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

pub(super) fn run_build(args: BuildArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use crate::domain::InsurerNumber;
    use crate::nightly::run::{run, BuildConfig, BuildError, Reuse};
    let key = person_key(key_file.as_deref())?;
    let accept = args
        .accept
        .iter()
        .map(|a| {
            InsurerNumber::parse(a)
                .with_context(|| format!("--accept {a:?} is not an insurer or payer number"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let built_on = match &args.date {
        Some(d) => Date::parse(d).with_context(|| format!("--date {d:?}"))?,
        None => Date::today_jst(),
    };
    let cfg = BuildConfig {
        snapshots: args.snapshots.clone(),
        data: args.data.clone(),
        key,
        built_on,
        max_drop_percent: args.max_drop_percent,
        accept,
        reuse: if args.full {
            Reuse::Nothing
        } else if args.compact {
            Reuse::Compact
        } else if args.fold {
            Reuse::Fold
        } else if args.whole_states {
            Reuse::WholeStates
        } else {
            Reuse::UnchangedInsurers
        },
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.watch,
        signing: args
            .signing_key
            .as_deref()
            .map(crate::signing::SigningKey::load)
            .transpose()?
            .map(std::sync::Arc::new),
    };
    let remote = match &args.publish {
        // The loop tries a failed upload again itself, building meanwhile: one attempt per
        // request, not four with backoff, keeps a store that hangs from holding builds up.
        Some(url) if args.watch => {
            Some(connect_store(url, args.endpoint.clone())?.with_attempts(1))
        }
        Some(url) => Some(connect_store(url, args.endpoint.clone())?),
        None => None,
    };
    if args.watch {
        return run_watch(cfg, args.date.is_some(), remote, &args);
    }
    match run(&cfg) {
        Ok(out) => {
            print!(
                "{}",
                crate::nightly::report::console_summary(&out.report, &out.generation_dir)
            );
            if let Some(m) = &out.merged {
                println!(
                    "then merged the {} layers into one: {} in {:.1} s, live now (report: {})",
                    m.merged_layers,
                    m.generation,
                    m.elapsed_ms as f64 / 1000.0,
                    m.generation_dir
                        .join(crate::generations::REPORT_FILE)
                        .display()
                );
            }
            if let Some(remote) = remote {
                let store = Store::new(&args.data);
                // A change generation a merge stood in for first: the merge's parent.
                for id in out.published() {
                    let (p, took) = crate::fleet::publish::publish(&remote, &store, Some(id))
                        .with_context(|| format!("publishing {id} to {}", remote.url()))?;
                    println!(
                        "uploaded {id} to {}: {} of its {} bytes in {:.2} s",
                        remote.url(),
                        p.uploaded_bytes,
                        p.bytes,
                        took.as_secs_f64()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ BuildError::Refused { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(3))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "building from {} into {}",
            args.snapshots.display(),
            args.data.display()
        ))),
    }
}

fn connect_store(url: &str, endpoint: Option<String>) -> anyhow::Result<crate::fleet::Remote> {
    use crate::fleet::{Remote, StoreConfig, StoreUrl};
    Ok(Remote::connect(&StoreConfig::new(
        StoreUrl::parse(url)?,
        endpoint,
    ))?)
}

/// `shikaku build --watch`: until SIGTERM or SIGINT, which end it between builds.
fn run_watch(
    build: crate::nightly::run::BuildConfig,
    dated: bool,
    publish: Option<crate::fleet::Remote>,
    args: &BuildArgs,
) -> anyhow::Result<ExitCode> {
    use crate::watch::{watch, Pace, WatchConfig};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("setting up SIGTERM")?;
    }
    let settle = std::time::Duration::from_millis(args.settle_ms);
    let cfg = WatchConfig {
        date: dated.then_some(build.built_on),
        build,
        pace: Pace {
            settle,
            settle_max: settle * 10,
            ..Pace::default()
        },
        keep: args.keep as usize,
        publish,
    };
    watch(cfg, &stop);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_verify(args: VerifyArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = person_key(key_file.as_deref())?;
    let store = Store::new(&args.data);
    let id = match args.generation {
        Some(id) => id,
        None => store.live()?,
    };
    let trusted = match &args.trusted_keys {
        Some(path) => crate::signing::TrustedKeys::load(path)?,
        None => crate::signing::TrustedKeys::none(),
    };
    let started = std::time::Instant::now();
    let index = store
        .open_named(&id, key)
        .with_context(|| format!("opening generation {id}"))?;
    let opened = started.elapsed();
    let (trust, _) = crate::signing::verify_generation(
        &index,
        &trusted,
        &crate::index::VerifiedSegments::default(),
    )
    .with_context(|| failed_verification(&index, &args.data))?;
    let h = index.header();
    println!(
        "generation {id}: ok ({trust}), {} bytes ({} in segment files), {} insurers, {} records, {} persons verified in {:.2} s",
        index.total_bytes(),
        index.total_bytes() - h.file_bytes,
        h.insurer_count,
        h.record_count,
        h.person_count,
        started.elapsed().as_secs_f64()
    );
    // The profile: CPU time, summed over the threads that ran each phase.
    println!(
        "  open (structure, bounds): {:.3} s wall",
        opened.as_secs_f64()
    );
    for (phase, spent) in crate::index::phase_times() {
        println!("  {}: {:.3} s CPU", phase.name(), spent.as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_generations(args: GenerationsArgs) -> anyhow::Result<ExitCode> {
    let data = required_data(args.data, "generations")?;
    let store = Store::new(&data);
    // A mistyped --data would list nothing and succeed: every action needs the directory.
    store.require_root()?;
    let ctx = || format!("data directory {}", data.display());
    match args.action {
        GenerationsAction::List => return list_generations(&store),
        GenerationsAction::Rollback { to, key } => {
            let _lock = store.lock().with_context(ctx)?;
            let key = person_key(key.file.as_deref())?;
            let id = store.rollback(to.as_deref(), key).with_context(ctx)?;
            println!("live generation is now {id}");
        }
        GenerationsAction::Gc { keep, key } => {
            let _lock = store.lock().with_context(ctx)?;
            let key = person_key(key.file.as_deref())?;
            let collected = store.gc(keep, key).with_context(ctx)?;
            let removed =
                collected.generations.len() + collected.incomplete.len() + collected.refused.len();
            for id in collected.generations {
                println!("removed {id}");
            }
            for id in collected.incomplete {
                println!("removed incomplete generation {id} (no index file)");
            }
            for id in collected.refused {
                println!("removed refused build {id}");
            }
            if removed == 0 {
                // Said, so a gc run by hand or by a timer shows it ran and found nothing.
                let kept = store.list().with_context(ctx)?.len();
                println!(
                    "nothing to remove: {kept} generations (--keep {keep}), no refused build beyond the newest {keep}"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the generations, the live one marked. A `CURRENT` naming none is warned about
/// after the list and fails the command, unless nothing was ever published.
fn list_generations(store: &Store) -> anyhow::Result<ExitCode> {
    let live = store.live();
    let ids = store
        .list()
        .with_context(|| format!("data directory {}", store.root().display()))?;
    for id in ids {
        let is_live = live.as_ref().is_ok_and(|live| *live == id);
        println!("{} {id}", if is_live { "*" } else { " " });
    }
    match live {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("warning: {e}");
            let fresh = matches!(e, StoreError::NothingPublished { .. });
            Ok(if fresh {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

pub(super) fn failed_verification(
    index: &crate::index::MappedIndex,
    data: &std::path::Path,
) -> String {
    format!(
        "generation {} in {} failed verification (roll back to an earlier generation, or rebuild)",
        index.generation(),
        data.display()
    )
}

pub(super) fn run_query(args: QueryArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let data = required_data(args.data, "query")?;
    let key = person_key(key_file.as_deref())?;
    let store = Store::new(&data);
    let index = store
        .open_current(key)
        .with_context(|| format!("opening the live generation in {}", data.display()))?;
    if args.verify {
        index
            .verify()
            .with_context(|| failed_verification(&index, &data))?;
    }
    let today = Date::today_jst();
    let q = match &args.kind {
        QueryCommand::Card {
            insurer_number,
            symbol,
            number,
            branch,
            birthdate,
            date,
            limit_consent,
        } => Query::Card(CardQuery::parse(&CardFields {
            insurer_number: Some(insurer_number),
            symbol: symbol.as_deref(),
            number: Some(number),
            branch: branch.as_deref(),
            birthdate: Some(birthdate),
            date: date.as_deref(),
            limit_consent: *limit_consent,
        })?),
        QueryCommand::Person {
            individual_number,
            date,
            limit_consent,
        } => Query::Person(PersonQuery::parse(&PersonFields {
            individual_number: Some(individual_number),
            date: date.as_deref(),
            limit_consent: *limit_consent,
        })?),
        QueryCommand::Kohi {
            payer_number,
            recipient_number,
            birthdate,
            date,
            institution_code,
        } => Query::Kohi(KohiQuery::parse(&KohiFields {
            payer_number: Some(payer_number),
            recipient_number: Some(recipient_number),
            birthdate: Some(birthdate),
            date: date.as_deref(),
            institution_code: institution_code.as_deref(),
        })?),
    };
    if !args.verify {
        crate::query::checked::verify_for(&index, &q)
            .with_context(|| failed_verification(&index, &data))?;
    }
    // The answer path the server takes.
    let mut out = Vec::new();
    answer(&index, &q, today, &mut out);
    println!("{}", String::from_utf8_lossy(&out));
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_redis_export(
    args: RedisExportArgs,
    key_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let key = person_key(key_file.as_deref())?;
    let index = Store::new(&args.data)
        .open_current(key)
        .with_context(|| format!("opening the live generation in {}", args.data.display()))?;
    // Every record is exported: every checksum is checked first.
    index
        .verify()
        .with_context(|| failed_verification(&index, &args.data))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let stats = crate::load::export::export(&index, &args.queries, Date::today_jst(), &mut out)?;
    eprintln!(
        "exported {} keys ({} from the workload, {} more records of the index; {} rows skipped); {} answers differ from the expected validity",
        stats.keys, stats.keys - stats.record_keys, stats.record_keys, stats.skipped, stats.unexpected_validity
    );
    Ok(ExitCode::SUCCESS)
}

/// `--data`, which the commands whose options are accepted after their subcommand take
/// optionally (clap cannot require an option given at either level) and need.
fn required_data(data: Option<PathBuf>, command: &str) -> anyhow::Result<PathBuf> {
    data.with_context(|| format!("shikaku {command} needs --data DIR, the data directory holding CURRENT and generations/"))
}
