//! The host's console lines: the shared PL011, each line prefixed `el2: `.

/// Prints one host line, `el2: ` first.
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut console = el2_host::pl011::Console;
        let _ = console.write_str("el2: ");
        let _ = writeln!(console, $($arg)*);
    }};
}

pub(crate) use println;
