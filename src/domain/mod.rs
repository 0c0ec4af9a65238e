//! Domain types of docs/api.md and docs/delivery.md: identifiers, dates, code lists and the member record.
//! Pure values and parsers; no I/O.

pub mod codes;
pub mod date;
pub mod ids;
pub mod kohi;
pub mod record;
pub mod text;

pub use codes::{
    CopayRatio, InsurerKind, LimitCategory, ReasonOfLoss, Relationship, Sex, Validity,
};
pub use date::{Date, DateError};
pub use ids::{
    mask_raw, normalize_card_text, normalize_card_text_into, Branch, IdError, IndividualNumber,
    InstitutionCode, InsurerNumber, PersonHash, PersonKey, CARD_TEXT_MAX_CHARS,
};
pub use kohi::{
    covers_inclusive, normalize_recipient, normalize_recipient_into, Certificate, PayerNumber,
    MAX_INSTITUTIONS, RECIPIENT_MAX_CHARS,
};
pub use record::{covers, Record};
