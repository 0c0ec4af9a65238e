//! The generator's own records: what a snapshot row says before it is written out, and the
//! defect, if any, that was injected into it.

use crate::tables::SYMBOL_WORDS;
use crate::universe::Col;
use shikaku::domain::{Date, LimitCategory, ReasonOfLoss};

/// A card symbol (記号) as generated. Two symbols normalize to the same text (docs/api.md#symbol-number-branch) exactly
/// when their `key`s are equal: digits lose their padding, words never are all digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sym {
    None,
    Digits { val: u32, width: u8 },
    Word { word: u8, val: u8 },
}

impl Sym {
    pub fn key(self) -> (u8, u32) {
        match self {
            Sym::None => (0, 0),
            Sym::Digits { val, .. } => (1, val),
            Sym::Word { word, val } => (2, u32::from(word) << 8 | u32::from(val)),
        }
    }

    /// The text as the insurer writes it (ASCII digits; full-width is applied by the writer).
    pub fn render(self, out: &mut String) {
        match self {
            Sym::None => {}
            Sym::Digits { val, width } => {
                out.push_str(&format!("{val:0width$}", width = width as usize));
            }
            Sym::Word { word, val } => {
                out.push_str(SYMBOL_WORDS[word as usize % SYMBOL_WORDS.len()]);
                out.push_str(&format!("{val:02}"));
            }
        }
    }
}

/// One member record of one insurer.
#[derive(Debug, Clone)]
pub struct Rec {
    pub insurer: u32,
    pub sym: Sym,
    pub number: u64,
    pub branch: u8,
    /// First eleven digits of the linked individual number.
    pub indnum: Option<u64>,
    pub family: u16,
    pub given: u16,
    pub sex: u8,
    pub birth: Date,
    pub rel: u8,
    pub qual: Date,
    pub disq: Option<Date>,
    pub reason: Option<ReasonOfLoss>,
    pub copay: u8,
    pub limit: Option<LimitCategory>,
}

impl Rec {
    pub fn covers(&self, day: Date) -> bool {
        shikaku::domain::covers(self.qual, self.disq, day)
    }
}

/// Defect kinds of docs/delivery.md the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    W1,
    W2,
    W3,
    W4,
    X1,
    X2,
    X3,
    Duplicate,
    Undecodable,
}

impl Rule {
    /// Kinds injected row by row (the undecodable file is one per data set).
    pub const ROW_KINDS: [Rule; 15] = [
        Rule::R1,
        Rule::R2,
        Rule::R3,
        Rule::R4,
        Rule::R5,
        Rule::R6,
        Rule::R7,
        Rule::W1,
        Rule::W2,
        Rule::W3,
        Rule::W4,
        Rule::X1,
        Rule::X2,
        Rule::X3,
        Rule::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::R1 => "R1",
            Rule::R2 => "R2",
            Rule::R3 => "R3",
            Rule::R4 => "R4",
            Rule::R5 => "R5",
            Rule::R6 => "R6",
            Rule::R7 => "R7",
            Rule::W1 => "W1",
            Rule::W2 => "W2",
            Rule::W3 => "W3",
            Rule::W4 => "W4",
            Rule::X1 => "X1",
            Rule::X2 => "X2",
            Rule::X3 => "X3",
            Rule::Duplicate => "duplicate",
            Rule::Undecodable => "undecodable",
        }
    }

    /// Rows with these are rejected by the build and never indexed.
    pub fn rejects(self) -> bool {
        matches!(
            self,
            Rule::R1 | Rule::R2 | Rule::R3 | Rule::R4 | Rule::R5 | Rule::R6 | Rule::R7
        )
    }
}

/// A row to write: a record, optionally one field replaced by raw text, and its defect tag.
#[derive(Debug, Clone)]
pub struct Row {
    pub rec: Rec,
    pub over: Option<(Col, String)>,
    pub tag: Option<Rule>,
    /// Written twice (an exact duplicate row); the second copy carries the tag.
    pub dup: bool,
    /// Generated from the population (not an extra row added by a defect).
    pub original: bool,
}

impl Row {
    pub fn plain(rec: Rec) -> Row {
        Row {
            rec,
            over: None,
            tag: None,
            dup: false,
            original: true,
        }
    }

    /// The field a defect touched, for the manifest.
    pub fn field(&self) -> Option<Col> {
        self.over.as_ref().map(|(c, _)| *c)
    }
}
