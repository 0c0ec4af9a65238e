//! `shikaku build --watch`: keeps running on the builder, and makes each change file (or
//! snapshot) renamed into the snapshots directory live within seconds. It polls the
//! directory (`scan`); files that land together (within the settle window of each other)
//! go into one build, the nightly build (`nightly::run`, reusing every unchanged insurer),
//! which verifies the generation and makes it live (`CURRENT`). With a store it uploads each
//! generation (only the segment files the store lacks, `fleet::publish`) and applies the
//! fleet's promote policy (`fleet::policy`) while a generation waits to go live.
//!
//! Nothing ends the loop but SIGTERM or SIGINT, which it obeys between builds: a build that
//! fails (a file it cannot read, the data directory busy or full) is logged, written to
//! `DATA/watch.json` (`status`) and tried again with backoff; a build the delivery guard
//! refuses waits for new files; an upload that fails is tried again, generation by
//! generation, oldest first. `DATA/LOCK` is held only while building or collecting, so
//! `shikaku generations rollback` works between builds.

pub mod scan;
pub mod status;

use crate::domain::Date;
use crate::fleet::policy::{autopromote, Decision};
use crate::fleet::publish::publish;
use crate::fleet::retention::gc_store;
use crate::fleet::Remote;
use crate::generations::Store;
use crate::nightly::report_files;
use crate::nightly::run::{run_kept, BuildConfig, BuildError, Kept};
use crate::nightly::Report;
use crate::snapshot::ChangeTime;
use scan::{changed, Files, Scanner};
use status::{masked, Outcome, Status, Upload};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How often the snapshots directory is looked at.
    pub poll: Duration,
    /// A build starts once nothing more has landed for this long. Zero by default: a writer
    /// renames complete files into place, so waiting would only delay the answers (the
    /// commonest trouble a clinic sees is a registration not yet answered); files that land
    /// while a build runs go into the next one together anyway.
    pub settle: Duration,
    /// ... or this long after the first file, whatever keeps landing.
    pub settle_max: Duration,
    /// The first wait before a failed build or upload is tried again; doubles, up to
    /// `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            poll: Duration::from_millis(200),
            settle: Duration::ZERO,
            settle_max: Duration::ZERO,
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

pub struct WatchConfig {
    /// The build's configuration; its date is today's (in Japan) at each build unless `date`.
    pub build: BuildConfig,
    pub date: Option<Date>,
    pub pace: Pace,
    /// Generations kept in the data directory (older ones are removed once there are twice
    /// as many; removal needs the live generation verified: see `Watch::collect`).
    pub keep: usize,
    /// The fleet's store, to upload to and promote in.
    pub publish: Option<Remote>,
}

/// A failure being waited out: how many in a row, and when to try again.
#[derive(Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    fn failed(&mut self, pace: &Pace) -> Duration {
        let wait = pace
            .retry_first
            .saturating_mul(2u32.saturating_pow(self.failures))
            .min(pace.retry_max);
        self.failures += 1;
        self.until = Some(Instant::now() + wait);
        wait
    }

    fn waiting(&self) -> bool {
        self.until.is_some_and(|t| Instant::now() < t)
    }
}

struct Watch {
    cfg: WatchConfig,
    store: Store,
    scanner: Scanner,
    /// The insurer directories' scans, kept from build to build (`ScanCache`).
    scans: crate::snapshot::ScanCache,
    /// The files the last build started from.
    built: Files,
    /// Files seen differing from `built`: when first, and the listing and time of the last
    /// change among them.
    pending: Option<(Instant, Files, Instant)>,
    /// The earliest time a change file already there is timed at, later than the last build's
    /// "now": it is applied by a build then.
    due: Option<ChangeTime>,
    build_backoff: Backoff,
    upload_backoff: Backoff,
    unpublished: Vec<String>,
    /// A build published since old generations were last looked at.
    collect_due: bool,
    /// What the live generation's check before a collection found verified, kept across
    /// collections: a change generation shares its parent's files, so each check is of
    /// what is new.
    verified: std::sync::Arc<crate::index::VerifiedSegments>,
    /// That check, off the loop (at the nation a base's files are 22 GB, 36 s to read: the
    /// loop would not see a change file meanwhile); the collection follows once it is done.
    checking: Option<std::thread::JoinHandle<()>>,
    /// The generation this watch last built and published (verified as it was written: a
    /// collection while it is live does not read it again).
    built_live: Option<String>,
    /// That generation as its build opened it, held until the next build, which takes it as
    /// the live generation instead of opening it again (`Kept::last`).
    held: Option<crate::index::MappedIndex>,
    /// When the promote policy was last applied (none: at the next poll).
    promote_looked: Option<Instant>,
    /// Since when a generation has waited for replicas to hold it.
    waiting_since: Option<Instant>,
    status: Status,
}

