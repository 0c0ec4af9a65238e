//! The RESP commands as one table: name, who may run it, argument counts, what runs it, and
//! the line docs/api.md gives it (a test holds the two to each other). Adding a command is
//! adding a line here; `dispatch` knows no command by name.

use super::{echoed, write_bulk, write_error_line, write_int, Args, Flow, State};
use crate::query::QueryKind;
use crate::server::session::Ctx;
use std::ops::RangeInclusive;

/// Who may run a command under `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Before authentication too: what a client needs to authenticate, or to leave.
    Anyone,
    /// Only once the connection authenticated (anyone without `--auth`).
    Authenticated,
}

/// A command answered at once.
pub(super) type Handler = fn(&mut State, &Args<'_>, &Ctx<'_>, &mut Vec<u8>) -> Flow;

/// What running a command does.
#[derive(Clone, Copy)]
pub(super) enum Run {
    /// A query: parsed, queued and answered with the next ones in a group.
    Query(QueryKind),
    Now(Handler),
}

pub(super) struct Command {
    /// As clients send it (matched without regard to case).
    pub name: &'static str,
    pub access: Access,
    /// Argument counts, the name included; outside them the reply is `-ERR wrong number of
    /// arguments`.
    pub args: RangeInclusive<usize>,
    pub run: Run,
    /// docs/api.md's row for the command: its usage (also in the wrong-arguments error) and
    /// its reply.
    pub usage: &'static str,
    // Read by the test that holds docs/api.md to this table, which is its only reader.
    #[cfg_attr(not(test), allow(dead_code))]
    pub reply: &'static str,
}

/// Any number of arguments: the handler reads the ones it knows.
const ANY: RangeInclusive<usize> = 1..=usize::MAX;

pub(super) const COMMANDS: [Command; 13] = [
    Command {
        name: "ELIG.CARD",
        access: Access::Authenticated,
        args: 6..=8,
        run: Run::Query(QueryKind::Card),
        usage: "ELIG.CARD insurer_number symbol number branch birthdate [date] [LIMIT]",
        reply: "the answer JSON as a bulk string; an empty string for an absent symbol or branch; `LIMIT` is the patient's consent to the 限度額適用区分",
    },
    Command {
        name: "ELIG.PERSON",
        access: Access::Authenticated,
        args: 2..=4,
        run: Run::Query(QueryKind::Person),
        usage: "ELIG.PERSON individual_number [date] [LIMIT]",
        reply: "the answer JSON as a bulk string",
    },
    Command {
        name: "ELIG.KOHI",
        access: Access::Authenticated,
        args: 4..=5,
        run: Run::Query(QueryKind::Kohi),
        usage: "ELIG.KOHI payer_number recipient_number birthdate [date]",
        reply: "the [public-expense answer](#public-expense-query) as a bulk string; the institution asking is the authenticated client's",
    },
    Command {
        name: "AUTH",
        access: Access::Anyone,
        args: 2..=3,
        run: Run::Now(auth),
        usage: "AUTH institution_code token",
        reply: "`+OK`, or `-WRONGPASS`; `AUTH institution_code:token` too",
    },
    Command {
        name: "HELLO",
        access: Access::Anyone,
        args: ANY,
        run: Run::Now(hello),
        usage: "HELLO [2|3] [AUTH institution_code token] [SETNAME name]",
        reply: "the server's map (`server`, `version`, `proto`, `id`, `mode`, `role`, `modules`, `generation`)",
    },
    Command {
        name: "QUIT",
        access: Access::Anyone,
        args: ANY,
        run: Run::Now(quit),
        usage: "QUIT",
        reply: "`+OK`, then the server closes the connection",
    },
    Command {
        name: "PING",
        access: Access::Authenticated,
        args: 1..=2,
        run: Run::Now(ping),
        usage: "PING [message]",
        reply: "`+PONG`, or the message as a bulk string (runs of 12 or more digits masked)",
    },
    Command {
        name: "ECHO",
        access: Access::Authenticated,
        args: 2..=2,
        run: Run::Now(echo),
        usage: "ECHO message",
        reply: "the message as a bulk string (runs of 12 or more digits masked)",
    },
    Command {
        name: "INFO",
        access: Access::Authenticated,
        args: ANY,
        run: Run::Now(info),
        usage: "INFO",
        reply: "`server`, `shikaku_version`, `generation`, `epoch`, `records`",
    },
    Command {
        name: "COMMAND",
        access: Access::Authenticated,
        args: ANY,
        run: Run::Now(command),
        usage: "COMMAND [COUNT|DOCS]",
        reply: "empty (`:0` for `COUNT`): what client libraries send on connect",
    },
    Command {
        name: "CLIENT",
        access: Access::Authenticated,
        args: ANY,
        run: Run::Now(client),
        usage: "CLIENT ID|SETNAME|SETINFO",
        reply: "the connection's id, or `+OK`",
    },
    Command {
        name: "SELECT",
        access: Access::Authenticated,
        args: ANY,
        run: Run::Now(select),
        usage: "SELECT 0",
        reply: "`+OK` (there is one database)",
    },
    Command {
        name: "CONFIG",
        access: Access::Authenticated,
        args: ANY,
        run: Run::Now(config),
        usage: "CONFIG GET save|appendonly",
        reply: "empty values: what `redis-benchmark` reads on start (shikaku persists nothing)",
    },
];

