//! A small delivery for the change-file tests (tests/changes.rs, layers.rs, layer_cards.rs):
//! two insurers, snapshot rows and change rows of numbered cards, and the build's settings.

#![allow(dead_code)]

use shikaku::domain::{Date, PersonKey};
use shikaku::nightly::run::{BuildConfig, Reuse};
use std::fs;
use std::path::Path;

pub const HEADER: &str = "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category";
pub const KYOSAI: &str = "33120015";
pub const KUMIAI: &str = "06139992";
pub const BUILT_ON: &str = "2026-11-24";

/// Person `p`'s individual number (valid check digit), as a snapshot row gives it.
pub fn person(p: u32) -> String {
    shikaku::domain::IndividualNumber::from_first11(30000000000 + u64::from(p) * 7919)
        .expose_digits()
        .iter()
        .map(|&b| b as char)
        .collect()
}

/// The key columns of card `number` alone, as a `lose` or `delete` may give them.
pub fn keyed(kind: &str, insurer: &str, number: u32, qual: &str, disq: &str) -> String {
    format!("{insurer},12,{number},00,,,,,,,{qual},{disq},,,,{kind}")
}

pub fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// `insurers.csv` naming the two insurers.
pub fn write_insurers(snap: &Path) {
    write(
        &snap.join("insurers.csv"),
        &format!("insurer_number,insurer_name,kind\n{KYOSAI},共済,kyosai\n{KUMIAI},組合,kumiai\n"),
    );
}

/// A build of `snap` into `data` on [`BUILT_ON`], with no delivery guard.
pub fn config(snap: &Path, data: &Path, reuse: Reuse) -> BuildConfig {
    BuildConfig {
        snapshots: snap.to_owned(),
        data: data.to_owned(),
        key: PersonKey::demo(),
        built_on: Date::parse(BUILT_ON).unwrap(),
        max_drop_percent: 100.0,
        accept: Vec::new(),
        reuse,
        progress: false,
        signing: None,
    }
}

/// The whole `rejects.csv` of the generation in `dir` (a change generation's own lists only
/// what its layer added).
pub fn whole_rejects(dir: &Path) -> String {
    String::from_utf8(shikaku::nightly::report_files::whole_rejects(dir).unwrap()).unwrap()
}

/// The answer to `q` on [`BUILT_ON`] from the live generation of `data`, without its
/// generation id (so two data directories' answers compare).
pub fn ask(data: &Path, q: &shikaku::query::Query) -> String {
    let index = shikaku::generations::Store::new(data)
        .open_current(PersonKey::demo())
        .unwrap();
    let mut out = Vec::new();
    shikaku::query::answer::answer(&index, q, Date::parse(BUILT_ON).unwrap(), &mut out);
    String::from_utf8(out)
        .unwrap()
        .replace(index.generation(), "")
}

/// A card query of card `number` (symbol 12, branch 00, born 1980-01-23) on [`BUILT_ON`].
pub fn card(insurer: &str, number: u32) -> shikaku::query::Query {
    use shikaku::query::{CardFields, CardQuery, Query};
    Query::Card(
        CardQuery::parse(&CardFields {
            insurer_number: Some(insurer),
            symbol: Some("12"),
            number: Some(&number.to_string()),
            branch: Some("00"),
            birthdate: Some("1980-01-23"),
            date: Some(BUILT_ON),
            limit_consent: false,
        })
        .unwrap(),
    )
}

/// A person query of person `p` on [`BUILT_ON`].
pub fn person_q(p: u32) -> shikaku::query::Query {
    use shikaku::query::{PersonFields, PersonQuery, Query};
    let n = person(p);
    Query::Person(
        PersonQuery::parse(&PersonFields {
            individual_number: Some(&n),
            date: Some(BUILT_ON),
            limit_consent: false,
        })
        .unwrap(),
    )
}

/// [`config`], signing with the key in `key_path` (`shikaku::signing::new_key_file`).
pub fn signed_config(snap: &Path, data: &Path, key_path: &Path, reuse: Reuse) -> BuildConfig {
    BuildConfig {
        signing: Some(std::sync::Arc::new(
            shikaku::signing::SigningKey::load(key_path).unwrap(),
        )),
        ..config(snap, data, reuse)
    }
}
