//! The register file gdb sees for a Linux x86-64 process: gdb's standard
//! core and SSE blocks (gdbstub_arch's `X86_64CoreRegs`), then `orig_rax`
//! (gdb needs it to restart interrupted system calls correctly after it
//! changes registers) and the `fs_base`/`gs_base` segment bases (thread-local
//! storage), described by our own target XML. Converting to and from the
//! kernel's `user_regs_struct`/`user_fpregs_struct` lives here too.

use gdbstub::arch::{Arch, Registers};
use gdbstub_arch::x86::reg::X86_64CoreRegs;

/// The architecture marker type for gdbstub.
pub enum LinuxX86_64 {}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessRegs {
    pub core: X86_64CoreRegs,
    pub orig_rax: u64,
    pub fs_base: u64,
    pub gs_base: u64,
}

/// Size of the core + SSE block in the `g` packet (gdbstub_arch's layout).
const CORE_AND_SSE_BYTES: usize = 0x218;

impl Registers for ProcessRegs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        self.core.gdb_serialize(&mut write_byte);
        for value in [self.orig_rax, self.fs_base, self.gs_base] {
            value
                .to_le_bytes()
                .into_iter()
                .for_each(|b| write_byte(Some(b)));
        }
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        self.core
            .gdb_deserialize(bytes.get(..CORE_AND_SSE_BYTES).ok_or(())?)?;
        let tail = &bytes[CORE_AND_SSE_BYTES..];
        // A client may send only the core block: keep the rest as it is.
        let mut words = tail
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")));
        for slot in [&mut self.orig_rax, &mut self.fs_base, &mut self.gs_base] {
            match words.next() {
                Some(v) => *slot = v,
                None => break,
            }
        }
        Ok(())
    }
}

/// Single registers are not served: gdb and lldb fall back to `g`/`G`.
#[derive(Debug, Clone, Copy)]
pub enum WholeFileOnly {}

impl gdbstub::arch::RegId for WholeFileOnly {
    fn from_raw_id(_id: usize) -> Option<(Self, Option<std::num::NonZeroUsize>)> {
        None
    }
}