/// Runs until `stop` is set (SIGTERM, SIGINT), then returns between builds.
pub fn watch(cfg: WatchConfig, stop: &AtomicBool) {
    let mut w = Watch::new(cfg);
    tracing::info!(snapshots = %w.cfg.build.snapshots.display(), data = %w.cfg.build.data.display(), settle_ms = w.cfg.pace.settle.as_millis() as u64, "watching for change files and snapshots");
    while !stop.load(Ordering::Acquire) {
        let started = Instant::now();
        w.tick();
        std::thread::sleep(w.cfg.pace.poll.saturating_sub(started.elapsed()));
    }
    w.status.state = "stopped";
    w.status.write(&w.cfg.build.data);
    tracing::info!("stopped watching (SIGTERM or SIGINT)");
}

impl Watch {
    fn new(cfg: WatchConfig) -> Watch {
        let store = Store::new(&cfg.build.data);
        let mut scanner = Scanner::new(&cfg.build.snapshots);
        let now = scanner.scan().unwrap_or_default();
        // What the live generation was built from counts as built: a restart builds only
        // when something landed while it was down.
        let built = match live_whole(&store) {
            Some((dir, whole)) => {
                let missing = missing_from(&whole.report, &now);
                // The first change build starts from it instead of reading it again.
                report_files::keep_whole(&dir, whole);
                match missing {
                    false => now,
                    true => Files::new(),
                }
            }
            None => Files::new(),
        };
        let status = Status {
            state: "watching",
            snapshots: masked(&cfg.build.snapshots.display().to_string()),
            ..Status::default()
        };
        Watch {
            cfg,
            store,
            scanner,
            scans: Default::default(),
            built,
            pending: None,
            due: None,
            build_backoff: Backoff::default(),
            upload_backoff: Backoff::default(),
            unpublished: Vec::new(),
            collect_due: false,
            verified: Default::default(),
            checking: None,
            built_live: None,
            held: None,
            promote_looked: None,
            waiting_since: None,
            status,
        }
    }

    fn tick(&mut self) {
        if let Some(files) = self.look() {
            self.build(files);
        }
        self.upload();
        if self.collect_due && self.unpublished.is_empty() {
            self.collect_due = !self.collect();
        }
        self.promote();
    }

    /// The files to build from, once they have settled.
    fn look(&mut self) -> Option<Files> {
        let now = match self.scanner.scan() {
            Ok(files) => files,
            Err(e) => {
                let why = masked(&format!("{}: {e}", self.cfg.build.snapshots.display()));
                if self.status.scan_error.as_deref() != Some(why.as_str()) {
                    tracing::error!("cannot read the snapshots directory: {why}");
                    self.status.scan_error = Some(why);
                    self.status.write(&self.cfg.build.data);
                }
                return None;
            }
        };
        self.status.scan_error = None;
        let due = self.due.is_some_and(|t| ChangeTime::now_jst() >= t);
        if (now == self.built && !due) || self.build_backoff.waiting() {
            self.pending = None;
            return None;
        }
        let at = Instant::now();
        let (first, quiet_since) = match self.pending.take() {
            Some((first, seen, since)) if seen == now => (first, since),
            Some((first, _, _)) => (first, at),
            None => {
                self.status.state = "settling";
                (at, at)
            }
        };
        let pace = &self.cfg.pace;
        if at - quiet_since >= pace.settle || at - first >= pace.settle_max {
            self.status.last_build.settle_ms = (at - first).as_millis() as u64;
            return Some(now);
        }
        self.pending = Some((first, now, quiet_since));
        None
    }

