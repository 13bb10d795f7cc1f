//! The protocol as the VMM plays it for one vCPU, and every host fault it can inject.

use super::*;
use apf_pv::x86::{KVM_ASYNC_PF_DELIVERY_AS_INT, KVM_ASYNC_PF_ENABLED};

const AREA: u64 = 0x8000;
const EN: u64 = AREA | KVM_ASYNC_PF_ENABLED | KVM_ASYNC_PF_DELIVERY_AS_INT;
const PAGE: u64 = 0x400_0000;

fn ram(_: u64, _: u64) -> Place {
    Place::Ram
}

/// A vCPU with async PF enabled and the enabling broadcast sent and acknowledged.
fn enabled() -> VcpuApf {
    faulty(&[])
}

/// As [`enabled`], injecting `inject`.
fn faulty(inject: &[Inject]) -> VcpuApf {
    let mut vcpu = VcpuApf::new(0, inject.iter().copied().collect());
    assert_eq!(
        vcpu.write_msr(MSR_KVM_ASYNC_PF_INT, 0xf3, ram),
        Ok(MsrEffect::None)
    );
    assert_eq!(
        vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, EN, ram),
        Ok(MsrEffect::Enabled)
    );
    assert_eq!(vcpu.next_ready(true), Some(BROADCAST));
    assert_eq!(
        vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram),
        Ok(MsrEffect::Acked)
    );
    vcpu
}

#[test]
fn a_fault_goes_from_kick_to_not_present_to_ready() {
    let mut vcpu = enabled();
    assert_eq!(vcpu.fault(PAGE, true), Ok(()));
    assert_eq!(vcpu.take_kick(), Some(PAGE));
    assert_eq!(vcpu.take_kick(), None, "one kick, taken once");
    let token = vcpu.not_present(PAGE);
    assert_eq!(vcpu.next_ready(true), None, "not arrived yet");
    assert_eq!(vcpu.served(PAGE + 0x1000), 0, "another page");
    assert_eq!(vcpu.served(PAGE), 1);
    assert_eq!(vcpu.served(PAGE), 0, "its token was readied once");
    assert_eq!(vcpu.next_ready(true), Some(token));
}

#[test]
fn page_ready_waits_for_the_ack_and_the_free_slot() {
    let mut vcpu = enabled();
    let tokens: Vec<_> = (0..3)
        .map(|i| vcpu.not_present(PAGE + i * 0x1000))
        .collect();
    for i in (0..3).rev() {
        vcpu.served(PAGE + i * 0x1000);
    }
    assert_eq!(vcpu.next_ready(false), None, "slot busy");
    assert_eq!(
        vcpu.next_ready(true),
        Some(tokens[2]),
        "in order of arrival"
    );
    assert_eq!(vcpu.next_ready(true), None, "not acknowledged");
    vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, 0, ram).unwrap();
    assert_eq!(vcpu.next_ready(true), None, "ACK without bit 0 is no ACK");
    vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram).unwrap();
    assert_eq!(vcpu.next_ready(true), Some(tokens[1]));
    vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram).unwrap();
    assert_eq!(vcpu.next_ready(true), Some(tokens[0]));
}

#[test]
fn two_faults_on_one_page_get_two_tokens_both_readied() {
    let mut vcpu = enabled();
    let first = vcpu.not_present(PAGE);
    let second = vcpu.not_present(PAGE);
    assert_ne!(first, second);
    assert_eq!(vcpu.served(PAGE), 2);
}

#[test]
fn faults_stay_synchronous_when_async_pf_cannot_be_used() {
    let mut off = VcpuApf::new(0, Injections::new());
    assert_eq!(off.fault(PAGE, true), Err(SyncReason::Disabled));
    let mut vcpu = enabled();
    assert_eq!(vcpu.fault(PAGE, false), Err(SyncReason::Fast));
    vcpu.fault(PAGE, true).unwrap();
    assert_eq!(
        vcpu.fault(PAGE + 0x1000, true),
        Err(SyncReason::KickPending)
    );
    vcpu.take_kick();
    for i in 0..MAX_OUTSTANDING as u64 {
        vcpu.not_present(PAGE + i * 0x1000);
    }
    assert_eq!(vcpu.fault(PAGE, true), Err(SyncReason::Full));
    vcpu.served(PAGE);
    assert!(vcpu.next_ready(true).is_some());
    ack(&mut vcpu);
    assert_eq!(vcpu.fault(PAGE, true), Ok(()), "a slot freed up");
}

