//! The columns of `kohi/payers.csv` and of a payer's register.

use super::super::header::ColumnSet;

/// The columns of a public-expense register, in the documented order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KohiColumn {
    PayerNumber,
    RecipientNumber,
    IndividualNumber,
    Name,
    NameKana,
    Sex,
    Birthdate,
    ValidFrom,
    ValidTo,
    CopayLimitYen,
    Institutions,
}

impl KohiColumn {
    pub const ALL: [KohiColumn; 11] = [
        KohiColumn::PayerNumber,
        KohiColumn::RecipientNumber,
        KohiColumn::IndividualNumber,
        KohiColumn::Name,
        KohiColumn::NameKana,
        KohiColumn::Sex,
        KohiColumn::Birthdate,
        KohiColumn::ValidFrom,
        KohiColumn::ValidTo,
        KohiColumn::CopayLimitYen,
        KohiColumn::Institutions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KohiColumn::PayerNumber => "payer_number",
            KohiColumn::RecipientNumber => "recipient_number",
            KohiColumn::IndividualNumber => "individual_number",
            KohiColumn::Name => "name",
            KohiColumn::NameKana => "name_kana",
            KohiColumn::Sex => "sex",
            KohiColumn::Birthdate => "birthdate",
            KohiColumn::ValidFrom => "valid_from",
            KohiColumn::ValidTo => "valid_to",
            KohiColumn::CopayLimitYen => "copay_limit_yen",
            KohiColumn::Institutions => "institutions",
        }
    }
}

impl ColumnSet for KohiColumn {
    const ALL: &'static [KohiColumn] = &KohiColumn::ALL;

    fn name(self) -> &'static str {
        KohiColumn::name(self)
    }

    /// The identifying columns; every other value is optional, so its column may be left out.
    fn required(self) -> bool {
        matches!(
            self,
            KohiColumn::PayerNumber
                | KohiColumn::RecipientNumber
                | KohiColumn::Name
                | KohiColumn::NameKana
                | KohiColumn::Birthdate
                | KohiColumn::ValidFrom
        )
    }

    fn position(self) -> usize {
        self as usize
    }
}

/// The columns of `kohi/payers.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayerColumn {
    PayerNumber,
    PayerName,
}

impl ColumnSet for PayerColumn {
    const ALL: &'static [PayerColumn] = &[PayerColumn::PayerNumber, PayerColumn::PayerName];

    fn name(self) -> &'static str {
        match self {
            PayerColumn::PayerNumber => "payer_number",
            PayerColumn::PayerName => "payer_name",
        }
    }

    fn required(self) -> bool {
        true
    }

    fn position(self) -> usize {
        self as usize
    }
}
