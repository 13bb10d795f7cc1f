//! Counting guest I/O that no device model handles. Reads of nothing return all-ones and writes
//! are dropped, as on a PC bus; the counts show with `--verbose` what the guest probed.

use std::collections::BTreeMap;
use std::fmt;

/// One kind of access to an address nobody decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    PortRead(u16),
    PortWrite(u16),
    MmioRead(u64),
    MmioWrite(u64),
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::PortRead(port) => write!(f, "port {port:#x} read"),
            Access::PortWrite(port) => write!(f, "port {port:#x} write"),
            Access::MmioRead(address) => write!(f, "MMIO {address:#x} read"),
            Access::MmioWrite(address) => write!(f, "MMIO {address:#x} write"),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct UnhandledIo {
    counts: BTreeMap<Access, u64>,
}

impl UnhandledIo {
    pub fn record(&mut self, access: Access) {
        *self.counts.entry(access).or_default() += 1;
    }
}

impl fmt::Display for UnhandledIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.counts.values().sum();
        if total == 0 {
            return write!(f, "no unhandled I/O");
        }
        let accesses: Vec<String> = self
            .counts
            .iter()
            .map(|(access, count)| format!("{access} x{count}"))
            .collect();
        write!(f, "{total} unhandled I/O accesses: {}", accesses.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_recorded() {
        assert_eq!(UnhandledIo::default().to_string(), "no unhandled I/O");
    }

    #[test]
    fn accesses_are_counted_per_address_and_direction() {
        let mut io = UnhandledIo::default();
        io.record(Access::PortWrite(0x80));
        io.record(Access::PortRead(0x92));
        io.record(Access::PortWrite(0x80));
        io.record(Access::MmioRead(0xfee0_0000));
        assert_eq!(
            io.to_string(),
            "4 unhandled I/O accesses: port 0x92 read x1, port 0x80 write x2, \
             MMIO 0xfee00000 read x1"
        );
    }
}