impl Arch for LinuxX86_64 {
    type Usize = u64;
    type Registers = ProcessRegs;
    type RegId = WholeFileOnly;
    /// The `kind` of a Z0 packet: the breakpoint's length (1 for int3).
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        Some(TARGET_XML)
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

const TARGET_XML: &str = r#"<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386:x86-64</architecture>
<osabi>GNU/Linux</osabi>
<feature name="org.gnu.gdb.i386.core">
  <flags id="i386_eflags" size="4">
    <field name="CF" start="0" end="0"/><field name="" start="1" end="1"/>
    <field name="PF" start="2" end="2"/><field name="AF" start="4" end="4"/>
    <field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
    <field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/>
    <field name="DF" start="10" end="10"/><field name="OF" start="11" end="11"/>
    <field name="NT" start="14" end="14"/><field name="RF" start="16" end="16"/>
    <field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/>
    <field name="VIF" start="19" end="19"/><field name="VIP" start="20" end="20"/>
    <field name="ID" start="21" end="21"/>
  </flags>
  <reg name="rax" bitsize="64" type="int64" regnum="0"/>
  <reg name="rbx" bitsize="64" type="int64"/>
  <reg name="rcx" bitsize="64" type="int64"/>
  <reg name="rdx" bitsize="64" type="int64"/>
  <reg name="rsi" bitsize="64" type="int64"/>
  <reg name="rdi" bitsize="64" type="int64"/>
  <reg name="rbp" bitsize="64" type="data_ptr"/>
  <reg name="rsp" bitsize="64" type="data_ptr"/>
  <reg name="r8" bitsize="64" type="int64"/>
  <reg name="r9" bitsize="64" type="int64"/>
  <reg name="r10" bitsize="64" type="int64"/>
  <reg name="r11" bitsize="64" type="int64"/>
  <reg name="r12" bitsize="64" type="int64"/>
  <reg name="r13" bitsize="64" type="int64"/>
  <reg name="r14" bitsize="64" type="int64"/>
  <reg name="r15" bitsize="64" type="int64"/>
  <reg name="rip" bitsize="64" type="code_ptr"/>
  <reg name="eflags" bitsize="32" type="i386_eflags"/>
  <reg name="cs" bitsize="32" type="int32"/>
  <reg name="ss" bitsize="32" type="int32"/>
  <reg name="ds" bitsize="32" type="int32"/>
  <reg name="es" bitsize="32" type="int32"/>
  <reg name="fs" bitsize="32" type="int32"/>
  <reg name="gs" bitsize="32" type="int32"/>
  <reg name="st0" bitsize="80" type="i387_ext"/>
  <reg name="st1" bitsize="80" type="i387_ext"/>
  <reg name="st2" bitsize="80" type="i387_ext"/>
  <reg name="st3" bitsize="80" type="i387_ext"/>
  <reg name="st4" bitsize="80" type="i387_ext"/>
  <reg name="st5" bitsize="80" type="i387_ext"/>
  <reg name="st6" bitsize="80" type="i387_ext"/>
  <reg name="st7" bitsize="80" type="i387_ext"/>
  <reg name="fctrl" bitsize="32" type="int" group="float"/>
  <reg name="fstat" bitsize="32" type="int" group="float"/>
  <reg name="ftag" bitsize="32" type="int" group="float"/>
  <reg name="fiseg" bitsize="32" type="int" group="float"/>
  <reg name="fioff" bitsize="32" type="int" group="float"/>
  <reg name="foseg" bitsize="32" type="int" group="float"/>
  <reg name="fooff" bitsize="32" type="int" group="float"/>
  <reg name="fop" bitsize="32" type="int" group="float"/>
</feature>
<feature name="org.gnu.gdb.i386.sse">
  <vector id="v8bf16" type="bfloat16" count="8"/>
  <vector id="v4f" type="ieee_single" count="4"/>
  <vector id="v2d" type="ieee_double" count="2"/>
  <vector id="v16i8" type="int8" count="16"/>
  <vector id="v8i16" type="int16" count="8"/>
  <vector id="v4i32" type="int32" count="4"/>
  <vector id="v2i64" type="int64" count="2"/>
  <union id="vec128">
    <field name="v8_bfloat16" type="v8bf16"/>
    <field name="v4_float" type="v4f"/>
    <field name="v2_double" type="v2d"/>
    <field name="v16_int8" type="v16i8"/>
    <field name="v8_int16" type="v8i16"/>
    <field name="v4_int32" type="v4i32"/>
    <field name="v2_int64" type="v2i64"/>
    <field name="uint128" type="uint128"/>
  </union>
  <flags id="i386_mxcsr" size="4">
    <field name="IE" start="0" end="0"/><field name="DE" start="1" end="1"/>
    <field name="ZE" start="2" end="2"/><field name="OE" start="3" end="3"/>
    <field name="UE" start="4" end="4"/><field name="PE" start="5" end="5"/>
    <field name="DAZ" start="6" end="6"/><field name="IM" start="7" end="7"/>
    <field name="DM" start="8" end="8"/><field name="ZM" start="9" end="9"/>
    <field name="OM" start="10" end="10"/><field name="UM" start="11" end="11"/>
    <field name="PM" start="12" end="12"/><field name="FZ" start="15" end="15"/>
  </flags>
  <reg name="xmm0" bitsize="128" type="vec128" regnum="40"/>
  <reg name="xmm1" bitsize="128" type="vec128"/>
  <reg name="xmm2" bitsize="128" type="vec128"/>
  <reg name="xmm3" bitsize="128" type="vec128"/>
  <reg name="xmm4" bitsize="128" type="vec128"/>
  <reg name="xmm5" bitsize="128" type="vec128"/>
  <reg name="xmm6" bitsize="128" type="vec128"/>
  <reg name="xmm7" bitsize="128" type="vec128"/>
  <reg name="xmm8" bitsize="128" type="vec128"/>
  <reg name="xmm9" bitsize="128" type="vec128"/>
  <reg name="xmm10" bitsize="128" type="vec128"/>
  <reg name="xmm11" bitsize="128" type="vec128"/>
  <reg name="xmm12" bitsize="128" type="vec128"/>
  <reg name="xmm13" bitsize="128" type="vec128"/>
  <reg name="xmm14" bitsize="128" type="vec128"/>
  <reg name="xmm15" bitsize="128" type="vec128"/>
  <reg name="mxcsr" bitsize="32" type="i386_mxcsr" group="vector"/>
</feature>
<feature name="org.gnu.gdb.i386.linux">
  <reg name="orig_rax" bitsize="64" type="int" regnum="57"/>
</feature>
<feature name="org.gnu.gdb.i386.segments">
  <reg name="fs_base" bitsize="64" type="int"/>
  <reg name="gs_base" bitsize="64" type="int"/>
</feature>
</target>
"#;
