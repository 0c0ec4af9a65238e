//! `RecordView`: a record read in place from a segment's bytes.

use super::prefetch::{prefetch, prefetch_lines};
use super::InsurerInfo;
use crate::domain::{covers, Branch, Date, LimitCategory, PersonHash, ReasonOfLoss, Record};
use crate::format::{self, *};

/// A record borrowed from the index bytes. Field reads decode on demand.
#[derive(Clone, Copy)]
pub struct RecordView<'a> {
    pub(super) insurer: &'a InsurerInfo,
    pub(super) rec: &'a [u8],
    pub(super) heap: &'a [u8],
    /// The whole heap is UTF-8 (see `Segment::heap_utf8`).
    pub(super) heap_utf8: bool,
}

impl PartialEq for RecordView<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.rec, other.rec)
    }
}

impl Eq for RecordView<'_> {}

impl RecordView<'_> {
    /// Whether two records say the same, wherever they lie: every field but where the
    /// strings are in the heap and the line of the row, and the same four strings. What a
    /// change build compares a card's records by.
    pub fn same_content(&self, other: &RecordView<'_>) -> bool {
        let same = |r: std::ops::Range<usize>| self.rec.get(r.clone()) == other.rec.get(r);
        same(REC_PERSON..REC_HEAP)
            && same(REC_HEAP + 4..REC_LINE)
            && same(REC_LINE + 3..RECORD_BYTES)
            && self.symbol_utf8() == other.symbol_utf8()
            && self.number_utf8() == other.number_utf8()
            && self.name_utf8() == other.name_utf8()
            && self.name_kana_utf8() == other.name_kana_utf8()
    }
}

impl std::fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecordView({} line {})",
            self.insurer.number_str,
            self.line()
        )
    }
}

impl<'a> RecordView<'a> {
    pub fn person(&self) -> Option<PersonHash> {
        (self.rec[REC_FLAGS] & RECORD_HAS_PERSON != 0).then(|| {
            PersonHash(
                self.rec[REC_PERSON..REC_PERSON + 16]
                    .try_into()
                    .expect("16 bytes"),
            )
        })
    }

    pub fn covers(&self, date: Date) -> bool {
        covers(
            self.qualification_date(),
            self.disqualification_date(),
            date,
        )
    }

    pub fn line(&self) -> u32 {
        u32::from_le_bytes([
            self.rec[REC_LINE],
            self.rec[REC_LINE + 1],
            self.rec[REC_LINE + 2],
            0,
        ])
    }

    pub fn insurer(&self) -> &'a InsurerInfo {
        self.insurer
    }

    /// Starts loading what the answer shows of the record beyond its row: its text, and its
    /// insurer's number and name. Reads the record's row and its insurer's table row.
    pub fn prefetch_text(&self) {
        let start = u32_at(self.rec, REC_HEAP) as usize;
        let (s, n, m, k) = self.lens();
        let end = (start + s + n + m + k).min(self.heap.len());
        prefetch_lines(self.heap.get(start..end).unwrap_or_default());
        prefetch(self.insurer.name.as_bytes());
        prefetch(self.insurer.number_str.as_bytes());
    }

    /// The record as a snapshot row would give it, but without the individual number (the
    /// index holds only its hash, [`Self::person`]): every field a change may keep or change.
    pub fn record(&self) -> Result<Record, FormatError> {
        let e = self.entry()?;
        Ok(Record {
            insurer: self.insurer.entry.number,
            symbol: self.symbol().to_owned(),
            number: self.number().to_owned(),
            branch: e.branch,
            individual_number: None,
            name: self.name().to_owned(),
            name_kana: self.name_kana().to_owned(),
            sex: e.sex,
            birthdate: e.birthdate,
            relationship: e.relationship,
            qualification_date: e.qualification_date,
            disqualification_date: e.disqualification_date,
            reason_of_loss: e.reason_of_loss,
            copay_ratio: e.copay_ratio,
            limit_category: e.limit_category,
        })
    }

    /// The full decoded record (slow path, for tools and tests).
    pub fn entry(&self) -> Result<RecordEntry, FormatError> {
        RecordEntry::decode(self.rec)
    }

    fn text(&self, skip: usize, len: usize) -> &'a str {
        let start = u32_at(self.rec, REC_HEAP) as usize + skip;
        self.heap
            .get(start..start + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The same text as bytes: without validation when the heap is UTF-8 and the cut falls on
    /// character boundaries (always, for a heap the build wrote), else through [`Self::text`].
    fn utf8(&self, skip: usize, len: usize) -> &'a [u8] {
        let start = u32_at(self.rec, REC_HEAP) as usize + skip;
        let is_boundary = |at: usize| self.heap.get(at).is_none_or(|&b| (b as i8) >= -0x40);
        match self.heap.get(start..start + len) {
            Some(b) if self.heap_utf8 && is_boundary(start) && is_boundary(start + len) => b,
            _ => self.text(skip, len).as_bytes(),
        }
    }

    fn lens(&self) -> (usize, usize, usize, usize) {
        (
            self.rec[REC_SYMBOL_LEN] as usize,
            self.rec[REC_NUMBER_LEN] as usize,
            u16_at(self.rec, REC_NAME_LEN) as usize,
            u16_at(self.rec, REC_KANA_LEN) as usize,
        )
    }
}