    fn build(&mut self, files: Files) {
        let data = self.cfg.build.data.clone();
        let mut cfg = self.cfg.build.clone();
        cfg.built_on = self.cfg.date.unwrap_or_else(Date::today_jst);
        let landed: Vec<String> = changed(&self.built, &files)
            .iter()
            .map(|p| masked(&p.display().to_string()))
            .collect();
        tracing::info!(
            files = landed.len(),
            first = landed.first().map(String::as_str).unwrap_or(""),
            "building from what landed"
        );
        self.status.state = "building";
        self.status.last_build.files = landed;
        self.status.write(&data);
        let started = Instant::now();
        let kept = Kept {
            listed: identities(&files),
            scans: Some(&self.scans),
            last: self.held.take(),
        };
        let result = run_kept(&cfg, kept);
        self.status.builds += 1;
        let b = &mut self.status.last_build;
        b.elapsed_ms = started.elapsed().as_millis() as u64;
        b.at_ms = crate::fleet::unix_now_ms();
        match result {
            Ok(out) => {
                let merged_into = out.merged.as_ref().map(|m| m.generation.clone());
                tracing::info!(generation = %out.generation, kind = out.report.generation_kind.as_str(), rows_rejected = rows_rejected(&out.report), elapsed_ms = b.elapsed_ms, phases_ms = ?out.report.phases_ms, merged_into = merged_into.as_deref().unwrap_or(""), "published from what landed; its report says what was applied");
                b.outcome = Some(Outcome::Published);
                b.generation = Some(out.generation.clone());
                b.merged_into = merged_into;
                self.built_live = Some(out.live().to_owned());
                let published: Vec<String> =
                    out.published().into_iter().map(str::to_owned).collect();
                self.held = Some(out.index);
                b.error = None;
                b.phases_ms = out.report.phases_ms.clone();
                b.rows_rejected = rows_rejected(&out.report);
                b.generation_kind = Some(out.report.generation_kind.as_str().to_owned());
                self.status.failing_for = 0;
                self.build_backoff = Backoff::default();
                // The build read the delivery after `files` was listed: what landed in
                // between and went into it is built too.
                let after = self.scanner.scan().unwrap_or_default();
                self.built = built_after(files, after, &out.report);
                // A build dated with --date takes its day's change files; later ones never.
                self.due = self
                    .cfg
                    .date
                    .is_none()
                    .then(|| self.due_after(cfg.built_on))
                    .flatten();
                if self.cfg.publish.is_some() {
                    // A change generation a merge stood in for goes up first: it is the
                    // merge's parent, which the fleet's policy promotes before it.
                    self.unpublished.extend(published);
                }
                self.collect_due = true;
            }
            Err(e) => {
                let refused = matches!(e, BuildError::Refused { .. });
                b.outcome = Some(if refused {
                    Outcome::Refused
                } else {
                    Outcome::Failed
                });
                b.generation = None;
                b.error = Some(masked(&e.to_string()));
                self.status.failures += 1;
                self.status.failing_for += 1;
                if refused {
                    // The same files would be refused again: wait for new ones.
                    tracing::error!("build refused, waiting for new files: {e}");
                    self.built = files;
                } else {
                    let wait = self.build_backoff.failed(&self.cfg.pace);
                    tracing::error!(retry_in_s = wait.as_secs(), "build failed: {e}");
                }
            }
        }
        self.status.state = "watching";
        self.status.write(&data);
    }

    /// The earliest change file timed after the build's "now" (it waits for its time).
    fn due_after(&self, built_on: Date) -> Option<ChangeTime> {
        let now = ChangeTime::for_build(built_on);
        self.built
            .keys()
            .filter_map(|p| change_time(&p))
            .filter(|t| *t > now)
            .min()
    }

