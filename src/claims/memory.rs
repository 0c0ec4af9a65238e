//! What checking a claims file holds in memory besides its bytes, estimated before it is
//! read, so that a server can refuse a file its memory budget cannot hold rather than take
//! the memory and count it afterwards (a 255 MiB file of one-line receipts took 2.7 GB).

use super::output::Format;
use super::uke::{PublicExpenseRecord, Receipt};

/// A row's bytes in the answer, as written for a receipt of a few days (a `return` that lists
/// 31 days is longer; the estimate is for a file's average).
const CSV_ROW_BYTES: usize = 64;
const JSON_ROW_BYTES: usize = 224;

/// The estimate for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkBytes {
    /// Receipts the file holds (its lines that begin `RE,`).
    pub receipts: usize,
    /// The text decoded from CP932 (a UTF-8 file is read in place): half as much again as
    /// its bytes, as a kanji of two bytes is three in UTF-8.
    pub text_bytes: usize,
    /// The receipts as read.
    pub receipt_bytes: usize,
    /// Their public-expense (`KO`) records as read, one per line that begins `KO,`.
    pub public_expense_bytes: usize,
    /// The rows of the answer.
    pub row_bytes: usize,
}

impl WorkBytes {
    pub fn of(file: &[u8], format: Format) -> WorkBytes {
        let receipts = records_in(file, b"RE,");
        let public_expenses = records_in(file, b"KO,");
        let row = match format {
            Format::Csv => CSV_ROW_BYTES,
            Format::Json => JSON_ROW_BYTES,
        };
        WorkBytes {
            receipts,
            text_bytes: if file.is_ascii() {
                0
            } else {
                file.len() + file.len() / 2
            },
            receipt_bytes: receipts.saturating_mul(std::mem::size_of::<Receipt>()),
            public_expense_bytes: public_expenses
                .saturating_mul(std::mem::size_of::<PublicExpenseRecord>()),
            row_bytes: receipts.saturating_mul(row),
        }
    }

    pub fn total(&self) -> usize {
        self.text_bytes
            .saturating_add(self.receipt_bytes)
            .saturating_add(self.public_expense_bytes)
            .saturating_add(self.row_bytes)
    }
}

/// Lines that begin with `record` (a record name and its comma, `RE,`: a receipt each).
fn records_in(file: &[u8], record: &[u8; 3]) -> usize {
    let mut line_start = [b'\n'; 4];
    line_start[1..].copy_from_slice(record);
    let inner = memchr::memmem::find_iter(file, &line_start).count();
    inner + usize::from(file.starts_with(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_counted_by_their_lines() {
        let check = |file: &[u8], receipts: usize| {
            assert_eq!(
                WorkBytes::of(file, Format::Csv).receipts,
                receipts,
                "{file:?}"
            )
        };
        check(b"", 0);
        check(b"RE,1\r\n", 1);
        check(b"IR,1\r\nRE,1\r\nHO,x\r\nRE,2\nRE,3\r\nGO,3\r\n", 3);
        // Not a record name: a field that happens to hold RE.
        check(b"IR,RE,1\r\nXRE,2\r\n", 0);
    }

    #[test]
    fn a_cp932_file_counts_its_decoded_text_and_every_part_adds_up() {
        let ascii = WorkBytes::of(b"RE,1\r\nRE,2\r\n", Format::Json);
        assert_eq!(ascii.text_bytes, 0);
        assert_eq!(ascii.row_bytes, 2 * JSON_ROW_BYTES);
        assert_eq!(
            ascii.total(),
            ascii.receipt_bytes + ascii.row_bytes,
            "{ascii:?}"
        );
        // Two KO records, one of them the file's first line (not a receipt's, but counted).
        let ko = WorkBytes::of(
            b"KO,1
RE,1
KO,54136015,0123455
XKO,2
",
            Format::Csv,
        );
        let record = std::mem::size_of::<PublicExpenseRecord>();
        assert_eq!((ko.receipts, ko.public_expense_bytes), (1, 2 * record));
        assert_eq!(
            ko.total(),
            ko.receipt_bytes + ko.public_expense_bytes + ko.row_bytes
        );
        let cp932 = WorkBytes::of(b"RE,1,\x83\x65\r\n", Format::Csv);
        assert_eq!(cp932.text_bytes, 9 + 4);
        // docs/operations.md sizes a receipt at 256 bytes, a KO record at 56.
        assert_eq!(std::mem::size_of::<Receipt>(), 256);
        assert_eq!(std::mem::size_of::<PublicExpenseRecord>(), 56);
    }
}
