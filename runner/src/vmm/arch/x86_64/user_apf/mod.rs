//! Async page faults delivered by this VMM instead of KVM (`--apf vmm` and `--apf adaptive`):
//! the "async PF user" design of seed 000, done with the KVM interfaces our hosts have (MSR
//! filter, vCPU events, MSI) and no kernel patch. The guest cannot tell it from KVM.

mod host;
mod msr;
mod policy;
mod stats;
mod tokens;
mod vcpu_state;

pub use host::{Error, UserApf};
pub use policy::Policy;
pub use stats::UserApfStats;