#[test]
fn disabling_drops_everything_and_reenabling_broadcasts() {
    let mut vcpu = enabled();
    vcpu.not_present(PAGE);
    vcpu.not_present(PAGE + 0x1000);
    vcpu.served(PAGE);
    vcpu.fault(PAGE + 0x2000, true).unwrap();
    assert_eq!(
        vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, 0, ram),
        Ok(MsrEffect::Disabled { dropped: 1 })
    );
    assert_eq!(vcpu.take_kick(), None);
    assert_eq!(
        vcpu.next_ready(true),
        None,
        "the ready token was dropped too"
    );
    assert_eq!(vcpu.served(PAGE + 0x1000), 0);
    assert_eq!(
        vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, EN, ram),
        Ok(MsrEffect::Enabled)
    );
    assert_eq!(vcpu.next_ready(true), Some(BROADCAST));
}

#[test]
fn reenabling_while_on_broadcasts_only_without_queued_completions() {
    let mut vcpu = enabled();
    let token = vcpu.not_present(PAGE);
    vcpu.served(PAGE);
    vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, EN, ram).unwrap();
    assert_eq!(vcpu.next_ready(true), Some(token));
    vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram).unwrap();
    assert_eq!(vcpu.next_ready(true), None, "no broadcast queued behind it");
}

#[test]
fn refused_writes_change_nothing_and_reads_return_what_was_written() {
    let mut vcpu = enabled();
    assert!(vcpu.write_msr(MSR_KVM_ASYNC_PF_EN, EN | 0x10, ram).is_err());
    assert!(vcpu.write_msr(MSR_KVM_ASYNC_PF_INT, 16, ram).is_err());
    assert_eq!(vcpu.read_msr(MSR_KVM_ASYNC_PF_EN), EN);
    assert_eq!(vcpu.read_msr(MSR_KVM_ASYNC_PF_INT), 0xf3);
    assert_eq!(vcpu.read_msr(MSR_KVM_ASYNC_PF_ACK), 0);
    assert_eq!((vcpu.area(), vcpu.vector()), (Some(AREA), Some(0xf3)));
    let mut fresh = VcpuApf::new(1, Injections::new());
    assert_eq!(
        fresh.write_msr(MSR_KVM_ASYNC_PF_EN, EN, ram),
        Err(Refused::NoVector)
    );
    assert_eq!(fresh.area(), None);
}

fn ack(vcpu: &mut VcpuApf) {
    vcpu.write_msr(MSR_KVM_ASYNC_PF_ACK, ACK, ram).unwrap();
}

/// Sends `n` faults on pages 0..n, serves them all, and returns the page-readies sent.
fn round(vcpu: &mut VcpuApf, n: u64) -> (Vec<Token>, Vec<Token>) {
    let tokens: Vec<_> = (0..n)
        .map(|i| vcpu.not_present(PAGE + i * 0x1000))
        .collect();
    for i in 0..n {
        vcpu.served(PAGE + i * 0x1000);
    }
    let mut sent = Vec::new();
    while let Some(token) = vcpu.next_ready(true) {
        sent.push(token);
        ack(vcpu);
    }
    (tokens, sent)
}

#[test]
fn drop_ready_loses_every_8th_page_ready() {
    let mut vcpu = faulty(&[Inject::DropReady]);
    let (tokens, sent) = round(&mut vcpu, 16);
    let expected: Vec<_> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| (i + 1) % 8 != 0)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(sent, expected);
    assert_eq!(vcpu.injected()[&Inject::DropReady], 2);
}

#[test]
fn duplicate_ready_repeats_every_8th_after_its_ack() {
    let mut vcpu = faulty(&[Inject::DuplicateReady]);
    let (tokens, sent) = round(&mut vcpu, 8);
    assert_eq!(sent.len(), 9);
    assert_eq!(sent[7], tokens[7]);
    assert_eq!(sent[8], tokens[7], "sent again");
}

#[test]
fn unknown_token_precedes_every_8th() {
    let mut vcpu = faulty(&[Inject::UnknownToken]);
    let (tokens, sent) = round(&mut vcpu, 8);
    // The enabling broadcast was the first page-ready, so the 8th is the 7th here.
    assert_eq!(sent.len(), 9);
    assert_eq!(sent[6], UNKNOWN_TOKEN);
    assert!(!tokens.contains(&UNKNOWN_TOKEN));
    assert_eq!(&sent[7..], &tokens[6..]);
}

