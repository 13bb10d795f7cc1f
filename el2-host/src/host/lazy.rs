//! Serving lazy pages: each fetch takes a latency drawn from the model, and the page's
//! contents come from `workloads::pages` with the run's seed, as the x86 runner serves them.

use super::guest_memory::GuestMemory;
use super::stats::Stats;
use crate::arch::aarch64::counter;
use el2_host::latency::LatencyModel;
use el2_host::params::Params;
use el2_host::rng::Rng;
use el2_host::stage2::PAGE_SIZE;
use workloads::pages;

pub struct Lazy {
    latency: LatencyModel,
    rng: Rng,
    seed: u64,
}

impl Lazy {
    pub fn new(params: &Params) -> Self {
        Self {
            latency: params.latency,
            rng: Rng::new(params.seed),
            seed: params.seed,
        }
    }

    /// Fetches the page holding `ipa` while the vCPU waits (`off` mode), and maps it; the
    /// guest then re-executes the faulting access.
    pub fn serve_sync(&mut self, memory: &mut GuestMemory, stats: &mut Stats, ipa: u64) {
        let page = ipa & !(PAGE_SIZE - 1);
        let start = counter::now();
        let deadline = start + counter::ticks(self.latency.sample(&mut self.rng));
        let seed = self.seed;
        if let Err(error) = memory.install(page, |words| pages::fill(seed, page / PAGE_SIZE, words))
        {
            panic!("cannot map lazy page {page:#x}: {error:?}");
        }
        counter::wait_until(deadline);
        stats.sync_faults += 1;
        stats.waited_ticks += counter::now() - start;
    }
}
