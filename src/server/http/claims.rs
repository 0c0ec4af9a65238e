//! `POST /v1/claims`: a claims file checked (the library's `claims`), its rows as CSV, or
//! JSON when the client accepts it; each receipt an audit line. What the check will hold (the
//! decoded text, the receipts, the rows) is taken from the server's memory budget before it
//! starts: a file the whole budget cannot hold is refused (413), one that does not fit now is
//! asked to come again (503, `Retry-After`).

use super::head::Head;
use super::{HttpSession, Reply};
use crate::claims::memory::WorkBytes;
use crate::claims::{output::FileColumn, output::RowWriter, Format, Summary, UkeError};
use crate::domain::InstitutionCode;
use crate::server::audit::AuditedClaim;
use crate::server::budget::Held;
use crate::server::session::Ctx;

const MIB: usize = 1 << 20;

impl HttpSession {
    /// A file that cannot be read is 400 (413 when too large) with the error naming the line.
    pub(super) fn claims(
        &mut self,
        head: &Head<'_>,
        body: &[u8],
        ctx: &Ctx<'_>,
        client: Option<InstitutionCode>,
    ) -> Reply {
        let (format, content_type) = if head.accept_json {
            (Format::Json, "application/json")
        } else {
            (Format::Csv, "text/csv; charset=utf-8")
        };
        // Held until the rows are made; the connection then counts the answer until it is sent.
        let mut work = Held::new(&ctx.shared.budget);
        let need = WorkBytes::of(body, format);
        if let Some(refused) = self.refuse_work(&need, &mut work, ctx) {
            return refused;
        }
        let file = match crate::claims::parse(body) {
            Ok(f) => f,
            Err(e @ UkeError::TooLarge(_)) => return self.error(413, &e.to_string()),
            Err(e) => return self.error(400, &format!("claims file: {e}")),
        };
        // Made once, to its size: grown by doubling, the rows' buffer held up to twice them.
        self.body.reserve_exact(need.row_bytes);
        let mut writer = RowWriter::new(format, FileColumn::Unnamed);
        writer.begin(&mut self.body);
        crate::claims::check_file(
            &ctx.generation.index,
            "body",
            &file,
            &mut writer,
            &mut self.body,
            &mut Summary::default(),
            |r, checked, card| {
                // Masked as in the reply's rows: a receipt number of 12 digits or more.
                let receipt = crate::domain::text::mask_digit_runs(file.text(&r.number).trim());
                let claim = AuditedClaim {
                    receipt: &receipt,
                    card,
                    verdict: checked.verdict.as_str(),
                    reason: &checked.reason.as_str(),
                };
                ctx.audit_claim(client, claim, r.month.map(|m| m.first));
            },
        );
        writer.end(&mut self.body);
        Reply {
            status: 200,
            content_type,
            extra: "",
        }
    }

    /// Takes what checking the file needs from the budget into `work`, or the refusal: 413
    /// when the whole budget could not hold it, 503 when others hold too much of it now.
    fn refuse_work(
        &mut self,
        need: &WorkBytes,
        work: &mut Held<'_>,
        ctx: &Ctx<'_>,
    ) -> Option<Reply> {
        let budget = &ctx.shared.budget;
        let need_bytes = need.total();
        if need_bytes > budget.limit_bytes() {
            ctx.metrics.memory_refused();
            return Some(self.error(
                413,
                &format!(
                    "checking this claims file ({} receipts) needs about {} MiB of memory, more than the server's memory budget of {} MiB (--memory-budget-bytes): send it in parts, or check it with shikaku claims",
                    need.receipts,
                    need_bytes.div_ceil(MIB),
                    budget.limit_bytes() / MIB
                ),
            ));
        }
        if !work.grow(need_bytes) {
            ctx.metrics.memory_refused();
            return Some(self.busy("checking claims files"));
        }
        None
    }
}
