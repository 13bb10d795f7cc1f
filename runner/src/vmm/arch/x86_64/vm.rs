//! The x86_64 VM: guest RAM with the kernel and its boot information, KVM's in-kernel
//! interrupt controllers and PIT, the I/O devices, and the vCPUs ready to run.

use std::sync::{Arc, Mutex, PoisonError};

use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, kvm_pit_config};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestAddress, GuestMemoryError, GuestMemoryMmap};

use super::cpuid;
use super::io_bus::IoBus;
use super::layout::{KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR};
use super::serial::{self, Com1};
use super::user_apf::{Policy, UserApf};
use super::vcpu::{self, Vcpu};
use super::{gdt, kernel, pvh, user_apf_caps};
use crate::apf::ApfMode;
use crate::console::ConsoleSink;
use crate::lazy::region;
use crate::vmm::memory::{self, LazyRange};
use crate::vmm::unhandled_io::UnhandledIo;
use crate::vmm::virtio_net::{self, NetCard, NetStats};
use crate::vmm::{NET_IRQ, VmConfig};

/// Guest RAM starts at physical address 0 on a PC.
const RAM_START: GuestAddress = GuestAddress(0);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the VM needs at least one vCPU")]
    NoVcpus,
    #[error(transparent)]
    Memory(#[from] memory::Error),
    #[error(transparent)]
    Kernel(#[from] kernel::Error),
    #[error(transparent)]
    LazyRegion(#[from] region::Error),
    #[error("cannot write the boot GDT")]
    Gdt(#[source] GuestMemoryError),
    #[error(transparent)]
    BootInfo(#[from] pvh::Error),
    #[error("cannot open /dev/kvm")]
    OpenKvm(#[source] kvm_ioctls::Error),
    #[error("cannot create the VM")]
    CreateVm(#[source] kvm_ioctls::Error),
    #[error("cannot {what}")]
    Platform {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("cannot read the CPUID KVM supports")]
    SupportedCpuid(#[source] kvm_ioctls::Error),
    #[error(transparent)]
    UserApfCaps(#[from] user_apf_caps::Error),
    #[error(transparent)]
    Serial(#[from] serial::Error),
    #[error(transparent)]
    Vcpu(#[from] vcpu::Error),
    #[error(transparent)]
    Net(#[from] virtio_net::Error),
}

pub struct Vm {
    vcpus: Vec<Vcpu>,
    io: Arc<Mutex<IoBus>>,
    lazy: Option<LazyRange>,
    user_apf: Option<Arc<UserApf>>,
    net: Option<NetCard>,
    /// Declared before `memory` so it is dropped first: KVM's memory slot points into it.
    /// Shared only with `user_apf`, whose other owners (vCPU and lazy memory threads) end
    /// before the VM is dropped.
    _fd: Arc<VmFd>,
    memory: GuestMemoryMmap,
}

impl Vm {
    /// Builds the VM for `config`, writing the guest console to `console`.
    pub fn new(config: &VmConfig<'_>, console: ConsoleSink) -> Result<Self, Error> {
        if config.vcpus == 0 {
            return Err(Error::NoVcpus);
        }
        // The guest image first: a bad kernel fails before anything touches KVM.
        let memory = memory::create(RAM_START, config.mem_size)?;
        let kernel = kernel::load(&memory, config.mem_size, config.kernel)?;
        gdt::write(&memory).map_err(Error::Gdt)?;
        let start_info = pvh::write_boot_info(&memory, config.mem_size, config.cmdline)?;
        // After everything the VMM writes, all of which lies below any lazy range.
        let lazy = match &config.lazy {
            Some(lazy) => {
                let range = region::range(lazy.region, kernel.image_end, config.mem_size)?;
                Some(memory::make_lazy(&memory, range)?)
            }
            None => None,
        };

        let kvm = Kvm::new().map_err(Error::OpenKvm)?;
        let fd = Arc::new(kvm.create_vm().map_err(Error::CreateVm)?);
        // The modes in which this VMM is the async PF host, and when it makes a fault async.
        let policy = match config.apf {
            Some(ApfMode::Vmm) => Some(Policy::Always),
            Some(ApfMode::Adaptive) => Some(Policy::Threshold(config.async_threshold)),
            _ => None,
        };
        if policy.is_some() {
            // Before the interrupt controllers and vCPUs exist, as KVM requires.
            user_apf_caps::enable(&fd)?;
        }
        create_platform(&fd)?;
        memory::register(&fd, &memory)?;
        let user_apf = policy.zip(lazy.as_ref()).map(|(policy, lazy)| {
            Arc::new(UserApf::new(
                policy,
                Arc::clone(&fd),
                memory.clone(),
                lazy.window.clone(),
                config.vcpus,
                &config.inject,
            ))
        });

        let com1 = Com1::new(console)?;
        com1.connect_irq(&fd)?;
        let net = config
            .net
            .as_ref()
            .map(|net| start_net(&fd, net, &memory))
            .transpose()?;
        let io = Arc::new(Mutex::new(IoBus::new(
            com1,
            net.as_ref().map(NetCard::device),
        )));

        let mut supported_cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(Error::SupportedCpuid)?;
        if let Some(mode) = config.apf {
            cpuid::apply_apf_mode(supported_cpuid.as_mut_slice(), mode);
        }
        let vcpus = (0..config.vcpus)
            .map(|index| {
                Vcpu::new(
                    &fd,
                    index,
                    &supported_cpuid,
                    Arc::clone(&io),
                    user_apf.clone(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        vcpus[0].set_boot_state(kernel.entry, start_info)?;

        Ok(Vm {
            vcpus,
            io,
            lazy,
            user_apf,
            net,
            _fd: fd,
            memory,
        })
    }

    /// Hands out the vCPUs to run on their threads; the VM must outlive those threads.
    pub fn take_vcpus(&mut self) -> Vec<Vcpu> {
        std::mem::take(&mut self.vcpus)
    }

    /// Hands out the lazy range (with `--latency`) for the lazy memory server to serve.
    pub fn take_lazy(&mut self) -> Option<LazyRange> {
        self.lazy.take()
    }

    /// The VMM's async PF host (`--apf vmm|adaptive`), which the lazy memory server informs.
    pub fn user_apf(&self) -> Option<&Arc<UserApf>> {
        self.user_apf.as_ref()
    }

    /// Guest RAM, for saving once the vCPUs have stopped.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// Stops the network card's receive thread (once the vCPUs have stopped) and gives its
    /// counts; `None` without a card.
    pub fn finish_net(&mut self) -> Option<Result<NetStats, virtio_net::Error>> {
        self.net.as_mut().map(NetCard::finish)
    }

    pub fn unhandled_io(&self) -> UnhandledIo {
        self.io
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unhandled()
            .clone()
    }
}

/// Attaches the network card to its TAP and its interrupt to [`NET_IRQ`].
fn start_net(
    fd: &VmFd,
    config: &crate::vmm::NetConfig,
    memory: &GuestMemoryMmap,
) -> Result<NetCard, Error> {
    let (card, irq) = NetCard::start(config, memory.clone())?;
    // KVM holds its own reference to the eventfd; the device signals a duplicate of it.
    fd.register_irqfd(&irq, NET_IRQ)
        .map_err(|source| Error::Platform {
            what: "connect the network card's interrupt",
            source,
        })?;
    Ok(card)
}

/// The PC parts KVM emulates in the kernel. Order matters: the TSS and identity map before any
/// vCPU exists, the PIT after the interrupt controllers it signals.
fn create_platform(vm: &VmFd) -> Result<(), Error> {
    let step = |what: &'static str| move |source| Error::Platform { what, source };
    vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
        .map_err(step("set KVM's identity map address"))?;
    let tss_addr = usize::try_from(KVM_TSS_ADDR).expect("below 4 GiB");
    vm.set_tss_address(tss_addr)
        .map_err(step("set KVM's TSS address"))?;
    vm.create_irq_chip()
        .map_err(step("create the in-kernel PIC, IOAPIC and LAPICs"))?;
    // The dummy speaker puts port 0x61 in the kernel too: the guest calibrates its TSC with
    // PIT channel 2, gated and read back through that port.
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit)
        .map_err(step("create the in-kernel PIT"))?;
    Ok(())
}
