//! The command line of the fleet: `shikaku publish`, `shikaku fleet`, and the `--follow`
//! options of `shikaku serve`.

use super::follow::{Follower, Seen};
use super::pointer::{move_pointer, Move, Pointer, Quorum};
use super::policy::{Policy, Promote};
use super::publish::{list_generations, publish};
use super::retention::gc_store;
use super::{Remote, ReplicaState, StoreConfig, StoreUrl};
use crate::domain::PersonKey;
use crate::generations::{Store, StoreLock};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct StoreArgs {
    /// S3-compatible endpoint (MinIO, a local test server); else $AWS_ENDPOINT_URL, else AWS.
    /// Region and credentials come from the standard AWS_* variables.
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// Data directory holding the generation to upload.
    #[arg(long)]
    pub data: PathBuf,
    /// Where: s3://BUCKET/PREFIX.
    #[arg(long)]
    pub to: String,
    /// The generation to upload (default: the live one).
    #[arg(long)]
    pub generation: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct FleetArgs {
    /// The fleet's store: s3://BUCKET/PREFIX.
    #[arg(long)]
    pub store: String,
    /// Replicas that must hold a generation ready before the pointer moves to it
    /// (default: every registered replica; 0 moves it whatever they hold). Accepted before or
    /// after the subcommand.
    #[arg(long, global = true)]
    pub quorum: Option<usize>,
    #[command(flatten)]
    pub endpoint: StoreArgs,
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// The pointer, the generations in the store, and what each replica holds and serves.
    Status,
    /// Make GEN live on every replica, once enough of them hold it ready.
    Promote {
        /// The generation to make live, as `fleet status` lists it (published, not yet live).
        generation: String,
        /// Promote even though the fleet is pinned, and unpin it.
        #[arg(long)]
        unpin: bool,
    },
    /// Make the previous generation live again (every replica still holds it).
    Rollback,
    /// Make GEN live and hold it there: `promote` refuses until unpinned.
    Pin {
        /// The generation to make and keep live, as `fleet status` lists it.
        generation: String,
    },
    /// Show or set the promote policy: `manual` (only `promote` moves the fleet),
    /// `auto-changes` (a change generation built on the live one goes live once every
    /// replica, or --quorum N, holds it ready; applied by `shikaku build --watch --publish`),
    /// `auto-all` (any generation built on the live one).
    Policy {
        /// The policy to set; none: show it.
        #[arg(value_enum)]
        promote: Option<super::policy::Promote>,
    },
}

#[derive(Args, Debug, Default)]
pub struct FollowArgs {
    /// Follow a fleet: download its generations from s3://BUCKET/PREFIX and serve the one its
    /// pointer names (see `shikaku fleet`).
    #[arg(long, requires = "replica_id")]
    pub follow: Option<String>,
    /// This replica's name in the fleet (its state is PREFIX/replicas/ID.json).
    #[arg(long, requires = "follow")]
    pub replica_id: Option<String>,
    /// S3-compatible endpoint for --follow; else $AWS_ENDPOINT_URL, else AWS.
    #[arg(long = "follow-endpoint", requires = "follow")]
    pub endpoint: Option<String>,
}

fn connect(url: &str, endpoint: &StoreArgs) -> anyhow::Result<Remote> {
    let url = StoreUrl::parse(url)?;
    Ok(Remote::connect(&StoreConfig::new(
        url,
        endpoint.endpoint.clone(),
    ))?)
}

/// `println!` for these commands. They keep SIGPIPE ignored (their HTTP client must get EPIPE
/// from a closed connection, not die of it), so `println!` would panic on a closed standard
/// output (`shikaku publish … | head -1`); here that ends the command quietly, as SIGPIPE ends
/// `cat`. Everything it prints comes after the work it reports is done.
macro_rules! say {
    ($($arg:tt)*) => {
        say_line(format_args!($($arg)*))
    };
}

fn say_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

pub fn run_publish(args: PublishArgs) -> anyhow::Result<()> {
    let remote = connect(&args.to, &args.store)?;
    let store = Store::new(&args.data);
    let (p, took) = publish(&remote, &store, args.generation.as_deref()).with_context(|| {
        format!(
            "publishing from {} to {}",
            args.data.display(),
            remote.url()
        )
    })?;
    say!(
        "generation {} in {}: {} files, {} bytes; uploaded {} files, {} bytes in {:.2} s{}",
        p.generation,
        remote.url(),
        p.files,
        p.bytes,
        p.uploaded_files,
        p.uploaded_bytes,
        took.as_secs_f64(),
        if p.already {
            " (it was already published)"
        } else {
            ""
        }
    );
    say!(
        "make it live with: shikaku fleet --store {} promote {}",
        remote.url(),
        p.generation
    );
    Ok(())
}

pub fn run_fleet(args: FleetArgs) -> anyhow::Result<()> {
    let remote = connect(&args.store, &args.endpoint)?;
    let quorum = args.quorum.map_or(Quorum::All, Quorum::AtLeast);
    let how = match args.command {
        FleetCommand::Status => return print_status(&remote),
        FleetCommand::Promote { generation, unpin } => Move::Promote {
            id: generation,
            unpin,
        },
        FleetCommand::Rollback => Move::Rollback,
        FleetCommand::Pin { generation } => Move::Pin { id: generation },
        FleetCommand::Policy { promote } => return set_policy(&remote, promote, args.quorum),
    };
    let started = std::time::Instant::now();
    let p = move_pointer(&remote, &how, quorum)
        .with_context(|| format!("moving the pointer of {}", remote.url()))?;
    say!(
        "the fleet's pointer names {} (previous: {}{}) after {:.3} s",
        p.live,
        p.previous.as_deref().unwrap_or("none"),
        if p.pinned { ", pinned" } else { "" },
        started.elapsed().as_secs_f64()
    );
    let removed = gc_store(&remote, &p)
        .context("removing generations the fleet no longer needs from the store")?;
    if !removed.generations.is_empty() || removed.segments > 0 {
        say!(
            "removed from the store: generations {:?}, {} segment files",
            removed.generations,
            removed.segments
        );
    }
    Ok(())
}

fn set_policy(
    remote: &Remote,
    promote: Option<Promote>,
    quorum: Option<usize>,
) -> anyhow::Result<()> {
    if let Some(promote) = promote {
        Policy::new(promote, quorum)
            .write(remote)
            .with_context(|| format!("writing the promote policy of {}", remote.url()))?;
    }
    say!("{}", policy_line(&Policy::read(remote)?));
    Ok(())
}

fn policy_line(p: &Policy) -> String {
    format!(
        "promote policy: {}{}",
        p.promote.as_str(),
        match (p.promote, p.quorum) {
            (Promote::Manual, _) => String::new(),
            (_, Some(n)) => format!(", once {n} replicas hold a generation ready"),
            (_, None) => ", once every registered replica holds a generation ready".into(),
        }
    )
}

fn print_status(remote: &Remote) -> anyhow::Result<()> {
    let now = super::unix_now_ms();
    match Pointer::read(remote)? {
        Some(r) => {
            let p = r.pointer;
            say!(
                "pointer: live {}, previous {}{}, moved {} s ago{}",
                p.live,
                p.previous.as_deref().unwrap_or("none"),
                if p.pinned { ", pinned" } else { "" },
                now.saturating_sub(p.changed_at_ms) / 1000,
                p.rolled_back_from
                    .map(|g| format!(
                        "; rolled back from {g}, which the promote policy leaves alone"
                    ))
                    .unwrap_or_default()
            );
        }
        None => say!("pointer: none yet (nothing promoted)"),
    }
    say!("{}", policy_line(&Policy::read(remote)?));
    let stored = list_generations(remote)?;
    say!("generations in the store: {}", stored.ids().join(" "));
    // What the promote policy goes by: each generation's kind and the one it was built on.
    for id in stored.ids() {
        let key = super::keys::manifest(&id);
        let Some(got) = remote.get(&key)? else {
            continue; // removed since the listing
        };
        let m = super::Manifest::parse(&got.bytes, &key, &id)?;
        if let (Some(kind), Some(parent)) = (&m.generation_kind, &m.parent) {
            say!("generation {id}: {kind}, built on {parent}");
        }
    }
    for key in &stored.unnamable {
        say!(
            "skipped object {}: an empty, `.` or `..` segment or a control character; delete it",
            super::trouble::shown_key(key)
        );
    }
    for r in ReplicaState::read_all(remote)? {
        say!(
            "replica {}: live {}, ready [{}], seen {} s ago{}",
            r.replica,
            r.live.as_deref().unwrap_or("none"),
            r.ready.join(" "),
            now.saturating_sub(r.at_ms) / 1000,
            r.trouble
                .map(|t| format!(", trouble: {t}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// A follower set up and caught up (a generation is live in the data directory), waiting
/// for the server to start before it runs on.
pub struct Following {
    follower: Follower,
    lock: StoreLock,
    seen: Seen,
}

impl Following {
    /// Takes the data directory and follows until a generation is live there.
    pub fn start(
        args: &FollowArgs,
        data: &std::path::Path,
        key: PersonKey,
    ) -> anyhow::Result<Option<Following>> {
        let (Some(url), Some(replica)) = (&args.follow, &args.replica_id) else {
            return Ok(None);
        };
        anyhow::ensure!(
            super::valid_replica_id(replica),
            "--replica-id {} is not a replica id: 1 to 64 ASCII letters, digits, '-', '_' or '.'",
            crate::domain::text::quote_raw(replica)
        );
        let remote = connect(
            url,
            &StoreArgs {
                endpoint: args.endpoint.clone(),
            },
        )?
        .with_attempts(1);
        let follower = Follower::new(Box::new(remote), Store::new(data), key, replica);
        let lock = follower
            .take_data_dir()
            .with_context(|| format!("taking {} for the follower", data.display()))?;
        let mut seen = Seen::default();
        tracing::info!(store = %url, replica = %replica, "following the fleet");
        follower.wait_until_live(&mut seen);
        Ok(Some(Following {
            follower,
            lock,
            seen,
        }))
    }

    /// Runs on beside the server: reports through `live`, asks for reloads through `reload`.
    pub fn run_beside(
        mut self,
        live: Arc<crate::server::Live>,
        reload: Arc<std::sync::atomic::AtomicBool>,
    ) -> anyhow::Result<()> {
        let health: Arc<dyn crate::server::live::FleetReport> = self.follower.health.clone();
        let _ = live.fleet.set(health);
        self.follower.reload = Some(reload);
        self.follower.live = Some(live.clone());
        self.follower.serving = Box::new(move || Some(live.load().id().to_owned()));
        self.follower.spawn(self.lock, self.seen)?;
        Ok(())
    }
}