    /// Removes old generations once there are twice `keep` (the caller waits while an upload
    /// does: the generations waiting are the newest, but their removal would be one fault
    /// away); whether it is done (false while the live generation is being checked off the
    /// loop: the removal waits for that).
    fn collect(&mut self) -> bool {
        let count = self.store.list().map_or(0, |l| l.len());
        if count <= self.cfg.keep.saturating_mul(2) {
            return true;
        }
        let live = self.store.live().ok();
        if let Some(built) = self
            .built_live
            .as_deref()
            .filter(|b| live.as_deref() == Some(*b))
        {
            // The live generation is this watch's last build, verified as it was written.
            let key = self.cfg.build.key.clone();
            let collected = self
                .store
                .lock()
                .and_then(|_lock| self.store.gc_built(self.cfg.keep, key, built));
            log_collected(collected);
            return true;
        }
        match self.checking.take() {
            Some(t) if !t.is_finished() => {
                self.checking = Some(t);
                return false;
            }
            Some(t) => {
                let _ = t.join();
            }
            None => {
                // Check the live generation's files into `verified` first, off the loop; the
                // removal below then checks only what was published meanwhile.
                let (store, key) = (self.store.clone(), self.cfg.build.key.clone());
                let verified = self.verified.clone();
                self.checking = Some(std::thread::spawn(move || {
                    if let Ok(live) = store.live() {
                        let _ = store.open_verified_known(&live, key, &verified);
                    }
                }));
                return false;
            }
        }
        let key = self.cfg.build.key.clone();
        let collected = self
            .store
            .lock()
            .and_then(|_lock| self.store.gc_known(self.cfg.keep, key, &self.verified));
        log_collected(collected);
        true
    }

    /// Uploads the generations built and not uploaded yet, oldest first.
    fn upload(&mut self) {
        let Some(remote) = &self.cfg.publish else {
            return;
        };
        while let Some(id) = self.unpublished.first().cloned() {
            if self.upload_backoff.waiting() {
                return;
            }
            let mut u = Upload {
                generation: Some(id.clone()),
                at_ms: crate::fleet::unix_now_ms(),
                ..Upload::default()
            };
            match publish(remote, &self.store, Some(&id)) {
                Ok((p, took)) => {
                    tracing::info!(generation = %id, bytes = p.bytes, uploaded_bytes = p.uploaded_bytes, uploaded_files = p.uploaded_files, elapsed_ms = took.as_millis() as u64, "uploaded");
                    (u.bytes, u.uploaded_bytes) = (p.bytes, p.uploaded_bytes);
                    u.elapsed_ms = took.as_millis() as u64;
                    self.unpublished.remove(0);
                    self.upload_backoff = Backoff::default();
                    self.promote_looked = None;
                    self.waiting_since = None;
                }
                Err(e) => {
                    let wait = self.upload_backoff.failed(&self.cfg.pace);
                    tracing::error!(generation = %id, retry_in_s = wait.as_secs(), "upload failed: {e}");
                    u.error = Some(masked(&e.to_string()));
                    self.status.failures += 1;
                }
            }
            u.waiting = self.unpublished.clone();
            self.status.last_upload = Some(u);
            self.status.write(&self.cfg.build.data);
        }
    }

    /// Applies the fleet's promote policy: at once after an upload, at every poll for the
    /// first minute a generation waits for replicas, else every few seconds (an operator may change the
    /// policy, promote or roll back meanwhile).
    fn promote(&mut self) {
        let Some(remote) = &self.cfg.publish else {
            return;
        };
        // A wait longer than a minute is a replica down or gone (its state still registered):
        // looked at the idle pace then, not five times a second for as long as it lasts.
        let fast = self
            .waiting_since
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        let every = if fast {
            Duration::ZERO
        } else {
            Duration::from_secs(2)
        };
        if self.promote_looked.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.promote_looked = Some(Instant::now());
        let decision = autopromote(remote);
        match &decision {
            Ok(Decision::Waiting { .. }) => {
                self.waiting_since.get_or_insert_with(Instant::now);
            }
            _ => self.waiting_since = None,
        }
        let said = match decision {
            Ok(Decision::Promoted(p)) => {
                tracing::info!(generation = %p.live, previous = p.previous.as_deref().unwrap_or(""), "promoted by the fleet's promote policy");
                if let Err(e) = gc_store(remote, &p) {
                    tracing::warn!(
                        "cannot remove what the fleet no longer needs from the store: {e}"
                    );
                }
                format!("promoted {}", p.live)
            }
            Ok(Decision::Waiting { id, why }) => format!("waiting: {id}: {why}"),
            Ok(Decision::Idle { why }) => why,
            Err(e) => format!("cannot apply the promote policy: {e}"),
        };
        if self.status.promote.as_deref() != Some(said.as_str()) {
            tracing::info!("promote policy: {said}");
            self.status.promote = Some(masked(&said));
            self.status.write(&self.cfg.build.data);
        }
    }
}

