//! Whether a build makes a change generation, and of what (`layer`): the live generation's
//! whole report compared with the delivery, insurer by insurer. A change generation is made
//! only when the new inputs are change files of insurers the live generation holds, and its
//! layers are within the fold bound; otherwise the reason goes to the log and the build makes
//! a base. A change file already applied is known by name, size and modification time (as
//! the caller listed it, or asked of the file system), so only new ones are read.

use super::changes::hex;
use super::layer_cards::Touched;
use super::report::{ChangeOutcome, InsurerReport, Report, ReportLine};
use super::report_files::{self, Whole};
use super::run::BuildConfig;
use crate::generations::Store;
use crate::index::MappedIndex;
use crate::snapshot::{self, ChangeInput, Discovery, Identities, InsurerDelivery};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most layers a generation stacks: the build after it folds them into a new base. Lookups
/// do not pay per layer (the layers are folded into two maps at open); opening does, a little
/// per layer file (docs/operations.md, "Change generations": the measurement).
pub const MAX_LAYERS: usize = 256;
/// Most delta segments the layers hold together: each is a file mapped on its own, and a
/// server swapping generations maps both (the kernel's default `vm.max_map_count` is 65,530;
/// the nation's base maps 3,445 files).
pub const FOLD_DELTA_SEGMENTS_MAX: usize = 16_384;
/// The build folds when the layers and their delta segments pass this share of the base's
/// bytes (and [`FOLD_LAYER_BYTES_MIN`]): each layer's persons and cards cost memory at open
/// and a map read per lookup of what they touched.
pub const FOLD_LAYER_SHARE_PERCENT: u64 = 5;
/// Layers smaller than this never make a build fold by their share (a small index's).
pub const FOLD_LAYER_BYTES_MIN: u64 = 1 << 20;

/// A change generation to build: the live generation and what changed since.
pub(super) struct LayerPlan {
    pub(super) live_id: String,
    pub(super) live: MappedIndex,
    /// The live generation's whole report and findings (`report_files`).
    pub(super) report: Report,
    pub(super) lines: Vec<ReportLine>,
    /// Touched insurers.
    pub(super) touched: Vec<Touched>,
    /// The change files each touched insurer's state gains, as (file, xxh3) and (size,
    /// modification time): the layer's own part of `layer.applied`.
    pub(super) applied: BTreeMap<String, Vec<(String, String)>>,
    pub(super) applied_identity: BTreeMap<String, Vec<(u64, u64)>>,
    /// Bytes of change files the plan read.
    pub(super) bytes_read: u64,
}

/// Why a build does not make a layer (said in the log), or the plan for one.
pub(super) fn plan(
    store: &Store,
    cfg: &BuildConfig,
    discovery: &Discovery,
    (listed, last): (&Identities, Option<MappedIndex>),
) -> Result<LayerPlan, String> {
    let started = std::time::Instant::now();
    let live_id = store.current().ok().flatten().ok_or("no live generation")?;
    let live = match last {
        Some(last) => store.open_named_from(&live_id, cfg.key.clone(), last),
        None => store.open_named(&live_id, cfg.key.clone()),
    };
    let live = live.map_err(|e| format!("the live generation cannot be opened ({e})"))?;
    if live.layer_count() >= MAX_LAYERS {
        return Err(format!(
            "the live generation has {} layers",
            live.layer_count()
        ));
    }
    let deltas = live.segment_count() - live.base_insurers();
    if deltas > FOLD_DELTA_SEGMENTS_MAX {
        return Err(format!("its layers hold {deltas} delta segments"));
    }
    let (layer_bytes, total) = (live.layer_bytes(), live.total_bytes());
    if layer_bytes > FOLD_LAYER_BYTES_MIN
        && layer_bytes * 100 > (total - layer_bytes) * FOLD_LAYER_SHARE_PERCENT
    {
        return Err(format!("its layers hold {layer_bytes} of {total} bytes"));
    }
    let opened_ms = started.elapsed().as_millis() as u64;
    let dir = store.generation_dir(&live_id);
    let Whole { report, lines } = report_files::read_whole(&dir)
        .map_err(|e| format!("the live generation's report cannot be read ({e})"))?;
    let report_ms = started.elapsed().as_millis() as u64;
    if !same_kohi(&report, cfg)? {
        return Err("the public-expense registers changed".into());
    }
    let kohi_ms = started.elapsed().as_millis() as u64;
    let base = live.insurers();
    if discovery.deliveries.len() != base.len() {
        return Err("insurers came or went".into());
    }
    let mut deliveries: Vec<&InsurerDelivery> = discovery.deliveries.iter().collect();
    deliveries.sort_by_key(|d| d.insurer.number.to_key());
    let by_number: HashMap<&str, &InsurerReport> = report
        .insurers
        .iter()
        .map(|r| (r.insurer_number.as_str(), r))
        .collect();
    let mut applied = BTreeMap::new();
    let mut applied_identity = BTreeMap::new();
    let mut touched = Vec::new();
    let mut bytes_read = 0;
    for (position, (d, info)) in deliveries.into_iter().zip(base).enumerate() {
        let number = d.insurer.number.as_str();
        let r = by_number
            .get(number)
            .filter(|_| info.number_str() == number)
            .ok_or_else(|| format!("insurer {number} is new"))?;
        if d.insurer.name != info.name || d.insurer.kind.code() != info.entry.kind {
            return Err(format!("insurer {number} was renamed"));
        }
        let snapshot = d.snapshot.as_ref().map(|f| {
            let (bytes, mtime) = listed.of_path(&f.rel_path, &f.path).unwrap_or((0, 0));
            (f.rel_path.to_string(), bytes, mtime)
        });
        let was = r.file.clone().map(|f| (f, r.file_bytes, r.file_mtime_ns));
        if snapshot != was || snapshot.as_ref().is_some_and(|s| s.1 == 0) {
            return Err(format!("insurer {number} has a new snapshot"));
        }
        let so_far = SoFar::of(&report, r);
        if so_far.unchanged(d, listed) {
            continue;
        }
        let known = so_far.known(d, listed);
        let read = ChangeInput::read_all(&d.changes[known..]).map_err(|e| e.to_string())?;
        bytes_read += read.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
        let mut now: Vec<(String, String)> = so_far.files[..known].to_vec();
        now.extend(
            read.iter()
                .map(|c| (c.file.rel_path.to_string(), hex(c.xxh3))),
        );
        if !now.starts_with(&so_far.files) {
            return Err(format!("a change file of insurer {number} changed or went"));
        }
        if now.len() > so_far.files.len() {
            // Only the files the state gains: the layer's report stacks on its parent's.
            let gained = so_far.files.len();
            let mut identities = so_far.identities[..known].to_vec();
            identities.extend(read.iter().map(|c| c.identity));
            applied.insert(number.to_owned(), now[gained..].to_vec());
            applied_identity.insert(number.to_owned(), identities.split_off(gained));
            touched.push(Touched {
                position,
                delivery: d.clone(),
                read,
                known,
                applied_before: so_far.files.len(),
            });
        }
    }
    if touched.is_empty() {
        return Err("no new change files".into());
    }
    // Where a plan's time goes, for whoever measures a watch (RUST_LOG=shikaku=debug).
    let total_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(
        opened_ms,
        report_ms,
        kohi_ms,
        total_ms,
        "planned a change generation"
    );
    Ok(LayerPlan {
        live_id,
        live,
        report,
        lines,
        touched,
        applied,
        applied_identity,
        bytes_read,
    })
}