/// The fields an answer shows, read on demand.
impl<'a> RecordView<'a> {
    pub fn insurer_number(&self) -> &'a str {
        &self.insurer.number_str
    }
    pub fn insurer_name(&self) -> &'a str {
        &self.insurer.name
    }
    pub fn symbol(&self) -> &'a str {
        let (s, ..) = self.lens();
        self.text(0, s)
    }
    pub fn number(&self) -> &'a str {
        let (s, n, ..) = self.lens();
        self.text(s, n)
    }
    pub fn branch(&self) -> Branch {
        Branch::new(self.rec[REC_BRANCH]).unwrap_or(Branch::new(0).expect("00 is a branch"))
    }
    pub fn relationship(&self) -> u8 {
        self.rec[REC_RELATIONSHIP]
    }
    pub fn name(&self) -> &'a str {
        let (s, n, m, _) = self.lens();
        self.text(s + n, m)
    }
    pub fn name_kana(&self) -> &'a str {
        let (s, n, m, k) = self.lens();
        self.text(s + n + m, k)
    }
    pub fn symbol_utf8(&self) -> &'a [u8] {
        let (s, ..) = self.lens();
        self.utf8(0, s)
    }
    pub fn number_utf8(&self) -> &'a [u8] {
        let (s, n, ..) = self.lens();
        self.utf8(s, n)
    }
    pub fn name_utf8(&self) -> &'a [u8] {
        let (s, n, m, _) = self.lens();
        self.utf8(s + n, m)
    }
    pub fn name_kana_utf8(&self) -> &'a [u8] {
        let (s, n, m, k) = self.lens();
        self.utf8(s + n + m, k)
    }
    pub fn sex(&self) -> u8 {
        self.rec[REC_SEX]
    }
    pub fn birthdate(&self) -> Date {
        Date::from_days(i32_at(self.rec, REC_BIRTH))
    }
    pub fn qualification_date(&self) -> Date {
        Date::from_days(i32_at(self.rec, REC_QUAL))
    }
    pub fn disqualification_date(&self) -> Option<Date> {
        let d = i32_at(self.rec, REC_DISQ);
        (d != format::NO_DATE).then(|| Date::from_days(d))
    }
    pub fn reason_of_loss(&self) -> Option<&'static str> {
        ReasonOfLoss::from_code(self.rec[REC_REASON]).map(ReasonOfLoss::as_str)
    }
    pub fn copay_ratio(&self) -> u8 {
        self.rec[REC_COPAY]
    }
    pub fn limit_category(&self) -> Option<&'static str> {
        LimitCategory::from_code(self.rec[REC_LIMIT]).map(LimitCategory::as_str)
    }
}