#[test]
fn reorder_holds_every_8th_until_the_next_page_arrives() {
    let mut vcpu = faulty(&[Inject::Reorder]);
    let (tokens, sent) = round(&mut vcpu, 10);
    let mut expected = tokens.clone();
    expected.swap(7, 8);
    assert_eq!(sent, expected);
    assert_eq!(vcpu.injected()[&Inject::Reorder], 1);
}

#[test]
fn reorder_never_holds_the_last_page_ready() {
    let mut vcpu = faulty(&[Inject::Reorder]);
    let (tokens, sent) = round(&mut vcpu, 8);
    assert_eq!(sent, tokens, "nothing else was coming: the 8th went out");
}

#[test]
fn wake_all_broadcasts_while_tokens_stay_outstanding() {
    let mut vcpu = faulty(&[Inject::WakeAll]);
    let (tokens, sent) = round(&mut vcpu, 16);
    assert_eq!(
        sent[0], BROADCAST,
        "after the 16th not-present, before any ready"
    );
    assert_eq!(&sent[1..], &tokens[..]);
}

#[test]
fn disable_reenable_forgets_outstanding_tokens_and_broadcasts() {
    let mut vcpu = faulty(&[Inject::DisableReenable]);
    let (_, sent) = round(&mut vcpu, 32);
    assert_eq!(sent, [BROADCAST], "the first 32 were forgotten");
    assert_eq!(vcpu.injected()[&Inject::DisableReenable], 1);
}

#[test]
fn overflow_goes_past_64_outstanding() {
    let mut vcpu = faulty(&[Inject::Overflow]);
    for i in 0..MAX_OUTSTANDING as u64 + 2 {
        assert_eq!(vcpu.fault(PAGE + i * 0x1000, true), Ok(()));
        vcpu.take_kick();
        vcpu.not_present(PAGE + i * 0x1000);
    }
    assert_eq!(vcpu.injected()[&Inject::Overflow], 2);
}

#[test]
fn tokens_count_against_the_limit_until_their_page_ready_is_acknowledged() {
    let mut vcpu = enabled();
    for i in 0..MAX_OUTSTANDING as u64 {
        vcpu.not_present(PAGE + i * 0x1000);
    }
    for i in 0..MAX_OUTSTANDING as u64 {
        vcpu.served(PAGE + i * 0x1000);
    }
    // Every page arrived, but the guest still waits for 64 page-readies.
    assert_eq!(vcpu.fault(PAGE, true), Err(SyncReason::Full));
    assert!(vcpu.next_ready(true).is_some());
    assert_eq!(
        vcpu.fault(PAGE, true),
        Err(SyncReason::Full),
        "sent, not yet acknowledged"
    );
    ack(&mut vcpu);
    assert_eq!(vcpu.fault(PAGE, true), Ok(()), "one slot is free");
}

#[test]
fn a_page_the_guest_cannot_take_async_stays_synchronous_until_it_arrives() {
    let mut vcpu = enabled();
    vcpu.stay_synchronous(PAGE, SyncReason::Ring0);
    assert_eq!(
        vcpu.fault(PAGE, true),
        Err(SyncReason::Ring0),
        "no kick storm"
    );
    assert_eq!(
        vcpu.fault(PAGE + 0x1000, true),
        Ok(()),
        "other pages still go async"
    );
    vcpu.take_kick();
    vcpu.served(PAGE);
    assert_eq!(vcpu.fault(PAGE, true), Ok(()));
    vcpu.take_kick();
    vcpu.stay_synchronous(PAGE, SyncReason::EventPending);
    assert_eq!(
        vcpu.fault(PAGE, true),
        Ok(()),
        "a transient reason is worth a new kick"
    );
}

#[test]
fn an_undeliverable_page_ready_is_sent_again_first() {
    let mut vcpu = enabled();
    let first = vcpu.not_present(PAGE);
    let second = vcpu.not_present(PAGE + 0x1000);
    vcpu.served(PAGE);
    vcpu.served(PAGE + 0x1000);
    assert_eq!(vcpu.next_ready(true), Some(first));
    vcpu.undeliverable(first);
    assert_eq!(vcpu.next_ready(true), Some(first));
    ack(&mut vcpu);
    assert_eq!(vcpu.next_ready(true), Some(second));
}
