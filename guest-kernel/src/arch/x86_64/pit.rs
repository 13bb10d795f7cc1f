//! PIT channel 2 as a reference clock for calibration (both our VMM, through KVM's
//! in-kernel PIT, and QEMU provide it; no interrupt is involved).

use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;
const PIT_CHANNEL2: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
/// NMI status / control port: bit 0 gates channel 2, bit 1 drives the speaker,
/// bit 5 reads channel 2's output.
const PORT_B: u16 = 0x61;
const PORT_B_GATE2: u8 = 1 << 0;
const PORT_B_SPEAKER: u8 = 1 << 1;
const PORT_B_OUT2: u8 = 1 << 5;
/// Channel 2, low then high byte, mode 0 (output goes high at terminal count), binary.
const CHANNEL2_MODE0: u8 = 0b1011_0000;
/// Calibration window. Longer is more precise but each ring-0 instruction costs ~1 us.
const WINDOW_MS: u64 = 10;

/// Readings taken at the start and the end of a window of `ns` nanoseconds.
pub struct Window<T> {
    pub start: T,
    pub end: T,
    pub ns: u64,
}

/// Runs `read` at the start and at the end of a PIT-timed window; `None` if there is no
/// PIT channel 2 (e.g. QEMU's `microvm`), whose output would not start low.
pub fn measure<T>(mut read: impl FnMut() -> T) -> Option<Window<T>> {
    let count = PIT_HZ * WINDOW_MS / 1000;
    let mut port_b = Port::<u8>::new(PORT_B);
    let mut command = Port::<u8>::new(PIT_COMMAND);
    let mut channel2 = Port::<u8>::new(PIT_CHANNEL2);
    // SAFETY: the PIT and port B are standard PC devices; the speaker stays off.
    unsafe {
        let b = port_b.read();
        port_b.write((b & !PORT_B_SPEAKER) | PORT_B_GATE2);
        command.write(CHANNEL2_MODE0);
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
    }
    // In mode 0 the output stays low until the count runs out; high now means no PIT.
    // SAFETY: reading port B has no side effects.
    if unsafe { port_b.read() } & PORT_B_OUT2 != 0 {
        return None;
    }
    let start = read();
    // SAFETY: as above.
    while unsafe { port_b.read() } & PORT_B_OUT2 == 0 {}
    let end = read();
    Some(Window {
        start,
        end,
        ns: WINDOW_MS * 1_000_000,
    })
}