/// The command `name` is, if any.
pub(super) fn command_named(name: &[u8]) -> Option<&'static Command> {
    COMMANDS
        .iter()
        .find(|c| name.eq_ignore_ascii_case(c.name.as_bytes()))
}

impl Command {
    /// `-ERR wrong number of arguments for 'elig.card' command` as Redis words it (clients
    /// match the start), then how to call it.
    pub(super) fn wrong_args(&self, out: &mut Vec<u8>) {
        write_error_line(
            out,
            "ERR ",
            &format!(
                "wrong number of arguments for '{}' command (usage: {})",
                self.name.to_ascii_lowercase(),
                self.usage
            ),
        );
    }
}

fn auth(s: &mut State, a: &Args<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    s.auth(a, ctx, out);
    Flow::Continue
}

fn hello(s: &mut State, a: &Args<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    s.hello(a, ctx, out);
    Flow::Continue
}

fn quit(_: &mut State, _: &Args<'_>, _: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    out.extend_from_slice(b"+OK\r\n");
    Flow::Close
}

fn ping(_: &mut State, a: &Args<'_>, _: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    match a.len() {
        1 => out.extend_from_slice(b"+PONG\r\n"),
        _ => write_bulk(out, &echoed(a.get(1))),
    }
    Flow::Continue
}

fn echo(_: &mut State, a: &Args<'_>, _: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    write_bulk(out, &echoed(a.get(1)));
    Flow::Continue
}

fn info(_: &mut State, _: &Args<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    let g = ctx.generation;
    let info = format!(
        "# Server\r\nserver:shikaku\r\nshikaku_version:{}\r\n# Index\r\ngeneration:{}\r\nepoch:{}\r\nrecords:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        g.id(),
        g.epoch,
        g.index.header().record_count
    );
    write_bulk(out, info.as_bytes());
    Flow::Continue
}

fn command(s: &mut State, a: &Args<'_>, _: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    if a.is(1, "COUNT") {
        write_int(out, 0);
    } else if a.is(1, "DOCS") {
        s.write_map_header(out, 0);
    } else {
        out.extend_from_slice(b"*0\r\n");
    }
    Flow::Continue
}

fn client(s: &mut State, a: &Args<'_>, _: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    if a.is(1, "ID") {
        write_int(out, s.client_id);
    } else if a.is(1, "SETNAME") || a.is(1, "SETINFO") {
        out.extend_from_slice(b"+OK\r\n");
    } else {
        write_error_line(
            out,
            "ERR ",
            "unknown CLIENT subcommand (shikaku supports ID, SETNAME, SETINFO)",
        );
    }
    Flow::Continue
}

fn select(_: &mut State, a: &Args<'_>, _: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    if a.len() == 2 && a.get(1) == b"0" {
        out.extend_from_slice(b"+OK\r\n");
    } else {
        write_error_line(out, "ERR ", "DB index is out of range");
    }
    Flow::Continue
}

fn config(s: &mut State, a: &Args<'_>, _: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
    // redis-benchmark reads `save` and `appendonly` at start; shikaku persists nothing.
    let value: Option<&[u8]> = if a.is(2, "save") {
        Some(b"")
    } else if a.is(2, "appendonly") {
        Some(b"no")
    } else {
        None
    };
    match value {
        Some(v) if a.is(1, "GET") && a.len() == 3 => {
            s.write_map_header(out, 1);
            write_bulk(out, a.get(2));
            write_bulk(out, v);
        }
        _ => s.write_map_header(out, 0),
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/api.md's RESP table is this table: one row per command, in this order, with
    /// this usage and reply. A command added here and not there (or there and not here)
    /// fails.
    #[test]
    fn api_md_lists_every_command_as_the_table_does() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
            .expect("docs/api.md");
        let section = doc
            .split("\n## RESP\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("a RESP section");
        let rows: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with("| command |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        let expected: Vec<String> = COMMANDS
            .iter()
            .map(|c| format!("| `{}` | {} |", c.usage.replace('|', "\\|"), c.reply))
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn names_are_unique_and_usages_start_with_them() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(c.usage.starts_with(c.name), "{}", c.name);
            assert!(
                COMMANDS[..i]
                    .iter()
                    .all(|d| !d.name.eq_ignore_ascii_case(c.name)),
                "{} twice",
                c.name
            );
            assert!(!c.args.is_empty() && *c.args.start() >= 1, "{}", c.name);
        }
    }
}
