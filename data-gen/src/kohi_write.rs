//! Writing the public-expense registers: `kohi/payers.csv` and one
//! `kohi/<payer_number>/<YYYYMMDD>.csv` per payer, each payer with its own habits (encoding,
//! line ends, date style, half-width kana, full-width digits, quoting, column order), appended
//! chunk by chunk through the snapshot writer.

use crate::kohi::{payer_name, payer_number, CertRow};
use crate::render::{date_text, individual_text, name_of, push_digits, to_halfwidth_kana};
use crate::universe::{DateStyle, Encoding};
use crate::writer::{InsOut, Writer};
use anyhow::{Context, Result};
use encoding_rs::SHIFT_JIS;
use rand::seq::SliceRandom;
use rand::Rng;
use shikaku::domain::Date;
use shikaku::snapshot::kohi::KohiColumn as KCol;
use std::path::Path;

/// The RNG streams of the payers' habits (apart from every chunk's).
const HABIT_STREAM: u64 = u64::MAX / 4;

/// How one payer's system writes its register.
#[derive(Debug, Clone)]
pub struct KHabit {
    encoding: Encoding,
    crlf: bool,
    dates: DateStyle,
    halfwidth_kana: bool,
    fullwidth: bool,
    quote_all: bool,
    columns: Vec<KCol>,
}

impl KHabit {
    pub fn of(seed: u64, payer: u32) -> KHabit {
        let mut rng = crate::rng_for(seed, HABIT_STREAM + u64::from(payer));
        let encoding = match rng.gen_range(0..20) {
            0..=10 => Encoding::Cp932,
            11..=17 => Encoding::Utf8,
            _ => Encoding::Utf8Bom,
        };
        let dates = match rng.gen_range(0..20) {
            0..=7 => DateStyle::Iso,
            8..=12 => DateStyle::Compact,
            13..=16 => DateStyle::WarekiLetter,
            _ => DateStyle::WarekiCode,
        };
        let mut columns = KCol::ALL.to_vec();
        if rng.gen_bool(0.2) {
            columns.shuffle(&mut rng);
        }
        KHabit {
            encoding,
            crlf: rng.gen_bool(0.7),
            dates,
            halfwidth_kana: rng.gen_bool(0.1),
            fullwidth: rng.gen_bool(0.05),
            quote_all: rng.gen_bool(0.1),
            columns,
        }
    }

    fn eol(&self) -> &'static str {
        if self.crlf {
            "\r\n"
        } else {
            "\n"
        }
    }

    fn encode(&self, line: &str) -> Vec<u8> {
        match self.encoding {
            Encoding::Cp932 => SHIFT_JIS.encode(line).0.into_owned(),
            _ => line.as_bytes().to_vec(),
        }
    }

    fn header(&self) -> Vec<u8> {
        let mut line = String::new();
        if self.encoding == Encoding::Utf8Bom {
            line.push('\u{FEFF}');
        }
        let names: Vec<&str> = self.columns.iter().map(|c| c.name()).collect();
        self.push_cells(&mut line, names.into_iter());
        self.encode(&line)
    }

    fn push_cells<'s>(&self, line: &mut String, cells: impl Iterator<Item = &'s str>) {
        for (i, text) in cells.enumerate() {
            if i > 0 {
                line.push(',');
            }
            if self.quote_all || text.contains([',', '"']) {
                line.push('"');
                line.push_str(&text.replace('"', "\"\""));
                line.push('"');
            } else {
                line.push_str(text);
            }
        }
        line.push_str(self.eol());
    }
}

/// The text of one cell as the payer writes it.
fn cell(h: &KHabit, row: &CertRow, col: KCol) -> String {
    if let Some((c, text)) = &row.over {
        if *c == col {
            return text.clone();
        }
    }
    let c = &row.cert;
    let digits = |s: &str| {
        let mut out = String::new();
        push_digits(&mut out, s, h.fullwidth);
        out
    };
    let date = |d: Date| digits(&date_text(d, h.dates));
    match col {
        KCol::PayerNumber => payer_number(c.payer).as_str().to_string(),
        KCol::RecipientNumber => digits(&c.recipient),
        KCol::IndividualNumber => c.indnum.map(individual_text).unwrap_or_default(),
        KCol::Name => name_of(c.family, c.given).0,
        KCol::NameKana => {
            let kana = name_of(c.family, c.given).1;
            if h.halfwidth_kana {
                to_halfwidth_kana(&kana)
            } else {
                kana
            }
        }
        KCol::Sex => c.sex.to_string(),
        KCol::Birthdate => date(c.birth),
        KCol::ValidFrom => date(c.from),
        KCol::ValidTo => c.to.map(date).unwrap_or_default(),
        KCol::CopayLimitYen => c.copay.map(|y| y.to_string()).unwrap_or_default(),
        KCol::Institutions => c
            .institutions
            .iter()
            .map(|&i| crate::claims_files::institution_code(i))
            .collect::<Vec<_>>()
            .join(";"),
    }
}

/// Renders a chunk's register rows grouped by payer (`InsOut::insurer` is the payer's
/// index), in row order, with the defects' marks.
pub fn render(seed: u64, rows: &[CertRow]) -> Vec<InsOut> {
    let mut outs: Vec<InsOut> = Vec::new();
    let mut habits: Vec<KHabit> = Vec::new();
    for row in rows {
        let payer = row.cert.payer;
        let slot = match outs.iter().position(|o| o.insurer == payer) {
            Some(s) => s,
            None => {
                outs.push(InsOut {
                    insurer: payer,
                    ..InsOut::default()
                });
                habits.push(KHabit::of(seed, payer));
                outs.len() - 1
            }
        };
        let h = &habits[slot];
        let mut line = String::with_capacity(200);
        let cells: Vec<String> = h.columns.iter().map(|&c| cell(h, row, c)).collect();
        h.push_cells(&mut line, cells.iter().map(String::as_str));
        let bytes = h.encode(&line);
        let out = &mut outs[slot];
        out.bytes.extend_from_slice(&bytes);
        if row.dup {
            out.bytes.extend_from_slice(&bytes);
            out.lines += 1;
        }
        if let Some(rule) = row.tag {
            let field = row.over.as_ref().map(|(c, _)| c.name());
            out.marks.push((out.lines, rule.as_str(), field));
        }
        out.lines += 1;
    }
    outs.sort_by_key(|o| o.insurer);
    outs
}

/// `kohi/<payer_number>/<YYYYMMDD>.csv`.
pub fn register_rel(payer: u32, date: Date) -> String {
    format!(
        "kohi/{}/{}.csv",
        payer_number(payer).as_str(),
        date.to_compact()
    )
}

/// Writes `kohi/payers.csv` and creates every payer's register with its header, in payer
/// order (the writer's file `i` is payer `i`).
pub fn create(root: &Path, seed: u64, payers: u32, date: Date) -> Result<Writer> {
    let dir = root.join("kohi");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut list = String::from("payer_number,payer_name\n");
    let mut w = Writer::empty();
    for i in 0..payers {
        list.push_str(&format!("{},{}\n", payer_number(i).as_str(), payer_name(i)));
        w.add_file(root, register_rel(i, date), KHabit::of(seed, i).header())?;
    }
    let path = dir.join("payers.csv");
    std::fs::write(&path, list).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(w)
}
