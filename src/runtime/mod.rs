//! What the serving cores and the load generator's threads share about running on monoio:
//! the tuned io_uring runtime ([`tuned_runtime`]), the yield that lets woken tasks run first
//! ([`Relay`]), and a one-waiter wake-up flag ([`Notify`]).

mod notify;
mod relay;
mod uring;

pub(crate) use notify::Notify;
pub(crate) use relay::Relay;
pub(crate) use uring::tuned_runtime;
