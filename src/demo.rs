//! `shikaku demo`: builds the built-in demo data set (a small synthetic delivery made by
//! `shikaku-datagen`, with one of every defect, in `data-gen/demo/`) and picks queries to try
//! from its workload, one per validity, with the answers the contract demands.

use crate::domain::{Date, PersonKey};
use crate::nightly::run::{run, BuildConfig, BuildError, BuildOutcome};
use std::path::{Path, PathBuf};

/// Where the built-in demo delivery lives in a checkout.
pub fn builtin_snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data-gen")
        .join("demo")
}

/// The demo's claims file (a month of one synthetic clinic, every verdict of the claims
/// check in it), beside the built-in delivery.
pub fn builtin_claims() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data-gen")
        .join("demo-claims")
        .join("0110000007")
        .join("RECEIPTC.UKE")
}

/// One query to try, with the validity the contract demands for it.
#[derive(Debug, Clone)]
pub struct Example {
    pub expected: u8,
    pub fields: Vec<(String, String)>,
    pub kind: String,
}

impl Example {
    fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The query as a `redis-cli` command line.
    pub fn redis_cli(&self, port: u16) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        match self.kind.as_str() {
            "card" => format!(
                "redis-cli -p {port} ELIG.CARD {} {} {} {} {} {}",
                q(self.get("insurer_number")),
                q(self.get("symbol")),
                q(self.get("number")),
                q(self.get("branch")),
                q(self.get("birthdate")),
                q(self.get("date"))
            ),
            "kohi" => format!(
                "redis-cli -p {port} ELIG.KOHI {} {} {} {}",
                q(self.get("payer_number")),
                q(self.get("recipient_number")),
                q(self.get("birthdate")),
                q(self.get("date"))
            ),
            _ => format!(
                "redis-cli -p {port} ELIG.PERSON {} {}",
                q(self.get("individual_number")),
                q(self.get("date"))
            ),
        }
    }

    /// The query as a `curl` command line against the HTTP port.
    pub fn curl(&self, port: u16) -> String {
        let keys: &[&str] = match self.kind.as_str() {
            "card" => &[
                "insurer_number",
                "symbol",
                "number",
                "branch",
                "birthdate",
                "date",
            ],
            "kohi" => &[
                "payer_number",
                "recipient_number",
                "birthdate",
                "date",
                "institution_code",
            ],
            _ => &["individual_number", "date"],
        };
        let body: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .filter(|k| !self.get(k).is_empty())
            .map(|k| ((*k).to_owned(), self.get(k).into()))
            .collect();
        let body = serde_json::Value::Object(body)
            .to_string()
            .replace('\'', "'\\''");
        format!("curl -s localhost:{port}/v1/{} -d '{body}'", self.kind)
    }
}

/// Picks, from a workload `queries.csv`, the first card query of each validity and the first
/// person query that is eligible.
pub fn examples(queries: &Path) -> anyhow::Result<Vec<Example>> {
    let mut rdr = csv::Reader::from_path(queries)?;
    let headers: Vec<String> = rdr.headers()?.iter().map(str::to_owned).collect();
    let mut picked: Vec<Example> = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        let fields: Vec<(String, String)> = headers
            .iter()
            .cloned()
            .zip(rec.iter().map(str::to_owned))
            .collect();
        let get = |k: &str| {
            fields
                .iter()
                .find(|(h, _)| h == k)
                .map_or("", |(_, v)| v.as_str())
                .to_owned()
        };
        let (kind, expected) = (get("kind"), get("expected").parse().unwrap_or(0));
        let wanted = match kind.as_str() {
            "card" => !picked
                .iter()
                .any(|e| e.kind == "card" && e.expected == expected),
            _ => expected == 1 && !picked.iter().any(|e| e.kind == "person"),
        };
        if wanted {
            picked.push(Example {
                expected,
                fields,
                kind,
            });
        }
    }
    picked.sort_by_key(|e| (e.kind != "card", e.expected));
    Ok(picked)
}

/// A public-expense query to try, from the delivery's registers (`kohi/`): the first
/// certificate of the first payer's newest list, on the list's date when the certificate
/// covers it (else on its first day), asked by its first designated institution if it names
/// any. `None` for a delivery without registers.
pub fn kohi_example(snapshots: &Path) -> anyhow::Result<Option<Example>> {
    use anyhow::Context;
    let kohi = snapshots.join("kohi");
    let payers = kohi.join("payers.csv");
    if !payers.is_file() {
        return Ok(None);
    }
    let first_payer = csv::Reader::from_path(&payers)?
        .records()
        .next()
        .transpose()?
        .and_then(|r| r.get(0).map(str::to_owned));
    let Some(payer) = first_payer else {
        return Ok(None);
    };
    let mut lists: Vec<PathBuf> = std::fs::read_dir(kohi.join(&payer))
        .with_context(|| format!("the demo register of payer {payer}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    lists.sort();
    let Some(list) = lists.last() else {
        return Ok(None);
    };
    let mut rdr = csv::Reader::from_path(list)?;
    let headers = rdr.headers()?.clone();
    let Some(row) = rdr.records().next().transpose()? else {
        return Ok(None);
    };
    let get = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .and_then(|i| row.get(i))
            .unwrap_or("")
            .to_owned()
    };
    let (from, to) = (get("valid_from"), get("valid_to"));
    let listed = list
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| Date::parse(s).ok())
        .map(|d| d.to_string())
        .unwrap_or_default();
    // ISO dates compare as strings.
    let covered = from <= listed && (to.is_empty() || listed <= to);
    let date = if covered { listed } else { from };
    let institution = get("institutions")
        .split(';')
        .next()
        .unwrap_or("")
        .to_owned();
    let fields = [
        ("payer_number", get("payer_number")),
        ("recipient_number", get("recipient_number")),
        ("birthdate", get("birthdate")),
        ("date", date),
        ("institution_code", institution),
    ];
    Ok(Some(Example {
        expected: 1,
        fields: fields.map(|(k, v)| (k.to_owned(), v)).to_vec(),
        kind: "kohi".to_owned(),
    }))
}

/// Generations the demo keeps in its data directory.
pub const DEMO_KEEP_GENERATIONS: usize = 3;

/// Builds the demo delivery into `data`, then removes all but its last
/// [`DEMO_KEEP_GENERATIONS`] generations. A refusal by the delivery guard is not fatal: the
/// generation already live keeps serving.
pub fn build(
    snapshots: &Path,
    data: &Path,
    key: PersonKey,
) -> anyhow::Result<Option<BuildOutcome>> {
    let cfg = BuildConfig {
        snapshots: snapshots.to_owned(),
        data: data.to_owned(),
        key: key.clone(),
        built_on: Date::today_jst(),
        max_drop_percent: crate::nightly::run::DEFAULT_MAX_DROP_PERCENT,
        accept: Vec::new(),
        reuse: Default::default(),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        signing: None,
    };
    match run(&cfg) {
        Ok(out) => {
            // Each run builds a generation: keep the last few, not every run's.
            let store = crate::generations::Store::new(data);
            let _lock = store.lock()?;
            store.gc(DEMO_KEEP_GENERATIONS, key)?;
            Ok(Some(out))
        }
        Err(e @ BuildError::Refused { .. }) => {
            tracing::warn!("{e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
