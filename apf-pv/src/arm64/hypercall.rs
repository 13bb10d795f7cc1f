//! The async PF hypercall (`ASYNC_PF_FUNC_ID`, §2.2): one method per sub-function.

use super::abi::{
    ASYNC_PF_ENABLE, ASYNC_PF_FUNC_ID, ASYNC_PF_IRQ, ASYNC_PF_IRQ_ACK, ASYNC_PF_SDEI,
    ASYNC_PF_SLOTS, ASYNC_PF_VERSION,
};
use super::enable::EnableValue;
use sdei::EventNumber;
use sdei::smccc::{Conduit, SmcccError};

/// What an `ASYNC_PF_ENABLE` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// The host switched async PF on (mapping the block and queueing a broadcast
    /// page-ready) or off (dropping its queue).
    Done,
    /// The enabled bit already had this value (`NOT_REQUIRED`): nothing changed, not even
    /// the block's address.
    Unchanged,
}

/// Issues the async PF sub-functions through `C` (the `hvc` conduit in a KVM guest).
/// Every call acts on the calling vCPU.
pub struct Apf<C> {
    conduit: C,
}

impl<C: Conduit> Apf<C> {
    /// Calls through `conduit`. `const` so that a kernel can keep one in a `static`.
    pub const fn new(conduit: C) -> Self {
        Self { conduit }
    }

    /// `ASYNC_PF_VERSION`: the raw version in `x1` (see
    /// [`ApfVersion::from_x1`](super::ApfVersion::from_x1)).
    pub fn version(&self) -> Result<u64, SmcccError> {
        self.call(ASYNC_PF_VERSION, [0, 0])
    }

    /// `ASYNC_PF_SLOTS`: the most tokens the host keeps outstanding for this vCPU.
    pub fn slots(&self) -> Result<u64, SmcccError> {
        self.call(ASYNC_PF_SLOTS, [0, 0])
    }

    /// `ASYNC_PF_SDEI`: the SDEI event number of "page not present" for this vCPU, to
    /// register and enable with the SDEI client.
    pub fn sdei_event(&self) -> Result<EventNumber, SmcccError> {
        let x1 = self.call(ASYNC_PF_SDEI, [0, 0])?;
        EventNumber::try_from(x1).map_err(|_| SmcccError::Unexpected(x1))
    }

    /// `ASYNC_PF_IRQ`: the PPI INTID of "page ready" for this vCPU (enable it,
    /// level-sensitive, before [`enable`](Self::enable)).
    pub fn irq(&self) -> Result<u32, SmcccError> {
        let x1 = self.call(ASYNC_PF_IRQ, [0, 0])?;
        u32::try_from(x1).map_err(|_| SmcccError::Unexpected(x1))
    }

    /// `ASYNC_PF_ENABLE` with `value` (split over `x2`/`x3`). A successful enable queues a
    /// broadcast page-ready; [`SmcccError::InvalidParameter`] means the VMM has not set
    /// the SDEI event and IRQ, [`SmcccError::NotSupported`] no in-kernel vGIC or a block
    /// outside RAM.
    pub fn enable(&self, value: EnableValue) -> Result<Switch, SmcccError> {
        match self.call(ASYNC_PF_ENABLE, value.registers()) {
            Ok(_) => Ok(Switch::Done),
            Err(SmcccError::NotRequired) => Ok(Switch::Unchanged),
            Err(error) => Err(error),
        }
    }

    /// `ASYNC_PF_ENABLE(0)`: async PF off; release all waiters afterwards.
    pub fn disable(&self) -> Result<Switch, SmcccError> {
        self.enable(EnableValue::DISABLED)
    }

    /// `ASYNC_PF_IRQ_ACK`: lowers the page-ready PPI and lets the host send the next
    /// page-ready; call after [`take_page_ready`](super::take_page_ready).
    pub fn irq_ack(&self) -> Result<(), SmcccError> {
        self.call(ASYNC_PF_IRQ_ACK, [0, 0]).map(drop)
    }

    /// `x1` of sub-function `sub` with arguments `x2`/`x3`, if `x0` reports success.
    fn call(&self, sub: u64, [x2, x3]: [u64; 2]) -> Result<u64, SmcccError> {
        let [x0, x1, ..] = self
            .conduit
            .call([ASYNC_PF_FUNC_ID.into(), sub, x2, x3, 0, 0]);
        SmcccError::check(x0).map(|()| x1)
    }
}

