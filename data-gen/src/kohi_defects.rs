//! Injects the register rules into the public-expense registers, row by row at the requested
//! rate and, in the first chunk, one of each kind up front: K1–K6 add a broken copy of a real
//! certificate (rejected; the real row stays), W1 and X1 alter a real row that is still
//! indexed, a duplicate writes a row twice.

use crate::kohi::{payer_number, payer_parts, CertRow, KRule};
use crate::population::ChunkGen;
use crate::render::individual_text;
use rand::Rng;
use shikaku::domain::Date;
use shikaku::snapshot::kohi::KohiColumn as KCol;

/// A holder's number, birthdate and sex, lent to another certificate for X1.
#[derive(Clone, Copy)]
struct Donor {
    number: u64,
    birth: Date,
    sex: u8,
    person: u32,
}

/// Applies defects to the chunk's certificates (the rows as generated).
pub fn inject(g: &mut ChunkGen, rows: &mut Vec<CertRow>, rate: f64, first_chunk: bool) {
    if rate <= 0.0 {
        return;
    }
    let mut pending: Vec<KRule> = if first_chunk {
        KRule::ALL.to_vec()
    } else {
        Vec::new()
    };
    let mut donor: Option<Donor> = None;
    for r in 0..rows.len() {
        if !pending.is_empty() {
            if let Some(i) = (0..pending.len()).find(|&i| apply(pending[i], g, rows, r, donor)) {
                pending.remove(i);
            }
        } else if g.rng.gen_bool(rate.min(1.0)) {
            let kind = KRule::ALL[g.rng.gen_range(0..KRule::ALL.len())];
            apply(kind, g, rows, r, donor);
        }
        let row = &rows[r];
        if let (Some(number), None) = (row.cert.indnum, row.tag) {
            donor = Some(Donor {
                number,
                birth: row.cert.birth,
                sex: row.cert.sex,
                person: row.cert.person,
            });
        }
    }
}

fn apply(
    kind: KRule,
    g: &mut ChunkGen,
    rows: &mut Vec<CertRow>,
    r: usize,
    donor: Option<Donor>,
) -> bool {
    if rows[r].tag.is_some() || !rows[r].original {
        return false;
    }
    if kind.rejects() {
        let Some(over) = broken_field(kind, g, &rows[r]) else {
            return false;
        };
        let mut bad = rows[r].clone();
        bad.over = Some(over);
        bad.tag = Some(kind);
        bad.original = false;
        rows.push(bad);
        return true;
    }
    let row = &mut rows[r];
    match kind {
        KRule::W1 => {
            let Some(first11) = row.cert.indnum else {
                return false;
            };
            let mut text = individual_text(first11);
            let check = text.pop().map_or(0, |c| c as u8 - b'0');
            text.push(char::from(b'0' + (check + 1) % 10));
            row.over = Some((KCol::IndividualNumber, text));
        }
        KRule::X1 => {
            let Some(d) = donor else {
                return false;
            };
            let differs = d.birth != row.cert.birth || d.sex != row.cert.sex;
            if !differs || d.person == row.cert.person || row.cert.indnum == Some(d.number) {
                return false;
            }
            row.cert.indnum = Some(d.number);
        }
        _ => row.dup = true,
    }
    row.tag = Some(kind);
    true
}

/// The raw text of the cell a K rule finds wrong; several variants per rule, among them the
/// bad inputs a register meets: a payer number in the recipient column, a 30-character local
/// recipient number, 33 institutions, a malformed institution code or copay limit.
fn broken_field(kind: KRule, g: &mut ChunkGen, row: &CertRow) -> Option<(KCol, String)> {
    let c = &row.cert;
    let national = payer_parts(c.payer).1.designated();
    let v = g.rng.gen_range(0..3);
    Some(match kind {
        KRule::K1 => {
            let own = payer_number(c.payer).as_str().to_string();
            if v == 0 {
                // A valid number, but the next program's of the municipality.
                let (m, _) = payer_parts(c.payer);
                let other = (c.payer + 1) % 7 + (m * 7) as u32;
                (KCol::PayerNumber, payer_number(other).as_str().to_string())
            } else {
                (KCol::PayerNumber, off_by_one(&own))
            }
        }
        KRule::K2 => match (national, v) {
            (true, 0) => (KCol::RecipientNumber, off_by_one(&c.recipient)),
            (_, 1) => (
                KCol::RecipientNumber,
                if national {
                    payer_number(c.payer).as_str().to_string()
                } else {
                    format!("{}!", c.recipient)
                },
            ),
            (false, 0) => (KCol::RecipientNumber, "1234567890".repeat(3)),
            _ => (KCol::RecipientNumber, String::new()),
        },
        KRule::K3 => match v {
            0 => (KCol::Birthdate, "2021-02-30".into()),
            1 => {
                let future = g.d.add_days(g.rng.gen_range(3650..7300));
                (KCol::Birthdate, future.to_string())
            }
            _ => (KCol::Birthdate, "1868-01-24".into()),
        },
        KRule::K4 => match v {
            0 => (KCol::ValidFrom, "2020-13-01".into()),
            1 => {
                let before = c.birth.add_days(-g.rng.gen_range(1..1000));
                (KCol::ValidFrom, before.to_string())
            }
            _ => (KCol::ValidFrom, String::new()),
        },
        KRule::K5 => {
            let before = c.from.add_days(-g.rng.gen_range(1..100));
            (KCol::ValidTo, before.to_string())
        }
        _ => match g.rng.gen_range(0..5) {
            0 => (
                KCol::Institutions,
                off_by_one(&crate::claims_files::institution_code(7)),
            ),
            1 => (KCol::CopayLimitYen, "-1".into()),
            2 => (KCol::CopayLimitYen, "10000001".into()),
            3 => {
                let codes: Vec<String> =
                    (0..33).map(crate::claims_files::institution_code).collect();
                (KCol::Institutions, codes.join(";"))
            }
            _ => (KCol::Sex, "9".into()),
        },
    })
}

/// The last digit (the check digit) changed: the number no longer checks.
pub(crate) fn off_by_one(digits: &str) -> String {
    let mut s = digits.to_string();
    let last = s.pop().map_or(0, |c| c as u8 - b'0');
    s.push(char::from(b'0' + (last + 1) % 10));
    s
}
