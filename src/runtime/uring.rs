//! The tuned io_uring runtime: a serving core's and a load thread's rings are set up alike.

/// A runtime (io_uring, epoll where the kernel has none) whose ring has [`tuned_uring`]'s
/// settings; a kernel older than the flags (5.19, 6.0) refuses them, and then the ring is the
/// default one rather than none (`refused` is told why).
pub(crate) fn tuned_runtime(
    entries: u32,
    refused: impl FnOnce(&std::io::Error),
) -> std::io::Result<
    monoio::FusionRuntime<
        monoio::time::TimeDriver<monoio::IoUringDriver>,
        monoio::time::TimeDriver<monoio::LegacyDriver>,
    >,
> {
    let build = |tuned: bool| {
        let mut builder = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .with_entries(entries)
            .enable_timer();
        if tuned {
            builder = builder.uring_builder(tuned_uring());
        }
        builder.build()
    };
    build(true).or_else(|e| {
        refused(&e);
        build(false)
    })
}

/// The io_uring settings of a core's ring. By default the kernel completes a socket operation
/// that became ready on another core (loopback traffic from a client there, or a network
/// interrupt) by interrupting this core to run the completion at once. With cooperative task
/// running it instead queues the completion for this thread's next entry into the kernel,
/// which a busy core makes after every round of tasks anyway: one interrupt fewer per request
/// at pipelining depth 1 (measured 63k → 95k requests/s on one core, perf/RESULTS.md). Each
/// ring has one submitting thread (its core's), which lets the kernel skip the locking that
/// sharing would need.
fn tuned_uring() -> io_uring::Builder {
    let mut builder = io_uring::IoUring::builder();
    builder
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_single_issuer();
    builder
}
