//! Serving lazy pages: each fetch takes a latency drawn from the model, and the page's
//! contents come from `workloads::pages` with the run's seed, as the x86 runner serves them.

use super::guest_memory::GuestMemory;
use super::stats::Stats;
use crate::arch::aarch64::{counter, hyp_timer};
use el2_host::inject::Faulty;
use el2_host::params::Params;
use el2_host::stage2::PAGE_SIZE;
use latency_model::Draws;
use workloads::pages;

pub struct Lazy {
    latencies: Draws,
    seed: u64,
}

impl Lazy {
    pub fn new(params: &Params) -> Self {
        Self {
            latencies: params.latencies(),
            seed: params.seed,
        }
    }

    /// Starts fetching `page`: writes its contents (not mapped yet) and returns the counter
    /// value at which the fetch completes; `faulty` decides whether it is a latency spike.
    pub fn start(&mut self, memory: &mut GuestMemory, page: u64, faulty: &mut Faulty) -> u64 {
        let latency = faulty.fetch_latency(self.latencies.next_ns());
        let deadline = counter::now() + counter::ticks(latency);
        let seed = self.seed;
        memory.fill(page, |words| pages::fill(seed, page / PAGE_SIZE, words));
        deadline
    }

    /// Fetches `page` while the vCPU waits (`off` mode, or a fault async PF may not take),
    /// and maps it; the guest then re-executes the faulting access.
    pub fn serve_sync(
        &mut self,
        memory: &mut GuestMemory,
        stats: &mut Stats,
        page: u64,
        faulty: &mut Faulty,
    ) {
        let start = counter::now();
        let deadline = self.start(memory, page, faulty);
        hyp_timer::sleep_until(deadline);
        map(memory, page);
        stats.sync_faults += 1;
        stats.waited_ticks += counter::now() - start;
    }
}

/// Maps a fetched page; the table pool is sized for the whole lazy region, so failing is a
/// host bug.
pub fn map(memory: &mut GuestMemory, page: u64) {
    if let Err(error) = memory.map(page) {
        panic!("cannot map lazy page {page:#x}: {error:?}");
    }
}
