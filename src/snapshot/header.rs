//! The header row of a snapshot: which column sits where.

use super::error::SnapshotError;
use std::path::Path;

/// The columns of docs/delivery.md, in the documented order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    InsurerNumber,
    Symbol,
    Number,
    Branch,
    IndividualNumber,
    Name,
    NameKana,
    Sex,
    Birthdate,
    Relationship,
    QualificationDate,
    DisqualificationDate,
    ReasonOfLoss,
    CopayRatio,
    LimitCategory,
}

impl Column {
    pub const ALL: [Column; 15] = [
        Column::InsurerNumber,
        Column::Symbol,
        Column::Number,
        Column::Branch,
        Column::IndividualNumber,
        Column::Name,
        Column::NameKana,
        Column::Sex,
        Column::Birthdate,
        Column::Relationship,
        Column::QualificationDate,
        Column::DisqualificationDate,
        Column::ReasonOfLoss,
        Column::CopayRatio,
        Column::LimitCategory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::InsurerNumber => "insurer_number",
            Column::Symbol => "symbol",
            Column::Number => "number",
            Column::Branch => "branch",
            Column::IndividualNumber => "individual_number",
            Column::Name => "name",
            Column::NameKana => "name_kana",
            Column::Sex => "sex",
            Column::Birthdate => "birthdate",
            Column::Relationship => "relationship",
            Column::QualificationDate => "qualification_date",
            Column::DisqualificationDate => "disqualification_date",
            Column::ReasonOfLoss => "reason_of_loss",
            Column::CopayRatio => "copay_ratio",
            Column::LimitCategory => "limit_category",
        }
    }

    /// A column may be left out of the header only if its value is optional in every row.
    pub fn required(self) -> bool {
        !matches!(
            self,
            Column::Symbol
                | Column::IndividualNumber
                | Column::DisqualificationDate
                | Column::ReasonOfLoss
                | Column::LimitCategory
        )
    }
}

/// The columns of one kind of delivery file: the insurers' snapshots ([`Column`]) or the
/// public-expense registers (`kohi::KohiColumn`), so both read headers alike.
pub(crate) trait ColumnSet: Copy + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    /// A column may be left out of the header only if its value is optional in every row.
    fn required(self) -> bool;
    /// Its position in `ALL`.
    fn position(self) -> usize;

    /// Header names are matched after trimming white space, ASCII case-insensitively.
    fn from_header(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

impl ColumnSet for Column {
    const ALL: &'static [Column] = &Column::ALL;

    fn name(self) -> &'static str {
        Column::name(self)
    }

    fn required(self) -> bool {
        Column::required(self)
    }

    fn position(self) -> usize {
        self as usize
    }
}

/// Where each known column sits in a row, and which header names were not recognized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnMap<C = Column> {
    index: Vec<Option<usize>>,
    pub width: usize,
    pub unknown: Vec<String>,
    columns: std::marker::PhantomData<C>,
}

impl<C: ColumnSet> ColumnMap<C> {
    pub fn from_header<'a>(
        path: &Path,
        names: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<ColumnMap<C>, SnapshotError> {
        let mut map = ColumnMap {
            index: vec![None; C::ALL.len()],
            width: 0,
            unknown: Vec::new(),
            columns: std::marker::PhantomData,
        };
        for (i, raw) in names.into_iter().enumerate() {
            map.width = i + 1;
            let name = String::from_utf8_lossy(raw);
            match C::from_header(&name) {
                Some(c) if map.index[c.position()].is_some() => {
                    return Err(SnapshotError::DuplicateColumn {
                        path: path.to_owned(),
                        column: c.name().to_owned(),
                    })
                }
                Some(c) => map.index[c.position()] = Some(i),
                None => map.unknown.push(name.trim().to_owned()),
            }
        }
        if let Some(c) = C::ALL
            .iter()
            .copied()
            .find(|&c| c.required() && map.index[c.position()].is_none())
        {
            return Err(SnapshotError::MissingColumn {
                path: path.to_owned(),
                column: c.name(),
            });
        }
        Ok(map)
    }

    pub fn get(&self, c: C) -> Option<usize> {
        self.index[c.position()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(header: &str) -> Result<ColumnMap, String> {
        ColumnMap::from_header(Path::new("f.csv"), header.split(',').map(str::as_bytes))
            .map_err(|e| e.to_string())
    }

    const FULL: &str = "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,\
birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,\
limit_category";

    #[test]
    fn headers() {
        let m = map(FULL).unwrap();
        assert_eq!((m.get(Column::InsurerNumber), m.width), (Some(0), 15));
        let mut shuffled: Vec<&str> = FULL.split(',').rev().collect();
        shuffled.insert(3, "memo");
        let m = map(&shuffled.join(",")).unwrap();
        assert_eq!(m.get(Column::LimitCategory), Some(0));
        assert_eq!(m.get(Column::InsurerNumber), Some(15));
        assert_eq!(m.unknown, vec!["memo".to_owned()]);
        assert!(map(&FULL.to_uppercase().replace(",", " , ")).is_ok());
        let optional_left_out = "insurer_number,number,branch,name,name_kana,sex,birthdate,\
relationship,qualification_date,copay_ratio";
        assert_eq!(map(optional_left_out).unwrap().get(Column::Symbol), None);
        assert_eq!(
            map(&FULL.replace("branch,", "")).unwrap_err(),
            "f.csv: required column \"branch\" missing from the header"
        );
        assert_eq!(
            map(&format!("{FULL},sex")).unwrap_err(),
            "f.csv: column \"sex\" named twice in the header"
        );
    }
}
