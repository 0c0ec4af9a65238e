//! A small live generation to answer from: two insurers, four records, built in memory and
//! mapped from a temporary directory (removed once mapped: the mappings stay valid).

use shikaku::domain::*;
use shikaku::format::FormatError;
use shikaku::index::{IndexFiles, MappedIndex};
use shikaku::nightly::{build_in_memory, write_files, InsurerRows};
use shikaku::server::live::Live;
use std::sync::Arc;

/// The date every fixture answers as of.
pub const TODAY: &str = "2026-11-24";
/// The fixture's generation id.
pub const GENERATION: &str = "g20261124-000000-000";

pub fn date(s: &str) -> Date {
    Date::parse(s).expect("fixture date")
}

/// First 11 digits of the members' individual numbers (test data).
pub const MEMBERS: [u64; 3] = [12345678901, 23456789012, 34567890123];

struct Member {
    insurer: &'static str,
    symbol: &'static str,
    number: &'static str,
    branch: u8,
    person: Option<u64>,
    birthdate: &'static str,
    qualified: &'static str,
    disqualified: Option<&'static str>,
    limit: Option<LimitCategory>,
}

const ROWS: [Member; 4] = [
    Member {
        insurer: "33120015",
        symbol: "12",
        number: "3456",
        branch: 0,
        person: Some(MEMBERS[0]),
        birthdate: "1980-01-23",
        qualified: "2015-04-01",
        disqualified: None,
        limit: Some(LimitCategory::A03),
    },
    Member {
        insurer: "33120015",
        symbol: "12",
        number: "3456",
        branch: 1,
        person: Some(MEMBERS[1]),
        birthdate: "2010-06-30",
        qualified: "2015-04-01",
        disqualified: Some("2020-03-31"),
        limit: None,
    },
    Member {
        insurer: "06139992",
        symbol: "記号Ａ",
        number: "１０２",
        branch: 2,
        person: Some(MEMBERS[1]),
        birthdate: "2010-06-30",
        qualified: "2020-04-01",
        disqualified: None,
        limit: None,
    },
    Member {
        insurer: "06139992",
        symbol: "",
        number: "7",
        branch: 0,
        person: None,
        birthdate: "1950-02-28",
        qualified: "2000-01-01",
        disqualified: Some("2026-12-31"),
        limit: Some(LimitCategory::B04),
    },
];

fn record(m: &Member) -> Record {
    Record {
        insurer: InsurerNumber::parse(m.insurer).expect("fixture insurer"),
        symbol: normalize_card_text(m.symbol).expect("fixture symbol"),
        number: normalize_card_text(m.number).expect("fixture number"),
        branch: Branch::new(m.branch).expect("fixture branch"),
        individual_number: m.person.map(IndividualNumber::from_first11),
        name: "山田 太郎".into(),
        name_kana: "ヤマダ タロウ".into(),
        sex: Sex::Male,
        birthdate: date(m.birthdate),
        relationship: Relationship::Insured,
        qualification_date: date(m.qualified),
        disqualification_date: m.disqualified.map(date),
        reason_of_loss: m.disqualified.map(|_| ReasonOfLoss::OtherInsurance),
        copay_ratio: CopayRatio::new(30).expect("fixture copay"),
        limit_category: m.limit,
    }
}

/// The fixture's files, in memory.
pub fn files() -> Result<IndexFiles<Vec<u8>>, FormatError> {
    let insurers = [
        ("06139992", "健康保険組合", InsurerKind::Kumiai),
        ("33120015", "地方職員共済組合", InsurerKind::Kyosai),
    ];
    let rows = insurers
        .iter()
        .map(|&(number, name, kind)| InsurerRows {
            number: InsurerNumber::parse(number).expect("fixture insurer"),
            name: name.into(),
            kind,
            snapshot_date: date("2026-11-01"),
            file: format!("{number}/20261101.csv"),
            rows: ROWS
                .iter()
                .enumerate()
                .filter(|(_, m)| m.insurer == number)
                .map(|(i, m)| (record(m), i as u32 + 2))
                .collect(),
            persons: Vec::new(),
        })
        .collect();
    build_in_memory(rows, &PersonKey::demo(), date(TODAY), GENERATION)
}

/// The fixture as a live generation, as the server holds one.
pub fn live() -> Arc<Live> {
    let files = files().expect("fixture builds");
    // One directory per call: tests in one process call this at the same time, and each
    // removes its directory once mapped.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("shikaku-fuzz-{}-{call}", std::process::id()));
    let path = write_files(&files, &dir).expect("fixture written");
    let index = MappedIndex::open_file(&path, PersonKey::demo()).expect("fixture opens");
    // Mapped: the files can go (Linux keeps a mapped file's pages until it is unmapped).
    let _ = std::fs::remove_dir_all(&dir);
    Arc::new(Live::new(index).expect("fixture is live"))
}