/// What the live view applied of one insurer's change files, in order: (file, xxh3), and
/// each file's (size, modification time) when it was read.
struct SoFar<'r> {
    files: Cow<'r, [(String, String)]>,
    identities: Cow<'r, [(u64, u64)]>,
}

impl<'r> SoFar<'r> {
    fn of(report: &'r Report, r: &'r InsurerReport) -> SoFar<'r> {
        let number = r.insurer_number.as_str();
        match &report.layer {
            Some(l) => SoFar {
                files: Cow::Borrowed(l.applied.get(number).map_or(&[][..], Vec::as_slice)),
                identities: Cow::Borrowed(
                    l.applied_identity
                        .get(number)
                        .map_or(&[][..], Vec::as_slice),
                ),
            },
            None => {
                let applied = r
                    .changes
                    .iter()
                    .filter(|c| c.outcome == ChangeOutcome::Applied);
                SoFar {
                    files: applied
                        .clone()
                        .map(|c| (c.file.clone(), c.xxh3.clone()))
                        .collect(),
                    identities: applied.map(|c| (c.bytes, c.mtime_ns)).collect(),
                }
            }
        }
    }

    /// How many of the delivery's first change files are the ones applied, by name, size
    /// and modification time (see [`Self::unchanged`]): they need not be read to be known.
    fn known(&self, d: &InsurerDelivery, listed: &Identities) -> usize {
        d.changes
            .iter()
            .zip(self.files.iter().zip(self.identities.iter()))
            .take_while(|(f, ((name, _), &identity))| {
                *f.rel_path == **name && identity != (0, 0) && listed.of(f).ok() == Some(identity)
            })
            .count()
    }

    /// The delivery's change files are the ones applied, by name, size and modification
    /// time: nothing of them to read. A file rewritten in place gets a new modification time
    /// (and is read and hashed again); an unknown identity never matches.
    fn unchanged(&self, d: &InsurerDelivery, listed: &Identities) -> bool {
        d.changes.len() == self.files.len()
            && self.identities.len() == self.files.len()
            && self.known(d, listed) == self.files.len()
    }
}

/// Whether the public-expense registers are the ones the live generation's base read: the
/// same payers, each from the same register and change files (the certificates live in the
/// main file, so any change to them makes a base).
fn same_kohi(report: &Report, cfg: &BuildConfig) -> Result<bool, String> {
    let now_time = snapshot::ChangeTime::for_build(cfg.built_on);
    let k = snapshot::kohi::discover_kohi(&cfg.snapshots, now_time).map_err(|e| e.to_string())?;
    let now: BTreeSet<(String, Option<String>, Vec<String>)> = k
        .registers
        .iter()
        .map(|r| {
            let changes = r.changes.iter().map(|c| c.rel_path.to_string()).collect();
            let file = r.file.as_ref().map(|f| f.rel_path.to_string());
            (r.payer.number.to_string(), file, changes)
        })
        .collect();
    let was: BTreeSet<(String, Option<String>, Vec<String>)> = report
        .kohi
        .iter()
        .flat_map(|k| &k.payers)
        .filter(|p| !p.payer_name.is_empty())
        .map(|p| {
            let changes = p
                .changes
                .iter()
                .filter(|c| c.outcome == super::report::ChangeOutcome::Applied)
                .map(|c| c.file.clone())
                .collect();
            (p.payer_number.clone(), p.file.clone(), changes)
        })
        .collect();
    Ok(now == was)
}