/// The time a change file's name gives (`<insurer>/changes/YYYYMMDD-hhmmss.csv`).
fn change_time(path: &Path) -> Option<ChangeTime> {
    let dir = path.parent()?;
    if dir.file_name()? != "changes" {
        return None;
    }
    ChangeTime::parse(path.file_stem()?.to_str()?)
}

/// The rows a build rejected: a base's, or, for a change generation (whose totals are its
/// base's), those of the change files its layer applied.
fn rows_rejected(report: &Report) -> u64 {
    match &report.layer {
        Some(layer) => layer.change_files.iter().map(|c| c.rows_rejected).sum(),
        None => report.totals.rows_rejected,
    }
}

fn log_collected(collected: Result<crate::generations::Collected, crate::generations::StoreError>) {
    match collected {
        Ok(c) => tracing::info!(removed = ?c.generations, "old generations removed"),
        Err(e) => tracing::warn!("cannot remove old generations: {e}"),
    }
}

/// The identities of the delivery's files as the watch listed them, for the build.
fn identities(files: &Files) -> crate::snapshot::Identities {
    crate::snapshot::Identities::listed(
        files
            .dirs()
            .filter_map(|(d, f)| Some((d.to_str()?.to_owned(), f.clone()))),
    )
}

/// The live generation's directory and its whole report (a change generation's stacked on
/// its base's).
fn live_whole(store: &Store) -> Option<(std::path::PathBuf, report_files::Whole)> {
    let dir = store.generation_dir(&store.live().ok()?);
    let whole = report_files::read_whole(&dir).ok()?;
    Some((dir, whole))
}

/// Whether `files` holds a snapshot or change file the live generation's report does not
/// name: one that landed while no watch ran. (Older snapshots than an insurer's newest are
/// named by no report: only a snapshot newer than the one the report names counts.)
fn missing_from(report: &Report, files: &Files) -> bool {
    let named = Named::of(report);
    files.keys().any(|p| !named.holds(&p))
}

/// The delivery files a generation's report says it was built from: each insurer's snapshot,
/// state and change files, and the change files its layers applied (a change generation's
/// `insurers` are its base's).
struct Named<'r> {
    report: &'r Report,
    names: std::collections::HashSet<String>,
}

