//! Panics: in the kernel they end the VM with [`ExitStatus::KernelPanic`]; in a ring-3 task
//! (shared code such as a workload) they end only that task, through system calls, since a
//! task cannot touch kernel state.

use crate::exit_status::ExitStatus;
use crate::{arch, console, println, userland};
use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if arch::in_user_mode() {
        userland::panic(info)
    }
    console::force_unlock();
    println!("kernel: PANIC: {info}");
    arch::exit(ExitStatus::KernelPanic)
}
