//! ACPI tables for Linux guests: RSDP, XSDT, FADT, MADT and a DSDT.
//!
//! The platform is "hardware-reduced" ACPI (no PM1 blocks, no SCI): power
//! off and reset go through the FADT's sleep-control and reset registers,
//! which [`crate::devices::power`] serves. The DSDT lists the virtio-mmio
//! devices as `LNRO0005` entries, the only way Debian's kernel (built
//! without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES) finds them.

use crate::vm::GuestMemoryMmap;
use acpi_tables::aml;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use vm_memory::{Bytes, GuestAddress};

use super::layout::{ACPI_END, ACPI_START};
use crate::devices::{power, serial};
use crate::error::{Error, Result};

const OEM_ID: [u8; 6] = *b"VMDBG ";
const OEM_TABLE_ID: [u8; 8] = *b"VMDBGVMM";
const LAPIC_ADDR: u32 = 0xfee0_0000;
const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// IAPC_BOOT_ARCH: no VGA, no MSI (there is no PCI), no CMOS RTC. The
/// guest must not probe legacy hardware that is not there: Linux's rtc_cmos
/// alone spends 14 s timing out on the missing RTC in the nested tier.
const IAPC_BOOT_ARCH_VGA_NOT_PRESENT: u16 = 1 << 2;
const IAPC_BOOT_ARCH_MSI_NOT_SUPPORTED: u16 = 1 << 3;
const IAPC_BOOT_ARCH_NO_CMOS_RTC: u16 = 1 << 5;

/// One virtio-mmio device as the DSDT describes it.
#[derive(Clone, Copy, Debug)]
pub struct MmioDeviceInfo {
    pub base: u64,
    pub len: u64,
    pub gsi: u32,
}

/// A built table and where it goes in guest memory.
pub struct Table {
    pub signature: String,
    pub addr: u64,
    pub bytes: Vec<u8>,
}

fn aml_bytes(item: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    item.to_aml_bytes(&mut bytes);
    bytes
}

fn dsdt(devices: &[MmioDeviceInfo]) -> Vec<u8> {
    let mut body = Vec::new();
    let resources: Vec<(aml::Memory32Fixed, aml::Interrupt)> = devices
        .iter()
        .map(|d| {
            (
                aml::Memory32Fixed::new(true, d.base as u32, d.len as u32),
                // Edge-triggered, active-high: each used-buffer
                // notification is one irqfd write.
                aml::Interrupt::new(true, true, false, false, d.gsi),
            )
        })
        .collect();
    let templates: Vec<aml::ResourceTemplate> = resources
        .iter()
        .map(|(mem, irq)| aml::ResourceTemplate::new(vec![mem, irq]))
        .collect();
    let hid = aml::Name::new("_HID".into(), &"LNRO0005");
    let uids: Vec<aml::Name> = (0..devices.len())
        .map(|i| aml::Name::new("_UID".into(), &(i as u32)))
        .collect();
    let crss: Vec<aml::Name> = templates
        .iter()
        .map(|t| aml::Name::new("_CRS".into(), t))
        .collect();
    let names: Vec<String> = (0..devices.len()).map(|i| format!("VR{i:02X}")).collect();
    let device_objs: Vec<aml::Device> = names
        .iter()
        .enumerate()
        .map(|(i, name)| aml::Device::new(name.as_str().into(), vec![&hid, &uids[i], &crss[i]]))
        .collect();
    // COM1 as an ACPI device: on a hardware-reduced platform Linux has no
    // legacy PIC and so no ISA IRQ numbers; only a _CRS interrupt gets the
    // UART's GSI mapped. Without it the 8250 driver cannot request IRQ 4
    // and every userspace write to the console fails.
    let com1_io = aml::IO::new(
        serial::COM1_PORT,
        serial::COM1_PORT,
        1,
        serial::COM1_LEN as u8,
    );
    let com1_irq = aml::Interrupt::new(true, true, false, false, serial::COM1_IRQ);
    let com1_crs = aml::ResourceTemplate::new(vec![&com1_io, &com1_irq]);
    let com1_hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501"));
    let com1_uid = aml::Name::new("_UID".into(), &0u8);
    let com1_crs = aml::Name::new("_CRS".into(), &com1_crs);
    let com1 = aml::Device::new("COM1".into(), vec![&com1_hid, &com1_uid, &com1_crs]);
    let mut children: Vec<&dyn Aml> = vec![&com1];
    children.extend(device_objs.iter().map(|d| d as &dyn Aml));
    aml::Scope::new("_SB_".into(), children).to_aml_bytes(&mut body);
    // \_S5: the sleep type the guest writes to the sleep-control register
    // to power off.
    let s5_type = power::S5_SLEEP_TYPE;
    aml::Name::new("_S5_".into(), &aml::Package::new(vec![&s5_type, &0u8])).to_aml_bytes(&mut body);

    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, 1);
    dsdt.append_slice(&body);
    dsdt.as_slice().to_vec()
}

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let io = |port: u16| {
        GAS::new(
            AddressSpace::SystemIo,
            8,
            0,
            AccessSize::ByteAccess,
            port as u64,
        )
    };
    let mut fadt = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, 1)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    fadt.iapc_boot_arch = (IAPC_BOOT_ARCH_VGA_NOT_PRESENT
        | IAPC_BOOT_ARCH_MSI_NOT_SUPPORTED
        | IAPC_BOOT_ARCH_NO_CMOS_RTC)
        .into();
    fadt.reset_reg = io(power::RESET_PORT);
    fadt.reset_value = power::RESET_VALUE;
    fadt.sleep_control_reg = io(power::SLEEP_CONTROL_PORT);
    fadt.sleep_status_reg = io(power::SLEEP_STATUS_PORT);
    fadt.hypervisor_vendor_identity = u64::from_le_bytes(*b"VMDBGVMM").into();
    aml_bytes(&fadt.finalize())
}

