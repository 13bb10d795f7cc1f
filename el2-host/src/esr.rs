//! Decoding of `ESR_EL2` and the fault address registers for the exceptions the host
//! handles (Arm ARM register descriptions of `ESR_EL2` and `HPFAR_EL2`).

/// `ESR_EL2.EC`, bits 31:26: why the exception was taken.
const EC_SHIFT: u32 = 26;
const EC_MASK: u64 = 0x3f;
/// `ESR_EL2.ISS`, bits 24:0.
const ISS_MASK: u64 = 0x1ff_ffff;

/// EC 0x01: trapped WFI or WFE (with `HCR_EL2.TWI`/`TWE`).
const EC_WFX: u64 = 0x01;
/// EC 0x16: HVC from AArch64 state; `ELR_EL2` is already past the instruction.
const EC_HVC64: u64 = 0x16;
/// EC 0x17: SMC from AArch64 state trapped by `HCR_EL2.TSC`; `ELR_EL2` is *at* the SMC.
const EC_SMC64: u64 = 0x17;
/// EC 0x20: instruction abort from a lower EL (a stage-2 fault on a fetch).
const EC_IABT_LOWER: u64 = 0x20;
/// EC 0x24: data abort from a lower EL (a stage-2 fault on a load or store).
const EC_DABT_LOWER: u64 = 0x24;

/// Abort ISS bits 5:0: the fault status code (DFSC/IFSC).
const FSC_MASK: u64 = 0x3f;
/// FSC bits 5:2 of a translation fault (bits 1:0 are the level): 0b0001xx.
const FSC_TRANSLATION: u64 = 0b00_0100;
/// FSC with the level bits cleared.
const FSC_TYPE_MASK: u64 = 0b11_1100;
/// Data abort ISS bit 6: the access was a write.
const ISS_WNR: u64 = 1 << 6;
/// Abort ISS bit 7: the fault happened on the guest's stage-1 table walk.
const ISS_S1PTW: u64 = 1 << 7;

/// `HPFAR_EL2.FIPA`, bits 43:4, holds IPA bits 51:12 of a stage-2 fault.
const HPFAR_FIPA_MASK: u64 = 0x0000_0fff_ffff_fff0;
/// Shift from the FIPA field to the IPA.
const HPFAR_FIPA_TO_IPA: u32 = 8;
/// The page offset comes from `FAR_EL2` (HPFAR has the page only).
const PAGE_OFFSET_MASK: u64 = 0xfff;

/// An exception from the guest, as far as the host tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// `hvc #imm`.
    Hvc { imm: u16 },
    /// `smc #imm`, trapped (PSCI calls from a guest that uses the SMC conduit).
    Smc { imm: u16 },
    /// A stage-2 abort on a data access or an instruction fetch.
    Abort(Abort),
    /// `wfi`/`wfe` trapped.
    Wfx,
    /// Anything else: the raw EC, for the log.
    Other { ec: u64 },
}

/// A stage-2 abort's syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// An instruction fetch rather than a load or store.
    pub fetch: bool,
    /// A translation fault (no valid stage-2 entry), the only kind lazy memory causes.
    pub translation: bool,
    pub write: bool,
    /// The fault was on the guest's own page-table walk.
    pub stage1_walk: bool,
    /// The raw fault status code, for the log.
    pub fsc: u8,
}

impl GuestExit {
    /// Decodes `ESR_EL2` of an exception taken from EL1 or EL0.
    pub fn decode(esr: u64) -> Self {
        let iss = esr & ISS_MASK;
        let imm = iss as u16;
        match (esr >> EC_SHIFT) & EC_MASK {
            EC_HVC64 => Self::Hvc { imm },
            EC_SMC64 => Self::Smc { imm },
            ec @ (EC_IABT_LOWER | EC_DABT_LOWER) => {
                let fsc = iss & FSC_MASK;
                let fetch = ec == EC_IABT_LOWER;
                Self::Abort(Abort {
                    fetch,
                    translation: fsc & FSC_TYPE_MASK == FSC_TRANSLATION,
                    write: !fetch && iss & ISS_WNR != 0,
                    stage1_walk: iss & ISS_S1PTW != 0,
                    fsc: fsc as u8,
                })
            }
            EC_WFX => Self::Wfx,
            ec => Self::Other { ec },
        }
    }
}

/// The faulting IPA of a stage-2 abort: the page from `HPFAR_EL2`, the offset from
/// `FAR_EL2`.
pub fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & HPFAR_FIPA_MASK) << HPFAR_FIPA_TO_IPA) | (far & PAGE_OFFSET_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_values_decode() {
        // Logged by the a64-el2-probe: a load from 0x44000000 with no stage-2 entry at L3.
        let exit = GuestExit::decode(0x93d0_8007);
        assert_eq!(
            exit,
            GuestExit::Abort(Abort {
                fetch: false,
                translation: true,
                write: false,
                stage1_walk: false,
                fsc: 7
            })
        );
        assert_eq!(fault_ipa(0x44_0000, 0x4400_0000), 0x4400_0000);
        assert_eq!(fault_ipa(0x44_0000, 0x1234_5678), 0x4400_0678);
    }

    #[test]
    fn calls_and_other_classes() {
        assert_eq!(GuestExit::decode(0x5a00_0000), GuestExit::Hvc { imm: 0 });
        assert_eq!(GuestExit::decode(0x5e00_0001), GuestExit::Smc { imm: 1 });
        assert_eq!(GuestExit::decode(0x0600_0001), GuestExit::Wfx);
        assert_eq!(
            GuestExit::decode(0x6200_0000),
            GuestExit::Other { ec: 0x18 }
        );
    }

    #[test]
    fn write_permission_and_fetch_aborts() {
        // Write, permission fault level 3 (FSC 0b001111).
        let GuestExit::Abort(abort) = GuestExit::decode(0x9200_004f) else {
            panic!("not an abort")
        };
        assert!(abort.write && !abort.translation && !abort.fetch);
        // Instruction abort, translation fault level 2: WnR is not defined for fetches.
        let GuestExit::Abort(abort) = GuestExit::decode(0x8200_0046) else {
            panic!("not an abort")
        };
        assert!(abort.fetch && abort.translation && !abort.write);
    }
}
