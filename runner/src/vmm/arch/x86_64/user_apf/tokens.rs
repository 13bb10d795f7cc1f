//! Token allocation, as KVM does it: `(id << 12) | vcpu_id`, so a token names its vCPU and
//! is never 0 (an empty token slot) nor `~0` (the broadcast wake).

use apf_pv::waiters::{BROADCAST, Token};

/// Low bits of a token that hold the vCPU id (KVM's `kvm_async_pf` layout, ABI spec §4.4).
const VCPU_ID_BITS: u32 = 12;
/// Ids wrap after this many faults per vCPU.
const ID_LIMIT: u32 = 1 << (32 - VCPU_ID_BITS);
/// Most vCPUs whose id fits the token's low bits.
pub const MAX_VCPUS: u16 = 1 << VCPU_ID_BITS;

/// Hands out the tokens of one vCPU.
#[derive(Debug)]
pub struct Tokens {
    vcpu_id: u32,
    next_id: u32,
}

impl Tokens {
    pub fn new(vcpu_id: u16) -> Self {
        assert!(
            vcpu_id < MAX_VCPUS,
            "vCPU id {vcpu_id} does not fit a token"
        );
        Tokens {
            vcpu_id: u32::from(vcpu_id),
            next_id: 1,
        }
    }

    /// The next token. Ids wrap every 2^20 faults, far more than the 64 a vCPU can have
    /// outstanding, so a live token is never handed out twice.
    pub fn next(&mut self) -> Token {
        loop {
            let id = self.next_id;
            self.next_id = (id + 1) % ID_LIMIT;
            // KVM skips id 0 so that vCPU 0's tokens are never 0; the last vCPU id's last
            // token would be the broadcast.
            let token = (id << VCPU_ID_BITS) | self.vcpu_id;
            if id != 0 && token != BROADCAST {
                return token;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_vcpu_id_and_count_up() {
        let mut tokens = Tokens::new(3);
        assert_eq!(tokens.next(), (1 << 12) | 3);
        assert_eq!(tokens.next(), (2 << 12) | 3);
    }

    #[test]
    fn tokens_wrap_without_ever_being_empty_or_broadcast() {
        for vcpu in [0, 1, MAX_VCPUS - 1] {
            let mut tokens = Tokens::new(vcpu);
            let first = tokens.next();
            let mut seen = 1;
            loop {
                let token = tokens.next();
                assert!(token != 0 && token != BROADCAST, "vCPU {vcpu}: {token:#x}");
                assert_eq!(token & (u32::from(MAX_VCPUS) - 1), u32::from(vcpu));
                seen += 1;
                if token == first {
                    break;
                }
            }
            // `seen` counts the first token twice. Id 0 is always skipped; for the last vCPU
            // id the all-ones token is skipped too.
            let expected = if vcpu == MAX_VCPUS - 1 {
                ID_LIMIT - 1
            } else {
                ID_LIMIT
            };
            assert_eq!(seen, expected, "vCPU {vcpu}: the cycle length");
        }
    }

    #[test]
    #[should_panic(expected = "does not fit a token")]
    fn too_many_vcpus_are_a_bug() {
        Tokens::new(MAX_VCPUS);
    }
}
