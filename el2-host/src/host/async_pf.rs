//! Async page faults (`mode=apf`, `arm64-apf-sdei-abi.md` §2.5-2.7): a lazy fault becomes a
//! "page not present" SDEI event while the fetch runs; when its latency has elapsed (the
//! EL2 timer fires, or any earlier exit notices) the page is mapped and "page ready" is
//! sent through the control block and the PPI, one at a time, each after the guest's ACK.
//! Physical IRQs also land here: the host's timer, and the guest's own, which are forwarded.

use super::Host;
use super::control_block::{ControlBlock, Notification};
use super::lazy;
use crate::arch::aarch64::console::println;
use crate::arch::aarch64::{counter, gic, hyp_timer};
use el2_host::apf::PAGE_READY_INTID;
use el2_host::frame::Frame;
use el2_host::list_registers::Kind;

/// `SPSR_EL2.M[4:0]` and its value for AArch64 EL0.
const SPSR_MODE_MASK: u64 = 0x1f;
const SPSR_MODE_EL0T: u64 = 0b00000;

impl Host {
    /// Tries to serve the lazy fault on `page` asynchronously; `false` if it must be served
    /// synchronously (async PF off, or not allowed now: §2.7).
    pub(super) fn try_not_present(&mut self, frame: &mut Frame, page: u64) -> bool {
        if self.apf.fetches.find(page).is_some() {
            // Already in flight: the guest re-faults until it completes (v4 does the same).
            self.stats.refaults += 1;
            return true;
        }
        let at_el0 = frame.spsr & SPSR_MODE_MASK == SPSR_MODE_EL0T;
        let Some(control) = self.apf.control() else {
            return false;
        };
        let block = ControlBlock::at(control.block);
        if !self.apf.may_send_not_present(at_el0) || !self.sdei.deliverable() || !block.is_free() {
            return false;
        }
        let deadline = self.lazy.start(&mut self.memory, page, self.apf.faulty());
        let token = self.apf.not_present(page, deadline);
        block.write(Notification::NotPresent, token);
        let delivered = self.sdei.deliver(frame);
        debug_assert!(delivered, "deliverable was checked");
        self.stats.not_present += 1;
        true
    }

    /// Completes due fetches and sends the next page-ready; re-arms the EL2 timer for the
    /// next deadline. Runs before every return to the guest.
    pub(super) fn poll(&mut self) {
        self.complete_due();
        hyp_timer::arm(self.apf.fetches.next_deadline());
    }

    /// [`Host::poll`] without the timer: maps the pages whose fetch is due and sends the
    /// next page-ready.
    pub(super) fn complete_due(&mut self) {
        let now = counter::now();
        while let Some(fetch) = self.apf.fetches.take_due(now) {
            lazy::map(&mut self.memory, fetch.page);
            if let Some(token) = self.apf.completed(fetch) {
                // Reported now: a guest left waiting for it may never reach the summary.
                println!("inject: drop-ready dropped the page-ready of token {token:#x}");
            }
        }
        if self.apf.page_ready_pending() {
            // The line stays high until IRQ_ACK: an EOI without ACK takes it again.
            if !gic::holds(PAGE_READY_INTID) {
                self.raise_page_ready();
            }
        } else if let Some(control) = self.apf.control() {
            let block = ControlBlock::at(control.block);
            if block.is_free()
                && let Some(token) = self.apf.next_page_ready()
            {
                block.write(Notification::PageReady, token);
                self.raise_page_ready();
                self.stats.page_ready += 1;
            }
        }
    }

    fn raise_page_ready(&self) {
        if !gic::raise(PAGE_READY_INTID, Kind::Virtual) {
            panic!("no free list register for page-ready");
        }
    }

    /// A physical IRQ interrupted the guest: the EL2 timer (its work is `poll`'s, which
    /// runs next), or one of the guest's own interrupts (its timers), forwarded
    /// hardware-linked, so the guest's EOI deactivates it.
    pub(super) fn physical_irq(&mut self) {
        while let Some(intid) = gic::acknowledge() {
            gic::drop_priority(intid);
            if intid == hyp_timer::INTID {
                hyp_timer::arm(None);
                gic::deactivate(intid);
            } else if gic::raise(intid, Kind::Forwarded) {
                self.stats.forwarded_irqs += 1;
            } else {
                panic!("no free list register to forward physical IRQ {intid}");
            }
        }
    }
}
