//! `agent`: the callbridge call server (the code is the library,
//! `callbridge_agent`).
//!
//! The allocator is jemalloc (tikv-jemallocator, with its background
//! purging thread), not the system's glibc malloc. The agent frees memory
//! from many threads in a churn of short-lived calls; glibc kept the peak:
//! after a 10,000-call faults soak its RSS stayed at the high-water mark
//! (+6 to +11 MB over the first 100 calls, issue 17's bound is 5 MB) and
//! RSS per live call was higher. jemalloc returns free pages to the
//! kernel after its decay time (10 s by default). Figures in
//! docs/PERFORMANCE.md.

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    callbridge_agent::main(std::env::args_os())
}
