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

/// Releases the lock when the kernel is dying, possibly while it held the lock.
pub fn force_unlock() {
    if CONSOLE.is_locked() {
        // SAFETY: called only on the fatal path; whoever held the lock will never resume.
        unsafe { CONSOLE.force_unlock() };
    }
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