impl<'r> Named<'r> {
    fn of(report: &'r Report) -> Named<'r> {
        let mut names: std::collections::HashSet<String> = report
            .insurers
            .iter()
            .flat_map(|i| i.files().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        if let Some(layer) = &report.layer {
            names.extend(layer.applied.values().flatten().map(|(f, _)| f.clone()));
        }
        Named { report, names }
    }

    /// Whether `p` (relative to the snapshots directory) is named, or is a snapshot older
    /// than the one named for its insurer.
    fn holds(&self, p: &Path) -> bool {
        let shown = masked(&p.display().to_string());
        if self.names.contains(&shown) {
            return true;
        }
        let newest_named = |insurer: &str| {
            self.report
                .insurers
                .iter()
                .find(|i| i.insurer_number == insurer)
                .and_then(|i| i.file.clone())
        };
        let parts: Vec<&str> = p.iter().filter_map(|c| c.to_str()).collect();
        match parts.as_slice() {
            [_, "changes", _] => false,
            [insurer, _] => newest_named(insurer).is_some_and(|n| shown <= n),
            _ => true,
        }
    }
}

/// What counts as built after a build that started from `before` and published `report`:
/// `before`, and every file of `after` (a scan once it was published) the report names, so
/// that files landing while it ran and taken by it are not built for again, and files
/// landing after it read the delivery are.
fn built_after(before: Files, after: Files, report: &Report) -> Files {
    let named = Named::of(report);
    let mut built = before;
    // Only a file new since `before` can be one the build took that `before` lacks.
    for p in changed(&built, &after) {
        if let Some(id) = after.get(&p).filter(|_| !built.contains_key(&p)) {
            if named.holds(&p) {
                built.insert(p, id);
            }
        }
    }
    built
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nightly::{ChangeOutcome, ChangeReport, Counts, InsurerReport};
    use std::collections::BTreeMap;

    /// An insurer: number, snapshot file, applied change files.
    type Spec<'a> = (&'a str, &'a str, &'a [&'a str]);

    /// A report of generation `id` with these insurers.
    fn report(id: &str, insurers: &[Spec<'_>]) -> Report {
        let insurers = insurers
            .iter()
            .map(|(number, file, changes)| InsurerReport {
                insurer_number: (*number).into(),
                insurer_name: String::new(),
                file: Some((*file).into()),
                snapshot_date: Some("2026-11-01".into()),
                file_bytes: 10,
                file_mtime_ns: 1,
                reused: false,
                encoding: None,
                changes: changes
                    .iter()
                    .map(|c| ChangeReport {
                        file: (*c).into(),
                        outcome: ChangeOutcome::Applied,
                        xxh3: "0123456789abcdef".into(),
                        rows_read: 1,
                        rows_applied: 1,
                        rows_rejected: 0,
                        encoding: None,
                        by_rule: BTreeMap::new(),
                        bytes: 0,
                        mtime_ns: 0,
                    })
                    .collect(),
                state_file: None,
                line_gaps: None,
                counts: Counts::default(),
            })
            .collect();
        Report {
            generation: id.into(),
            built_on: "2026-11-24".into(),
            published: true,
            insurers,
            ..Report::default()
        }
    }

    use std::path::PathBuf;

    fn check(files: &[&str], expected: bool) {
        let live = report(
            "g1",
            &[(
                "01130012",
                "01130012/20261101.csv",
                &["01130012/changes/20261110-090000.csv"],
            )],
        );
        let files: Files = files.iter().map(|f| (PathBuf::from(f), (1, 1))).collect();
        assert_eq!(missing_from(&live, &files), expected, "{files:?}");
    }

    #[test]
    fn a_restart_builds_only_what_the_live_generation_lacks() {
        check(&["insurers.csv", "01130012/20261101.csv"], false);
        check(
            &[
                "01130012/20261001.csv",
                "01130012/changes/20261110-090000.csv",
            ],
            false,
        );
        check(&["01130012/changes/20261111-090000.csv"], true);
        check(&["01130012/20261201.csv"], true);
        check(&["06139992/20261101.csv"], true);
    }

    /// A change generation's report: its base's insurers, and its layers' change files.
    fn layered() -> Report {
        let mut r = report(
            "g2",
            &[(
                "01130012",
                "01130012/20261101.csv",
                &["01130012/changes/20261110-090000.csv"],
            )],
        );
        let applied = [(
            "01130012".to_owned(),
            vec![
                (
                    "01130012/changes/20261110-090000.csv".to_owned(),
                    "0".into(),
                ),
                (
                    "01130012/changes/20261111-090000.csv".to_owned(),
                    "1".into(),
                ),
            ],
        )];
        r.layer = Some(crate::nightly::report::LayerReport {
            applied: applied.into_iter().collect(),
            ..Default::default()
        });
        r
    }

    fn files(paths: &[&str]) -> Files {
        paths.iter().map(|f| (PathBuf::from(f), (1, 1))).collect()
    }

    #[test]
    fn a_restart_over_change_layers_builds_nothing_they_hold() {
        let live = layered();
        let held = [
            "01130012/20261101.csv",
            "01130012/changes/20261111-090000.csv",
        ];
        assert!(!missing_from(&live, &files(&held)));
        let new = ["01130012/changes/20261112-090000.csv"];
        assert!(missing_from(&live, &files(&new)));
    }

    /// Files that land while a build runs: those it took count as built, the rest do not.
    #[test]
    fn what_a_build_took_while_it_ran_is_not_built_again() {
        let before = files(&["01130012/20261101.csv"]);
        let after = files(&[
            "01130012/20261101.csv",
            "01130012/changes/20261111-090000.csv",
            "01130012/changes/20261112-090000.csv",
        ]);
        let built = built_after(before, after, &layered());
        let keys: Vec<_> = built.keys().map(|p| p.display().to_string()).collect();
        assert_eq!(
            keys,
            [
                "01130012/20261101.csv",
                "01130012/changes/20261111-090000.csv"
            ]
        );
    }

    #[test]
    fn change_times_come_from_change_file_names() {
        let t = |p: &str| change_time(Path::new(p)).map(|t| t.to_string());
        assert!(t("01130012/changes/20261110-090000.csv").is_some());
        assert_eq!(t("01130012/20261110.csv"), None);
        assert_eq!(t("01130012/changes/notatime.csv"), None);
    }
}