fn madt(cpus: usize) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        1,
        LocalInterruptController::Address(LAPIC_ADDR),
    );
    for cpu in 0..cpus {
        madt.add_structure(ProcessorLocalApic::new(
            cpu as u8,
            cpu as u8,
            EnabledStatus::Enabled,
        ));
    }
    madt.add_structure(IoApic::new(0, IOAPIC_ADDR, 0));
    aml_bytes(&madt)
}

/// Builds every table with its final address, RSDP first.
pub fn build(cpus: usize, devices: &[MmioDeviceInfo]) -> Result<Vec<Table>> {
    let align = |a: u64| (a + 15) & !15;
    let rsdp_addr = ACPI_START;
    let dsdt_addr = align(rsdp_addr + Rsdp::len() as u64);
    let dsdt = dsdt(devices);
    let fadt_addr = align(dsdt_addr + dsdt.len() as u64);
    let fadt = fadt(dsdt_addr);
    let madt_addr = align(fadt_addr + fadt.len() as u64);
    let madt = madt(cpus);
    let xsdt_addr = align(madt_addr + madt.len() as u64);
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, 1);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let xsdt = aml_bytes(&xsdt);
    let end = xsdt_addr + xsdt.len() as u64;
    if end > ACPI_END {
        return Err(Error::GuestMemory(format!(
            "the ACPI tables need {} bytes, more than the {} reserved for them (too many devices)",
            end - ACPI_START,
            ACPI_END - ACPI_START
        )));
    }
    let rsdp = aml_bytes(&Rsdp::new(OEM_ID, xsdt_addr));
    let table = |signature: &str, addr, bytes| Table {
        signature: signature.into(),
        addr,
        bytes,
    };
    Ok(vec![
        table("RSDP", rsdp_addr, rsdp),
        table("DSDT", dsdt_addr, dsdt),
        table("FACP", fadt_addr, fadt),
        table("APIC", madt_addr, madt),
        table("XSDT", xsdt_addr, xsdt),
    ])
}

/// Writes the tables into guest memory; returns the RSDP's address.
pub fn write(mem: &GuestMemoryMmap, cpus: usize, devices: &[MmioDeviceInfo]) -> Result<u64> {
    let tables = build(cpus, devices)?;
    for t in &tables {
        mem.write_slice(&t.bytes, GuestAddress(t.addr))
            .map_err(|e| {
                Error::GuestMemory(format!(
                    "writing ACPI table {} at {:#x}: {e}",
                    t.signature, t.addr
                ))
            })?;
    }
    Ok(ACPI_START)
}

/// Writes each table (not the RSDP, which is no table) to
/// `dir/<signature>.dat`, the input `iasl -d` takes.
pub fn dump(
    dir: &std::path::Path,
    cpus: usize,
    devices: &[MmioDeviceInfo],
) -> Result<Vec<std::path::PathBuf>> {
    let mut paths = Vec::new();
    for t in build(cpus, devices)? {
        if t.signature == "RSDP" {
            continue;
        }
        let path = dir.join(format!("{}.dat", t.signature.to_lowercase()));
        std::fs::write(&path, &t.bytes)
            .map_err(|e| Error::GuestMemory(format!("writing {}: {e}", path.display())))?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_ok(bytes: &[u8]) -> bool {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
    }

    #[test]
    fn tables_have_valid_checksums_and_lengths() {
        let devices = [MmioDeviceInfo {
            base: 0xd000_0000,
            len: 0x1000,
            gsi: 5,
        }];
        for t in build(2, &devices).unwrap() {
            if t.signature == "RSDP" {
                assert!(checksum_ok(&t.bytes[..20]));
                assert!(checksum_ok(&t.bytes));
                continue;
            }
            assert_eq!(&t.bytes[..4], t.signature.as_bytes());
            let len = u32::from_le_bytes(t.bytes[4..8].try_into().unwrap()) as usize;
            assert_eq!(len, t.bytes.len(), "{} length field", t.signature);
            assert!(checksum_ok(&t.bytes), "{} checksum", t.signature);
        }
    }
}
