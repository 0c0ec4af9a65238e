//! Synthetic population shared by the benchmarks (deterministic, no files).

#![allow(dead_code)]

use shikaku::domain::*;
use shikaku::nightly::InsurerRows;

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        // splitmix64: fast, deterministic, good enough for synthetic keys.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub const TODAY: &str = "2026-11-24";

pub fn day(s: &str) -> Date {
    Date::parse(s).unwrap()
}

/// Synthesizes `persons` people in families on cards, spread Zipf-like over 1,000 insurers.
pub fn population(persons: usize) -> Vec<InsurerRows> {
    let mut rng = Rng(7);
    let insurer_count = 1_000usize;
    let mut insurers: Vec<InsurerRows> = (0..insurer_count)
        .map(|i| InsurerRows {
            number: InsurerNumber::from_body(&format!("06{:05}", 10_000 + i)).unwrap(),
            name: format!("健康保険組合{i}"),
            kind: InsurerKind::Kumiai,
            snapshot_date: day(TODAY),
            file: String::new(),
            rows: Vec::new(),
            persons: Vec::new(),
        })
        .collect();
    let today = day(TODAY);
    let mut made = 0usize;
    let mut card = 0u64;
    while made < persons {
        // Zipf-ish insurer choice: squares skew toward low indexes.
        let u = rng.below(1_000_000) as f64 / 1_000_000.0;
        let ins = ((u * u) * insurer_count as f64) as usize;
        let family = 1 + rng.below(4) as usize;
        card += 1;
        let symbol = format!("{}", 1 + rng.below(9_999));
        let number = format!("{}", card);
        for branch in 0..family {
            let person = made as u64;
            let birth = Date::from_days(-20_000 + rng.below(27_000) as i32);
            let qual = birth
                .max(today.add_days(-8_000))
                .add_days(rng.below(2_000) as i32);
            let lost = rng.below(5) == 0;
            let record = Record {
                insurer: insurers[ins].number,
                symbol: symbol.clone(),
                number: number.clone(),
                branch: Branch::new(branch as u8).unwrap(),
                individual_number: (rng.below(5) != 0)
                    .then(|| IndividualNumber::from_first11(10_000_000_000 + person)),
                name: "山田 太郎".into(),
                name_kana: "ヤマダ タロウ".into(),
                sex: if branch % 2 == 0 {
                    Sex::Male
                } else {
                    Sex::Female
                },
                birthdate: birth,
                relationship: if branch == 0 {
                    Relationship::Insured
                } else {
                    Relationship::Dependant
                },
                qualification_date: qual,
                disqualification_date: lost.then(|| today.add_days(-(rng.below(300) as i32) - 1)),
                reason_of_loss: lost.then_some(ReasonOfLoss::OtherInsurance),
                copay_ratio: CopayRatio::new(30).unwrap(),
                limit_category: None,
            };
            let line = insurers[ins].rows.len() as u32 + 2;
            insurers[ins].rows.push((record, line));
            made += 1;
        }
    }
    insurers
}
