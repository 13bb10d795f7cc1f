//! The hook async PF modes hang on lazy memory: which thread waits for which page and for how
//! long, and when each page arrives. With it the VMM decides per fault whether to make the
//! waiting vCPU take the fault asynchronously, and sends page-ready when the page is in.

use std::time::Duration;

/// Why an observer failed; it ends the run.
pub type ObserverError = Box<dyn std::error::Error + Send + Sync>;

pub trait FaultObserver: Send + Sync {
    /// Thread `thread_id` faulted on `gpa_page`, whose fetch should end in `expected` (0 if
    /// it already has). Called on the fault reader's thread, once per fault message.
    fn waiting(
        &self,
        gpa_page: u64,
        thread_id: i32,
        expected: Duration,
    ) -> Result<(), ObserverError>;

    /// `gpa_page` is in guest RAM now. Called on a fetcher's thread after the page was
    /// installed, so anyone who checks the page after this call finds it.
    fn served(&self, gpa_page: u64) -> Result<(), ObserverError>;
}
