//! The register file gdb sees: the standard x86-64 core and SSE registers,
//! then segment bases and the system registers (CR0, CR2, CR3, CR4, CR8,
//! EFER) a kernel developer needs, described in our own target XML.

use std::sync::OnceLock;

use gdbstub::arch::{Arch, Registers};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use vmdbg_gdb_common::x86_64;

pub enum VmdbgX86_64 {}

/// Registers after the standard core + SSE block, in target-XML order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemRegs {
    pub fs_base: u64,
    pub gs_base: u64,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
}

impl SystemRegs {
    const COUNT: usize = 8;

    fn as_array(&self) -> [u64; Self::COUNT] {
        [
            self.fs_base,
            self.gs_base,
            self.cr0,
            self.cr2,
            self.cr3,
            self.cr4,
            self.cr8,
            self.efer,
        ]
    }

    fn from_array(a: [u64; Self::COUNT]) -> Self {
        let [fs_base, gs_base, cr0, cr2, cr3, cr4, cr8, efer] = a;
        Self {
            fs_base,
            gs_base,
            cr0,
            cr2,
            cr3,
            cr4,
            cr8,
            efer,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegs {
    pub core: X86_64CoreRegs,
    pub system: SystemRegs,
}

impl Registers for VcpuRegs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, write_byte: impl FnMut(Option<u8>)) {
        x86_64::serialize(&self.core, &self.system.as_array(), write_byte);
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let mut system = self.system.as_array();
        let [a, b, c, d, e, f, g, h] = &mut system;
        x86_64::deserialize(&mut self.core, &mut [a, b, c, d, e, f, g, h], bytes)?;
        self.system = SystemRegs::from_array(system);
        Ok(())
    }
}

impl Arch for VmdbgX86_64 {
    type Usize = u64;
    type Registers = VcpuRegs;
    type RegId = x86_64::WholeFileOnly;
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        static XML: OnceLock<String> = OnceLock::new();
        Some(XML.get_or_init(|| x86_64::target_xml(None, OWN_FEATURES)))
    }
}

/// After the core and SSE block, in [`SystemRegs::as_array`]'s order.
const OWN_FEATURES: &str = r#"<feature name="org.gnu.gdb.i386.segments">
  <reg name="fs_base" bitsize="64" type="int"/>
  <reg name="gs_base" bitsize="64" type="int"/>
</feature>
<feature name="org.vmdbg.x86.system">
  <reg name="cr0" bitsize="64" type="int" group="system"/>
  <reg name="cr2" bitsize="64" type="int" group="system"/>
  <reg name="cr3" bitsize="64" type="int" group="system"/>
  <reg name="cr4" bitsize="64" type="int" group="system"/>
  <reg name="cr8" bitsize="64" type="int" group="system"/>
  <reg name="efer" bitsize="64" type="int" group="system"/>
</feature>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_registers_follow_the_core_block() {
        let mut regs = VcpuRegs::default();
        regs.core.rip = 0x10_0000;
        regs.system.cr3 = 0x9000;
        regs.system.efer = 0x500;
        let mut bytes = Vec::new();
        regs.gdb_serialize(|b| bytes.push(b.unwrap()));
        assert_eq!(bytes.len(), x86_64::CORE_AND_SSE_BYTES + 8 * 8);
        let cr3_at = x86_64::CORE_AND_SSE_BYTES + 4 * 8;
        assert_eq!(&bytes[cr3_at..cr3_at + 8], &0x9000u64.to_le_bytes());
        let mut back = VcpuRegs::default();
        back.gdb_deserialize(&bytes).unwrap();
        assert_eq!(back, regs);
    }

    #[test]
    fn target_xml_lists_every_serialized_register() {
        let xml = VmdbgX86_64::target_description_xml().unwrap();
        let names = xml.matches("<reg name=").count();
        assert_eq!(names, x86_64::CORE_AND_SSE_REGS + SystemRegs::COUNT);
    }
}
