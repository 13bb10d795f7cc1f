//! Code that runs in ring 3: the task side of the system calls, and the tasks themselves.
//!
//! Nothing here may touch kernel statics (they are mapped supervisor-only); tasks get
//! their data through the pointer argument, in user memory.

pub mod demo;
pub mod faults;
pub mod kv;
pub mod virtio_net;
pub mod workload;

use crate::abi::{PANIC_STATUS, Syscall, TaskReport};
use crate::arch;
use core::fmt::{self, Write};
use core::panic::PanicInfo;

pub fn write(text: &str) -> i64 {
    arch::syscall(
        Syscall::Write as u64,
        text.as_ptr() as u64,
        text.len() as u64,
        0,
    )
}

pub fn exit(status: i64) -> ! {
    arch::syscall(Syscall::Exit as u64, status as u64, 0, 0);
    unreachable!("exit returned")
}

pub fn yield_now() {
    arch::syscall(Syscall::Yield as u64, 0, 0, 0);
}

pub fn time_ns() -> u64 {
    arch::syscall(Syscall::Time as u64, 0, 0, 0) as u64
}

pub fn park(key: u64) {
    arch::syscall(Syscall::Park as u64, key, 0, 0);
}

pub fn wake(key: u64) {
    arch::syscall(Syscall::Wake as u64, key, 0, 0);
}

/// Waits at the migration gate (`hold=console`) until the host releases it; returns at once
/// without one.
pub fn hold() {
    arch::syscall(Syscall::Hold as u64, 0, 0, 0);
}

pub fn report(r: &TaskReport) {
    arch::syscall(Syscall::Report as u64, r as *const TaskReport as u64, 0, 0);
}

/// Formats into a stack buffer and writes it with one system call, so a task's line is
/// never interleaved with another's.
pub struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl LineBuf {
    pub const fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }

    pub fn flush(&mut self) {
        // The buffer only ever holds whole `str`s, so it is valid UTF-8.
        let text = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<bad utf-8>\n");
        write(text);
        self.len = 0;
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        // Cut at a character boundary when the line is too long.
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// `println!` for tasks.
#[macro_export]
macro_rules! uprintln {
    ($($arg:tt)*) => {{
        let mut line = $crate::userland::LineBuf::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!("{}\n", format_args!($($arg)*)));
        line.flush();
    }};
}

/// A panic in a task: report it and end the task, not the kernel.
pub fn panic(info: &PanicInfo<'_>) -> ! {
    crate::uprintln!("task panicked: {info}");
    exit(PANIC_STATUS)
}
