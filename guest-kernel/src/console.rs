//! The kernel console (serial), shared by kernel messages and tasks' `write` calls.

use crate::arch::Serial;
use core::fmt::{self, Write};
use spin::Mutex;

static CONSOLE: Mutex<Option<Serial>> = Mutex::new(None);

/// Brings up the console; false if there is no serial port to print to.
pub fn init() -> bool {
    let serial = Serial::new();
    let present = serial.is_some();
    *CONSOLE.lock() = serial;
    present
}

pub fn write_str(s: &str) {
    if let Some(serial) = CONSOLE.lock().as_mut() {
        let _ = serial.write_str(s);
    }
}

pub fn write_fmt(args: fmt::Arguments<'_>) {
    if let Some(serial) = CONSOLE.lock().as_mut() {
        let _ = serial.write_fmt(args);
    }
}

/// Takes a byte the host sent to the console, if one has arrived (`hold=console`).
pub fn try_receive() -> Option<u8> {
    CONSOLE.lock().as_mut()?.try_receive()
}

/// Makes the console usable on the fatal path, which may have interrupted this CPU while it
/// held the lock: another CPU's write gets a moment to finish first.
pub fn force_unlock() {
    const PATIENCE: u32 = 1_000_000;
    for _ in 0..PATIENCE {
        if !CONSOLE.is_locked() {
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: called only on the fatal path; after that long the holder is this CPU's
    // interrupted code (which never resumes) or a CPU that stopped, not a live writer.
    unsafe { CONSOLE.force_unlock() };
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::console::write_str("\n") };
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
