//! The VMM's async PF host: KVM's part of the protocol, played from userspace with the
//! sequence host-facts.md records. The lazy memory server tells it which vCPU waits for which
//! page ([`FaultObserver`]); it kicks that vCPU out of `KVM_RUN` (the fault is abandoned, RIP
//! unchanged), injects "page not present" with a token if the guest can take it, and sends
//! "page ready" by MSI when the page is in and the guest acknowledged the previous one.
//!
//! One lock covers every vCPU's protocol state, and the checks and writes that go with it:
//! "is the page still missing" and "register its token" happen under the same lock as "the
//! page arrived, ready its tokens", so no page-ready is lost between them. "Missing" is the
//! host's own record of what the lazy memory server served (told under that lock), not the
//! page's residency: a served page that got swapped out must not count as missing.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use apf_pv::waiters::Token;
use apf_pv::x86::KVM_PV_REASON_PAGE_NOT_PRESENT;
use kvm_bindings::{KVM_VCPUEVENT_VALID_PAYLOAD, kvm_msi, kvm_vcpu_events};
use kvm_ioctls::{Cap, SyncReg, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryError, GuestMemoryMmap, Permissions};

use super::msr::{Place, Refused};
use super::policy::Policy;
use super::stats::UserApfStats;
use super::vcpu_state::{MsrEffect, SyncReason, VcpuApf};
use crate::inject::Injections;
use crate::lazy::{FaultObserver, ObserverError, Window};
use crate::vmm::kick;

/// Offsets in `struct kvm_vcpu_pv_apf_data` (x86 APF ABI spec §3).
const AREA_FLAGS: u64 = 0;
const AREA_TOKEN: u64 = 4;
/// The #PF vector.
const PAGE_FAULT: u8 = 14;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// The privilege level of kernel code: faults there are never made async.
const RING_0: u8 = 0;
/// An MSI to the local APIC: address 0xFEE0_0000 with the destination APIC ID in bits 19:12;
/// data = vector, fixed delivery, edge-triggered.
const MSI_ADDRESS_BASE: u32 = 0xfee0_0000;
const MSI_DESTINATION_SHIFT: u32 = 12;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read vCPU {index}'s state")]
    ReadState {
        index: usize,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("cannot inject a page-not-present into vCPU {index}")]
    Inject {
        index: usize,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("cannot access vCPU {index}'s async PF area at {area:#x}")]
    Area {
        index: usize,
        area: u64,
        #[source]
        source: GuestMemoryError,
    },
    #[error("cannot send a page-ready to vCPU {index}")]
    Msi {
        index: usize,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("cannot kick vCPU {index} (thread {thread_id})")]
    Kick {
        index: usize,
        thread_id: i32,
        #[source]
        source: io::Error,
    },
}

struct Slot {
    apf: VcpuApf,
    /// The thread running the vCPU: fault messages name it.
    thread_id: Option<i32>,
    /// When the pending kick was sent, to measure how long the vCPU takes to leave the guest.
    kicked_at: Option<Instant>,
}

struct State {
    vcpus: Vec<Slot>,
    /// Which pages of the lazy range have been served (told by the lazy memory server).
    served: ServedPages,
    stats: UserApfStats,
}

/// One bit per page of the lazy range.
struct ServedPages(Vec<u64>);

impl ServedPages {
    fn new(pages: usize) -> Self {
        ServedPages(vec![0; pages.div_ceil(64)])
    }

    fn insert(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }

    fn contains(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }
}

pub struct UserApf {
    policy: Policy,
    vm: Arc<VmFd>,
    memory: GuestMemoryMmap,
    /// The lazy range: the pages this host makes faults async for.
    lazy: Window,
    /// KVM has `KVM_CAP_SYNC_REGS`: every vCPU's `kvm_run` carries the state [`Self::kicked`]
    /// reads (see [`Self::sync_kicked_state`]). A property of the VM, so decided once here.
    synced: bool,
    state: Mutex<State>,
}

