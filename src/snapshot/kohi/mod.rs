//! Public-expense (公費) registers (docs/delivery.md#public-expense-registers):
//! `kohi/payers.csv` and each payer's newest `kohi/<payer_number>/<YYYYMMDD>.csv`, a full list
//! of its certificates (受給者証), read as insurer snapshots are (encodings, quoting, header,
//! R0 and the F rules shared), under the rules K1–K6 and W1.
//!
//! Decisions where the contract is silent:
//! - **Rule order.** R0, K1, K2, K3, K4, K5, then K6 (institutions, copay limit, sex); the
//!   first failing rule rejects the row. W1 on a kept row.
//! - **Required columns**: `payer_number, recipient_number, name, name_kana, birthdate,
//!   valid_from`; the others may be left out of the header and read as empty.
//! - **`sex`** is optional on a certificate (the answer allows `null`); a value that is not
//!   1, 2 or 3 is rejected under K6 with the other malformed codes.
//! - **`institutions`**: `;` (or full-width `；`) separated, empty pieces skipped, a code
//!   named twice kept once, at most [`crate::domain::MAX_INSTITUTIONS`]; `copay_limit_yen` whole yen,
//!   digits only, at most [`row::MAX_COPAY_LIMIT_YEN`].
//! - **W4 does not apply**: the kana is kept as read (NFKC, trimmed), not checked.
//! - **`payers.csv`**: any bad line fails the whole build, as `insurers.csv` does. No `kohi/`
//!   directory at all is a delivery without registers.
//! - **Change files** (`kohi/<payer>/changes/YYYYMMDD-hhmmss.csv`) as an insurer's, with the
//!   register's columns plus `change`; a certificate is named by payer, recipient number and
//!   valid_from; a `lose` row gives it `valid_to` (required: ending it is what the row is
//!   for). A payer listed with change files and no register yet starts empty.

pub mod change;
mod columns;
mod discover;
mod read;
pub mod row;
mod state;

pub use change::{read_kohi_changes_bytes, CertificateKey};
pub use columns::KohiColumn;
pub use discover::{
    discover_kohi, read_payers, KohiDiscovery, PayerEntry, PayerRegister, KOHI_DIR, PAYERS_FILE,
};
pub use read::{read_register, read_register_bytes, CertificateOutcome, RegisterContext};
pub use state::{materialize_payer, materialized_register_name, MaterializedPayer};

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
