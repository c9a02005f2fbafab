//! The register file gdb sees for a Linux x86-64 process: gdb's standard
//! core and SSE blocks (shared with the VMM's stub, vmdbg-gdb-common's
//! `x86_64`), then `orig_rax`
//! (gdb needs it to restart interrupted system calls correctly after it
//! changes registers) and the `fs_base`/`gs_base` segment bases (thread-local
//! storage), described by our own target XML. Converting to and from the
//! kernel's `user_regs_struct`/`user_fpregs_struct` lives here too.

use std::sync::OnceLock;

use gdbstub::arch::{Arch, Registers};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use vmdbg_gdb_common::x86_64;

/// The architecture marker type for gdbstub.
pub enum LinuxX86_64 {}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessRegs {
    pub core: X86_64CoreRegs,
    pub orig_rax: u64,
    pub fs_base: u64,
    pub gs_base: u64,
}

impl Registers for ProcessRegs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, write_byte: impl FnMut(Option<u8>)) {
        x86_64::serialize(
            &self.core,
            &[self.orig_rax, self.fs_base, self.gs_base],
            write_byte,
        );
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        x86_64::deserialize(
            &mut self.core,
            &mut [&mut self.orig_rax, &mut self.fs_base, &mut self.gs_base],
            bytes,
        )
    }
}

impl Arch for LinuxX86_64 {
    type Usize = u64;
    type Registers = ProcessRegs;
    type RegId = x86_64::WholeFileOnly;
    /// The `kind` of a Z0 packet: the breakpoint's length (1 for int3).
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        static XML: OnceLock<String> = OnceLock::new();
        Some(XML.get_or_init(|| x86_64::target_xml(Some("GNU/Linux"), OWN_FEATURES)))
    }
}

impl ProcessRegs {
    /// Builds gdb's view from what PTRACE_GETREGS and PTRACE_GETFPREGS return.
    pub fn from_kernel(gp: &libc::user_regs_struct, fp: &libc::user_fpregs_struct) -> Self {
        let mut core = X86_64CoreRegs {
            regs: [
                gp.rax, gp.rbx, gp.rcx, gp.rdx, gp.rsi, gp.rdi, gp.rbp, gp.rsp, gp.r8, gp.r9,
                gp.r10, gp.r11, gp.r12, gp.r13, gp.r14, gp.r15,
            ],
            rip: gp.rip,
            eflags: gp.eflags as u32,
            ..Default::default()
        };
        let seg = &mut core.segments;
        (seg.cs, seg.ss, seg.ds, seg.es, seg.fs, seg.gs) = (
            gp.cs as u32,
            gp.ss as u32,
            gp.ds as u32,
            gp.es as u32,
            gp.fs as u32,
            gp.gs as u32,
        );
        for (i, st) in core.st.iter_mut().enumerate() {
            // Each x87 register occupies 16 bytes in the fxsave area; gdb wants its 10.
            let words = &fp.st_space[i * 4..i * 4 + 4];
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            st.copy_from_slice(&bytes[..10]);
        }
        let fpu = &mut core.fpu;
        fpu.fctrl = u32::from(fp.cwd);
        fpu.fstat = u32::from(fp.swd);
        fpu.ftag = full_tag_word(fp.ftw);
        // In the 64-bit fxsave layout the instruction and operand pointers are
        // 64 bits wide; gdb shows their high halves in fiseg/foseg.
        fpu.fioff = fp.rip as u32;
        fpu.fiseg = (fp.rip >> 32) as u32;
        fpu.fooff = fp.rdp as u32;
        fpu.foseg = (fp.rdp >> 32) as u32;
        fpu.fop = u32::from(fp.fop);
        for (i, xmm) in core.xmm.iter_mut().enumerate() {
            let words = &fp.xmm_space[i * 4..i * 4 + 4];
            *xmm = words
                .iter()
                .enumerate()
                .fold(0u128, |acc, (k, w)| acc | (u128::from(*w) << (32 * k)));
        }
        core.mxcsr = fp.mxcsr;
        Self {
            core,
            orig_rax: gp.orig_rax,
            fs_base: gp.fs_base,
            gs_base: gp.gs_base,
        }
    }

    /// Writes gdb's view back into the kernel structures (fields gdb does
    /// not describe are left as they were).
    pub fn to_kernel(&self, gp: &mut libc::user_regs_struct, fp: &mut libc::user_fpregs_struct) {
        let r = &self.core.regs;
        (
            gp.rax, gp.rbx, gp.rcx, gp.rdx, gp.rsi, gp.rdi, gp.rbp, gp.rsp,
        ) = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
        (gp.r8, gp.r9, gp.r10, gp.r11, gp.r12, gp.r13, gp.r14, gp.r15) =
            (r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
        gp.rip = self.core.rip;
        // The kernel keeps eflags' reserved high half; gdb only has 32 bits.
        gp.eflags = (gp.eflags & !0xffff_ffff) | u64::from(self.core.eflags);
        gp.orig_rax = self.orig_rax;
        gp.fs_base = self.fs_base;
        gp.gs_base = self.gs_base;
        for (i, st) in self.core.st.iter().enumerate() {
            let mut bytes = [0u8; 16];
            bytes[..10].copy_from_slice(st);
            for k in 0..4 {
                fp.st_space[i * 4 + k] =
                    u32::from_le_bytes(bytes[k * 4..k * 4 + 4].try_into().expect("4 bytes"));
            }
        }
        let fpu = &self.core.fpu;
        fp.cwd = fpu.fctrl as u16;
        fp.swd = fpu.fstat as u16;
        fp.ftw = abridged_tag_word(fpu.ftag);
        fp.fop = fpu.fop as u16;
        fp.rip = u64::from(fpu.fioff) | (u64::from(fpu.fiseg) << 32);
        fp.rdp = u64::from(fpu.fooff) | (u64::from(fpu.foseg) << 32);
        for (i, xmm) in self.core.xmm.iter().enumerate() {
            for k in 0..4 {
                fp.xmm_space[i * 4 + k] = (xmm >> (32 * k)) as u32;
            }
        }
        fp.mxcsr = self.core.mxcsr;
    }
}

/// fxsave keeps one "in use" bit per x87 register; gdb shows the full
/// two-bit-per-register tag word. An in-use register is shown as valid (00),
/// an empty one as empty (11).
fn full_tag_word(abridged: u16) -> u32 {
    (0..8).fold(0u32, |tag, i| {
        let empty = abridged & (1 << i) == 0;
        tag | if empty { 0b11 << (2 * i) } else { 0 }
    })
}

fn abridged_tag_word(full: u32) -> u16 {
    (0..8).fold(0u16, |tag, i| {
        let empty = (full >> (2 * i)) & 0b11 == 0b11;
        tag | if empty { 0 } else { 1 << i }
    })
}

/// After the core and SSE block, in [`ProcessRegs::gdb_serialize`]'s order.
const OWN_FEATURES: &str = r#"<feature name="org.gnu.gdb.i386.linux">
  <reg name="orig_rax" bitsize="64" type="int" regnum="57"/>
</feature>
<feature name="org.gnu.gdb.i386.segments">
  <reg name="fs_base" bitsize="64" type="int"/>
  <reg name="gs_base" bitsize="64" type="int"/>
</feature>
"#;
