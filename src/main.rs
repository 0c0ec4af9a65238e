//! `shikaku`: build, query, serve and inspect eligibility index generations. The commands
//! live in the library (`shikaku::cli`); this parses the arguments and runs them.

#![deny(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    shikaku::cli::init_logging();
    shikaku::cli::run(shikaku::cli::Cli::parse())
}
