//! A fetcher: takes missing pages from the queue, waits out a latency drawn from the model (the
//! fetch), then installs the page's contents with `UFFDIO_COPY`, which wakes the threads that
//! faulted on it. N fetchers are N concurrent fetches; one is a serial device.

use std::thread;

use libc::c_void;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use workloads::pages::PAGE_SIZE;

use super::latency::LatencyModel;
use super::server::{Error, Shared};
use super::source::Page;

/// `UFFDIO_COPY` fails with `EAGAIN` while the address space is changing; it settles quickly,
/// and a copy that keeps failing is a bug worth reporting rather than a hang.
const COPY_ATTEMPTS: u32 = 1000;

/// Golden-ratio increment (as SplitMix64 uses): spreads fetcher indexes over the seed space.
const SEED_STRIDE: u64 = 0x9e37_79b9_7f4a_7c15;

/// The latency generator of fetcher `index` for run seed `seed`: each fetcher has its own
/// stream, and the same seed gives the same streams. (Which fetcher takes which fault depends
/// on timing when there are several.)
pub fn rng(seed: u64, index: u8) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ (u64::from(index) + 1).wrapping_mul(SEED_STRIDE))
}

/// Fetches queued pages until the queue stops.
pub fn run(
    shared: &Shared,
    latency: &LatencyModel,
    mut rng: Xoshiro256PlusPlus,
) -> Result<(), Error> {
    let mut page: Page = [0; PAGE_SIZE];
    while let Some(fault) = shared.queue.next() {
        let delay = shared.queue.delay(latency.sample(&mut rng));
        shared.source.fill(fault.gpa_page, &mut page);
        let installed = install(shared, fault.gpa_page, &page)?;
        shared.table().served(shared.window.index(fault.gpa_page));
        shared
            .counters
            .fetched(installed, delay, fault.at.elapsed(), fault.thread_id);
    }
    Ok(())
}

/// Copies `page` into the guest page at `gpa_page` and wakes its waiters. `false` if the page
/// was already there (`EEXIST`: normal, something else filled it first).
fn install(shared: &Shared, gpa_page: u64, page: &Page) -> Result<bool, Error> {
    let dst = shared.window.host(gpa_page) as *mut c_void;
    for _ in 0..COPY_ATTEMPTS {
        // SAFETY: the source is our whole page buffer. The destination is one page of the
        // window, which is registered with this userfaultfd; the kernel refuses a copy into
        // anything else (the mapping gone or replaced), and only fills a page that is still
        // missing, so nothing the VMM wrote is overwritten and no Rust reference sees the write:
        // guest RAM is only accessed through raw (volatile) pointers.
        match unsafe { shared.uffd.copy(page.as_ptr().cast(), dst, PAGE_SIZE, true) } {
            Ok(_) => return Ok(true),
            Err(userfaultfd::Error::CopyFailed(errno)) if errno as i32 == libc::EEXIST => {
                return Ok(false);
            }
            Err(userfaultfd::Error::PartiallyCopied(_)) => thread::yield_now(),
            Err(source) => {
                return Err(Error::Copy {
                    gpa: gpa_page,
                    source,
                });
            }
        }
    }
    Err(Error::CopyRetries { gpa: gpa_page })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn fetchers_have_distinct_reproducible_streams() {
        let first = |seed, index| rng(seed, index).next_u64();
        assert_eq!(first(1, 0), first(1, 0));
        assert_ne!(first(1, 0), first(1, 1));
        assert_ne!(first(1, 0), first(2, 0));
    }
}
