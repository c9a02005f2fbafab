//! gdb's x86-64 register file as both servers present it: gdbstub_arch's
//! core and SSE block (`X86_64CoreRegs`, in the order of gdb's `g` packet),
//! then 64-bit registers of each server's own (segment bases, control
//! registers, `orig_rax`...), all described by a target XML built from the
//! shared core and SSE features and the server's own.

use gdbstub_arch::x86::reg::X86_64CoreRegs;

/// Size of the core + SSE block in the `g` packet.
pub const CORE_AND_SSE_BYTES: usize = 0x218;

/// Registers named by the core and SSE features of [`target_xml`].
pub const CORE_AND_SSE_REGS: usize = 57;

/// Writes the core block, then each of `extra` as 8 little-endian bytes.
pub fn serialize(core: &X86_64CoreRegs, extra: &[u64], mut write_byte: impl FnMut(Option<u8>)) {
    gdbstub::arch::Registers::gdb_serialize(core, &mut write_byte);
    for value in extra {
        value
            .to_le_bytes()
            .into_iter()
            .for_each(|b| write_byte(Some(b)));
    }
}

/// Reads what [`serialize`] wrote. A client may send only the core block,
/// or part of the rest: registers it leaves out keep their values.
// `Result<(), ()>` is what gdbstub's `Registers::gdb_deserialize` returns.
#[allow(clippy::result_unit_err)]
pub fn deserialize(
    core: &mut X86_64CoreRegs,
    extra: &mut [&mut u64],
    bytes: &[u8],
) -> Result<(), ()> {
    gdbstub::arch::Registers::gdb_deserialize(core, bytes.get(..CORE_AND_SSE_BYTES).ok_or(())?)?;
    let words = bytes[CORE_AND_SSE_BYTES..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")));
    for (slot, value) in extra.iter_mut().zip(words) {
        **slot = value;
    }
    Ok(())
}

/// Single registers are not served: gdb and lldb fall back to `g`/`G`.
#[derive(Debug, Clone, Copy)]
pub enum WholeFileOnly {}

impl gdbstub::arch::RegId for WholeFileOnly {
    fn from_raw_id(_id: usize) -> Option<(Self, Option<std::num::NonZeroUsize>)> {
        None
    }
}

/// The target XML: gdb's core and SSE features, then `extra_features`
/// (the server's own `<feature>` elements, in the order [`serialize`]
/// writes their registers), with `<osabi>` when given.
pub fn target_xml(osabi: Option<&str>, extra_features: &str) -> String {
    let osabi = osabi
        .map(|abi| format!("<osabi>{abi}</osabi>\n"))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target version=\"1.0\">\n<architecture>i386:x86-64</architecture>\n{osabi}{CORE_AND_SSE_FEATURES}{extra_features}</target>\n"
    )
}

const CORE_AND_SSE_FEATURES: &str = r#"<feature name="org.gnu.gdb.i386.core">
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
  <vector id="v4f" type="ieee_single" count="4"/>
  <vector id="v2d" type="ieee_double" count="2"/>
  <vector id="v16i8" type="int8" count="16"/>
  <vector id="v8i16" type="int16" count="8"/>
  <vector id="v4i32" type="int32" count="4"/>
  <vector id="v2i64" type="int64" count="2"/>
  <union id="vec128">
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
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_registers_follow_the_core_block_and_a_short_write_keeps_them() {
        let core = X86_64CoreRegs {
            rip: 0x40_1000,
            ..Default::default()
        };
        let mut bytes = Vec::new();
        serialize(&core, &[7, 9], |b| bytes.push(b.unwrap()));
        assert_eq!(bytes.len(), CORE_AND_SSE_BYTES + 16);
        assert_eq!(&bytes[CORE_AND_SSE_BYTES + 8..], &9u64.to_le_bytes());

        let (mut back, mut a, mut b) = (X86_64CoreRegs::default(), 0, 0);
        deserialize(&mut back, &mut [&mut a, &mut b], &bytes).unwrap();
        assert_eq!((back.rip, a, b), (0x40_1000, 7, 9));
        deserialize(
            &mut back,
            &mut [&mut a, &mut b],
            &bytes[..CORE_AND_SSE_BYTES + 8],
        )
        .unwrap();
        assert_eq!((a, b), (7, 9), "a register left out keeps its value");
        assert!(deserialize(&mut back, &mut [], &bytes[..100]).is_err());
    }

    #[test]
    fn the_xml_names_the_core_and_sse_registers_then_the_servers_own() {
        let xml = target_xml(
            Some("GNU/Linux"),
            "<feature name=\"x\">\n  <reg name=\"extra\" bitsize=\"64\" type=\"int\"/>\n</feature>\n",
        );
        assert_eq!(xml.matches("<reg name=").count(), CORE_AND_SSE_REGS + 1);
        assert!(xml.contains("<osabi>GNU/Linux</osabi>"));
        assert!(xml.trim_end().ends_with("</feature>\n</target>"));
    }
}
