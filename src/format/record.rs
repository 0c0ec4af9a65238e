//! A member record in its fixed 48-byte form, and where each field lies in it.

use super::*;
use crate::domain::{
    Branch, CopayRatio, Date, LimitCategory, PersonHash, ReasonOfLoss, Relationship, Sex,
};

/// Flags in byte `REC_FLAGS` (32) of a record.
pub const RECORD_HAS_PERSON: u8 = 1;

/// A member record in its fixed 48-byte form. Strings live in the segment's heap at
/// `heap_offset`, in the order symbol, number, name, name_kana.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    pub person: Option<PersonHash>,
    pub heap_offset: u32,
    pub symbol_bytes: u8,
    pub number_bytes: u8,
    pub name_bytes: u16,
    pub kana_bytes: u16,
    pub branch: Branch,
    pub sex: Sex,
    pub relationship: Relationship,
    pub copay_ratio: CopayRatio,
    pub reason_of_loss: Option<ReasonOfLoss>,
    pub limit_category: Option<LimitCategory>,
    pub birthdate: Date,
    pub qualification_date: Date,
    pub disqualification_date: Option<Date>,
    /// Line of the row in its snapshot file, so reports can point at it.
    pub line: u32,
}

// Byte offsets inside a record.
pub const REC_PERSON: usize = 0;
pub const REC_HEAP: usize = 16;
pub const REC_SYMBOL_LEN: usize = 20;
pub const REC_NUMBER_LEN: usize = 21;
pub const REC_NAME_LEN: usize = 22;
pub const REC_KANA_LEN: usize = 24;
pub const REC_BRANCH: usize = 26;
pub const REC_SEX: usize = 27;
pub const REC_RELATIONSHIP: usize = 28;
pub const REC_COPAY: usize = 29;
pub const REC_REASON: usize = 30;
pub const REC_LIMIT: usize = 31;
pub const REC_FLAGS: usize = 32;
pub const REC_LINE: usize = 33; // 3 bytes: line numbers up to 16,777,215
pub const REC_BIRTH: usize = 36;
pub const REC_QUAL: usize = 40;
pub const REC_DISQ: usize = 44;
/// Largest line number a record can carry (24 bits).
pub const MAX_LINE: u32 = (1 << 24) - 1;

impl RecordEntry {
    pub fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut b = [0u8; RECORD_BYTES];
        if let Some(p) = self.person {
            b[REC_PERSON..REC_PERSON + 16].copy_from_slice(&p.0);
            b[REC_FLAGS] |= RECORD_HAS_PERSON;
        }
        b[REC_HEAP..REC_HEAP + 4].copy_from_slice(&self.heap_offset.to_le_bytes());
        b[REC_SYMBOL_LEN] = self.symbol_bytes;
        b[REC_NUMBER_LEN] = self.number_bytes;
        b[REC_NAME_LEN..REC_NAME_LEN + 2].copy_from_slice(&self.name_bytes.to_le_bytes());
        b[REC_KANA_LEN..REC_KANA_LEN + 2].copy_from_slice(&self.kana_bytes.to_le_bytes());
        b[REC_BRANCH] = self.branch.value();
        b[REC_SEX] = self.sex.code();
        b[REC_RELATIONSHIP] = self.relationship.code();
        b[REC_COPAY] = self.copay_ratio.percent();
        b[REC_REASON] = self.reason_of_loss.map_or(0, |r| r.code());
        b[REC_LIMIT] = self.limit_category.map_or(0, |l| l.code());
        let line = self.line.min(MAX_LINE).to_le_bytes();
        b[REC_LINE..REC_LINE + 3].copy_from_slice(&line[..3]);
        b[REC_BIRTH..REC_BIRTH + 4].copy_from_slice(&self.birthdate.days().to_le_bytes());
        b[REC_QUAL..REC_QUAL + 4].copy_from_slice(&self.qualification_date.days().to_le_bytes());
        let disq = self.disqualification_date.map_or(NO_DATE, Date::days);
        b[REC_DISQ..REC_DISQ + 4].copy_from_slice(&disq.to_le_bytes());
        b
    }

    /// Decodes and validates every code (pair assertion for the writer, and the slow path
    /// for tools; the query path reads single fields through `index::RecordView`).
    pub fn decode(b: &[u8]) -> Result<RecordEntry, FormatError> {
        let bad = |what: &str| FormatError::Malformed(format!("record has an invalid {what}"));
        let person = (b[REC_FLAGS] & RECORD_HAS_PERSON != 0)
            .then(|| PersonHash(b[REC_PERSON..REC_PERSON + 16].try_into().expect("16 bytes")));
        let opt_code = |code: u8| (code != 0).then_some(code);
        let disq = i32_at(b, REC_DISQ);
        Ok(RecordEntry {
            person,
            heap_offset: u32_at(b, REC_HEAP),
            symbol_bytes: b[REC_SYMBOL_LEN],
            number_bytes: b[REC_NUMBER_LEN],
            name_bytes: u16_at(b, REC_NAME_LEN),
            kana_bytes: u16_at(b, REC_KANA_LEN),
            branch: Branch::new(b[REC_BRANCH]).ok_or_else(|| bad("branch"))?,
            sex: Sex::from_code(b[REC_SEX]).ok_or_else(|| bad("sex"))?,
            relationship: Relationship::from_code(b[REC_RELATIONSHIP])
                .ok_or_else(|| bad("relationship"))?,
            copay_ratio: CopayRatio::new(b[REC_COPAY]).ok_or_else(|| bad("copay ratio"))?,
            reason_of_loss: match opt_code(b[REC_REASON]) {
                None => None,
                Some(c) => Some(ReasonOfLoss::from_code(c).ok_or_else(|| bad("reason of loss"))?),
            },
            limit_category: match opt_code(b[REC_LIMIT]) {
                None => None,
                Some(c) => Some(LimitCategory::from_code(c).ok_or_else(|| bad("limit category"))?),
            },
            line: u32::from_le_bytes([b[REC_LINE], b[REC_LINE + 1], b[REC_LINE + 2], 0]),
            birthdate: Date::from_days(i32_at(b, REC_BIRTH)),
            qualification_date: Date::from_days(i32_at(b, REC_QUAL)),
            disqualification_date: (disq != NO_DATE).then(|| Date::from_days(disq)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = RecordEntry {
            person: Some(PersonHash([9; 16])),
            heap_offset: 123_456,
            symbol_bytes: 2,
            number_bytes: 4,
            name_bytes: 13,
            kana_bytes: 21,
            branch: Branch::new(1).unwrap(),
            sex: Sex::Female,
            relationship: Relationship::Dependant,
            copay_ratio: CopayRatio::new(30).unwrap(),
            reason_of_loss: Some(ReasonOfLoss::Other),
            limit_category: Some(LimitCategory::B10),
            birthdate: Date::parse("1980-01-23").unwrap(),
            qualification_date: Date::parse("2015-04-01").unwrap(),
            disqualification_date: None,
            line: 1_234_567,
        };
        assert_eq!(RecordEntry::decode(&r.encode()), Ok(r));
    }
}