impl UserApf {
    pub fn new(
        policy: Policy,
        vm: Arc<VmFd>,
        memory: GuestMemoryMmap,
        lazy: Window,
        vcpus: u8,
        inject: &Injections,
    ) -> Self {
        let stats = UserApfStats::new(usize::from(vcpus));
        let vcpus = (0..vcpus)
            .map(|id| Slot {
                apf: VcpuApf::new(u16::from(id), inject.clone()),
                thread_id: None,
                kicked_at: None,
            })
            .collect();
        let served = ServedPages::new(lazy.pages());
        let synced = vm.check_extension(Cap::SyncRegs);
        UserApf {
            policy,
            synced,
            vm,
            memory,
            lazy,
            state: Mutex::new(State {
                vcpus,
                served,
                stats,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// vCPU `index` runs on thread `thread_id` from now on.
    pub fn attach(&self, index: usize, thread_id: i32) {
        self.lock().vcpus[index].thread_id = Some(thread_id);
    }

    /// vCPU `index`'s thread is leaving its run loop: no more kicks for it (its thread id
    /// may be reused).
    pub fn detach(&self, index: usize) {
        let mut state = self.lock();
        let slot = &mut state.vcpus[index];
        slot.thread_id = None;
        slot.apf.take_kick();
    }

    pub fn stats(&self) -> UserApfStats {
        let state = self.lock();
        let mut stats = state.stats.clone();
        for slot in &state.vcpus {
            for (&inject, &count) in slot.apf.injected() {
                *stats.injected_faults.entry(inject).or_default() += count;
            }
        }
        stats
    }

    /// vCPU `index` left `KVM_RUN` because of a signal. If it was kicked for a fault that is
    /// still pending, inject "page not present" when the guest can take it.
    ///
    /// With sync regs (the vCPU's `kvm_run` carries its registers, sregs and events, see
    /// [`Self::sync_kicked_state`]), the state is read from `kvm_run` and the #PF is written
    /// back there, applied by KVM on the next `KVM_RUN`: no ioctl, where each vCPU ioctl
    /// costs ~7 us on our KVM. Without, it takes three ioctls to read and one to inject.
    pub fn kicked(&self, index: usize, vcpu: &mut VcpuFd) -> Result<(), Error> {
        let state = &mut *self.lock();
        let slot = &mut state.vcpus[index];
        let Some(page) = slot.apf.take_kick() else {
            return Ok(());
        };
        let started = Instant::now();
        if let Some(kicked_at) = slot.kicked_at.take() {
            state.stats.kick_wait += started.duration_since(kicked_at);
        }
        let present = state.served.contains(self.lazy.index(page));
        let events = match self.injectable(index, present, vcpu)? {
            Ok(events) => events,
            Err(reason) => {
                state.stats.count_sync(reason);
                slot.apf.stay_synchronous(page, reason);
                return Ok(());
            }
        };
        let area = slot
            .apf
            .area()
            .expect("a kick is pending only while async PF is on");
        let token = slot.apf.not_present(page);
        self.write_area(index, area + AREA_FLAGS, KVM_PV_REASON_PAGE_NOT_PRESENT)?;
        let events = not_present(events, token);
        if self.synced {
            vcpu.sync_regs_mut().events = events;
            vcpu.set_sync_dirty_reg(SyncReg::VcpuEvents);
        } else {
            vcpu.set_vcpu_events(&events)
                .map_err(|source| Error::Inject { index, source })?;
        }
        state.stats.count_injected(index);
        state.stats.inject_time += started.elapsed();
        // A faulty host (--inject wake-all, disable-reenable) may have queued a broadcast.
        self.deliver(state, index)
    }

    /// Whether the guest can take a "page not present" for a page (`present`: served
    /// already) now, as KVM's `kvm_can_deliver_async_pf` decides (CPL != 0 only:
    /// SEND_ALWAYS is not honoured, and a ring-0 access cannot be kicked out of KVM's
    /// emulator anyway). Gives the events to inject into.
    fn injectable(
        &self,
        index: usize,
        present: bool,
        vcpu: &VcpuFd,
    ) -> Result<Result<kvm_vcpu_events, SyncReason>, Error> {
        if present {
            return Ok(Err(SyncReason::Present));
        }
        let read = |source| Error::ReadState { index, source };
        let (ss_dpl, events, rflags) = if self.synced {
            let state = vcpu.sync_regs();
            (state.sregs.ss.dpl, state.events, state.regs.rflags)
        } else {
            let ss_dpl = vcpu.get_sregs().map_err(read)?.ss.dpl;
            // A ring-0 kick needs no more ioctls.
            if ss_dpl == RING_0 {
                return Ok(Err(SyncReason::Ring0));
            }
            let events = vcpu.get_vcpu_events().map_err(read)?;
            (ss_dpl, events, vcpu.get_regs().map_err(read)?.rflags)
        };
        if ss_dpl == RING_0 {
            return Ok(Err(SyncReason::Ring0));
        }
        let interrupts_on = rflags & RFLAGS_IF != 0;
        if !interrupts_on || events.interrupt.shadow != 0 {
            return Ok(Err(SyncReason::InterruptsOff));
        }
        let busy = events.exception.pending != 0
            || events.exception.injected != 0
            || events.interrupt.injected != 0
            || events.nmi.injected != 0;
        if busy {
            return Ok(Err(SyncReason::EventPending));
        }
        Ok(Ok(events))
    }

    /// Makes `vcpu`'s every exit store its registers, sregs and events in its `kvm_run`
    /// (`KVM_CAP_SYNC_REGS`) if KVM can, so that [`Self::kicked`] can read and inject without
    /// ioctls. Storing them costs nothing measurable per exit here.
    pub fn sync_kicked_state(&self, vcpu: &mut VcpuFd) {
        if !self.synced {
            return;
        }
        for reg in [
            SyncReg::Register,
            SyncReg::SystemRegister,
            SyncReg::VcpuEvents,
        ] {
            vcpu.set_sync_valid_reg(reg);
        }
    }

    /// A guest write to an async PF MSR; `false` refuses it (#GP), as KVM would.
    pub fn write_msr(&self, index: usize, msr: u32, value: u64) -> Result<bool, Error> {
        let refused = {
            let state = &mut *self.lock();
            let effect = state.vcpus[index]
                .apf
                .write_msr(msr, value, |gpa, len| self.place(gpa, len));
            match effect {
                Err(refused) => {
                    state.stats.refused_msr_writes += 1;
                    Some(refused)
                }
                Ok(MsrEffect::None) => None,
                Ok(MsrEffect::Disabled { dropped }) => {
                    state.stats.dropped += dropped as u64;
                    None
                }
                Ok(MsrEffect::Enabled) => {
                    self.deliver(state, index)?;
                    None
                }
                Ok(MsrEffect::Acked) => {
                    state.stats.acks += 1;
                    self.deliver(state, index)?;
                    None
                }
            }
        };
        // Reported once the lock is dropped: stderr may block.
        if let Some(refused) = refused {
            report_refusal(index, msr, value, refused);
        }
        Ok(refused.is_none())
    }

    /// A guest read of an async PF MSR.
    pub fn read_msr(&self, index: usize, msr: u32) -> u64 {
        self.lock().vcpus[index].apf.read_msr(msr)
    }

    fn place(&self, gpa: u64, len: u64) -> Place {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if !self
            .memory
            .check_range(GuestAddress(gpa), len, Permissions::ReadWrite)
        {
            Place::NotRam
        } else if self.lazy.contains(gpa) || self.lazy.contains(gpa + len as u64 - 1) {
            Place::LazyRam
        } else {
            Place::Ram
        }
    }

    /// Sends vCPU `index` its next page-ready if it may have one: the last was acknowledged
    /// and the area's token slot is free.
    fn deliver(&self, state: &mut State, index: usize) -> Result<(), Error> {
        let slot = &mut state.vcpus[index];
        let Some(area) = slot.apf.area() else {
            return Ok(());
        };
        let token_address = GuestAddress(area + AREA_TOKEN);
        let slot_token: u32 =
            self.memory
                .read_obj(token_address)
                .map_err(|source| Error::Area {
                    index,
                    area,
                    source,
                })?;
        let Some(token) = slot.apf.next_ready(slot_token == 0) else {
            return Ok(());
        };
        self.write_area(index, area + AREA_TOKEN, token)?;
        let vector = slot
            .apf
            .vector()
            .expect("async PF is on only with a vector");
        let delivered = self
            .vm
            .signal_msi(msi(index, vector))
            .map_err(|source| Error::Msi { index, source })?;
        if delivered == 0 {
            // The guest's APIC refused it (disabled): as KVM does, keep it for later.
            self.write_area(index, area + AREA_TOKEN, 0)?;
            slot.apf.undeliverable(token);
            state.stats.msi_blocked += 1;
            return Ok(());
        }
        state.stats.count_ready(index, token);
        Ok(())
    }

    fn write_area(&self, index: usize, gpa: u64, value: u32) -> Result<(), Error> {
        self.memory
            .write_obj(value, GuestAddress(gpa))
            .map_err(|source| Error::Area {
                index,
                area: gpa,
                source,
            })
    }
}

impl FaultObserver for UserApf {
    fn waiting(
        &self,
        gpa_page: u64,
        thread_id: i32,
        expected: Duration,
    ) -> Result<(), ObserverError> {
        let state = &mut *self.lock();
        let Some(index) = state
            .vcpus
            .iter()
            .position(|s| s.thread_id == Some(thread_id))
        else {
            state.stats.other_threads += 1;
            return Ok(());
        };
        state.stats.faults += 1;
        if state.served.contains(self.lazy.index(gpa_page)) {
            // A stale message: the page is in and the vCPU already woken.
            state.stats.count_sync(SyncReason::Present);
            return Ok(());
        }
        let wants_async = self.policy.wants_async(expected);
        let slot = &mut state.vcpus[index];
        match slot.apf.fault(gpa_page, wants_async) {
            Err(reason) => state.stats.count_sync(reason),
            Ok(()) => {
                state.stats.kicks += 1;
                slot.kicked_at = Some(Instant::now());
                match kick::kick_thread(thread_id) {
                    // The vCPU thread ended between its fault and the kick: nothing to do.
                    Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {}
                    result => result.map_err(|source| Error::Kick {
                        index,
                        thread_id,
                        source,
                    })?,
                }
            }
        }
        Ok(())
    }

    fn served(&self, gpa_page: u64) -> Result<(), ObserverError> {
        let state = &mut *self.lock();
        state.served.insert(self.lazy.index(gpa_page));
        for index in 0..state.vcpus.len() {
            if state.vcpus[index].apf.served(gpa_page) > 0 {
                self.deliver(state, index)?;
            }
        }
        Ok(())
    }
}

/// The events of a vCPU with a #PF added: error code 0 and the token as its payload (CR2),
/// which KVM applies only with `KVM_VCPUEVENT_VALID_PAYLOAD` (without it the #PF is dropped).
fn not_present(mut events: kvm_vcpu_events, token: Token) -> kvm_vcpu_events {
    events.exception.injected = 0;
    events.exception.pending = 1;
    events.exception.nr = PAGE_FAULT;
    events.exception.has_error_code = 1;
    events.exception.error_code = 0;
    events.exception_has_payload = 1;
    events.exception_payload = u64::from(token);
    // Only the payload is new: the other VALID flags would re-apply state read a moment ago.
    events.flags = KVM_VCPUEVENT_VALID_PAYLOAD;
    events
}

/// The page-ready interrupt for vCPU `index` (its APIC ID).
fn msi(index: usize, vector: u8) -> kvm_msi {
    // 0xFF is the broadcast destination.
    let destination = u32::try_from(index)
        .ok()
        .filter(|&id| id < 0xff)
        .expect("vCPU indexes below 255 are APIC IDs");
    kvm_msi {
        address_lo: MSI_ADDRESS_BASE | destination << MSI_DESTINATION_SHIFT,
        data: u32::from(vector),
        ..Default::default()
    }
}

/// A refused write is the guest's bug, and the guest only sees a #GP: say what was wrong.
fn report_refusal(index: usize, msr: u32, value: u64, refused: Refused) {
    let kvm = if refused.kvm_refuses_too() {
        "as KVM does"
    } else {
        "stricter than KVM"
    };
    eprintln!(
        "runner: vCPU {index}: wrmsr {msr:#x} <- {value:#x} refused with #GP ({kvm}): {refused}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_present_is_a_pending_page_fault_carrying_the_token() {
        let mut events = kvm_vcpu_events::default();
        events.interrupt.nr = 0x20;
        events.exception.injected = 1;
        let events = not_present(events, 0x1003);
        assert_eq!(
            (events.exception.pending, events.exception.injected),
            (1, 0)
        );
        assert_eq!(events.exception.nr, 14);
        assert_eq!(
            (events.exception.has_error_code, events.exception.error_code),
            (1, 0)
        );
        assert_eq!(
            (events.exception_has_payload, events.exception_payload),
            (1, 0x1003)
        );
        assert_eq!(events.flags, KVM_VCPUEVENT_VALID_PAYLOAD);
        assert_eq!(events.interrupt.nr, 0x20, "the rest is kept");
    }

    #[test]
    fn page_ready_goes_to_the_vcpus_apic() {
        let msi = msi(2, 0xf3);
        assert_eq!(msi.address_lo, 0xfee0_2000);
        assert_eq!((msi.address_hi, msi.data, msi.flags), (0, 0xf3, 0));
    }
}