#[cfg(test)]
mod tests {
    use super::{Apf, Switch};
    use crate::arm64::EnableValue;
    use sdei::MockConduit;
    use sdei::smccc::SmcccError;

    const APF: u64 = 0x8600_0002;

    /// Runs `f` against a host answering `[x0, x1]`; returns the result and the one call.
    fn one_call<T>(
        x0: i64,
        x1: u64,
        f: impl FnOnce(&Apf<&dyn sdei::Conduit>) -> T,
    ) -> (T, [u64; 6]) {
        let host = MockConduit::replying([x0 as u64, x1, 0, 0]);
        let result = f(&Apf::new(&host as &dyn sdei::Conduit));
        let calls = host.calls();
        assert_eq!(calls.len(), 1, "{calls:x?}");
        (result, calls[0])
    }

    #[test]
    fn queries_return_x1() {
        let (r, call) = one_call(0, 0x01_0000, |apf| apf.version());
        assert_eq!((r, call), (Ok(0x01_0000), [APF, 0, 0, 0, 0, 0]));
        let (r, call) = one_call(0, 64, |apf| apf.slots());
        assert_eq!((r, call), (Ok(64), [APF, 1, 0, 0, 0, 0]));
        let (r, call) = one_call(0, 0x4040_0001, |apf| apf.sdei_event());
        assert_eq!((r, call), (Ok(0x4040_0001), [APF, 2, 0, 0, 0, 0]));
        let (r, call) = one_call(0, 21, |apf| apf.irq());
        assert_eq!((r, call), (Ok(21), [APF, 3, 0, 0, 0, 0]));
    }

    #[test]
    fn out_of_range_numbers_are_unexpected() {
        let huge = 1 << 32;
        assert_eq!(
            one_call(0, huge, |apf| apf.sdei_event()).0,
            Err(SmcccError::Unexpected(huge))
        );
        assert_eq!(
            one_call(0, huge, |apf| apf.irq()).0,
            Err(SmcccError::Unexpected(huge))
        );
    }

    #[test]
    fn enable_splits_the_value() {
        let value = EnableValue::new(0x0000_0001_4000_0040, true).unwrap();
        let (r, call) = one_call(0, 0, |apf| apf.enable(value));
        assert_eq!(r, Ok(Switch::Done));
        assert_eq!(call, [APF, 4, 0x4000_0043, 1, 0, 0]);
    }

    #[test]
    fn second_enable_is_not_required() {
        let value = EnableValue::new(0x4000_0040, true).unwrap();
        assert_eq!(
            one_call(-2, 0, |apf| apf.enable(value)).0,
            Ok(Switch::Unchanged)
        );
    }

    #[test]
    fn enable_before_the_vmm_configured_sdei_and_irq() {
        let value = EnableValue::new(0x4000_0040, true).unwrap();
        assert_eq!(
            one_call(-3, 0, |apf| apf.enable(value)).0,
            Err(SmcccError::InvalidParameter)
        );
    }

    #[test]
    fn disable_passes_zero() {
        let (r, call) = one_call(0, 0, |apf| apf.disable());
        assert_eq!(r, Ok(Switch::Done));
        assert_eq!(call, [APF, 4, 0, 0, 0, 0]);
        assert_eq!(
            one_call(-2, 0, |apf| apf.disable()).0,
            Ok(Switch::Unchanged)
        );
    }

    #[test]
    fn irq_ack() {
        let (r, call) = one_call(0, 0, |apf| apf.irq_ack());
        assert_eq!((r, call), (Ok(()), [APF, 5, 0, 0, 0, 0]));
    }

    #[test]
    fn no_apf_state_means_not_supported_everywhere() {
        assert_eq!(
            one_call(-1, 7, |apf| apf.version()).0,
            Err(SmcccError::NotSupported)
        );
        assert_eq!(
            one_call(-1, 7, |apf| apf.slots()).0,
            Err(SmcccError::NotSupported)
        );
        assert_eq!(
            one_call(-1, 7, |apf| apf.sdei_event()).0,
            Err(SmcccError::NotSupported)
        );
        assert_eq!(
            one_call(-1, 7, |apf| apf.irq()).0,
            Err(SmcccError::NotSupported)
        );
        assert_eq!(
            one_call(-1, 7, |apf| apf.irq_ack()).0,
            Err(SmcccError::NotSupported)
        );
    }
}
