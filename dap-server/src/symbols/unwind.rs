//! Stack unwinding: call frame information from .eh_frame or .debug_frame
//! where the pc has an FDE, the frame-pointer chain (rbp) where it has not.

use anyhow::{bail, Result};
use gimli::{BaseAddresses, CfaRule, RegisterRule, UnwindContext, UnwindSection};

use super::{Reader, TargetMemory};

/// DWARF register numbers of x86-64 that unwinding touches.
pub const RSP: u16 = 7;
pub const RBP: u16 = 6;
pub const RIP: u16 = 16;
pub const REG_COUNT: usize = 17;

/// Registers of one physical frame, by DWARF number; `None` where the
/// unwinder cannot know the caller's value (caller-saved registers).
#[derive(Clone, Debug, Default)]
pub struct FrameRegs {
    pub regs: [Option<u64>; REG_COUNT],
    /// The canonical frame address (the caller's rsp before the call).
    pub cfa: Option<u64>,
}

impl FrameRegs {
    pub fn pc(&self) -> u64 {
        self.regs[RIP as usize].unwrap_or(0)
    }
    pub fn get(&self, dwarf: u16) -> Option<u64> {
        self.regs.get(dwarf as usize).copied().flatten()
    }
}

pub struct Unwinder {
    eh_frame: Option<(gimli::EhFrame<Reader>, BaseAddresses)>,
    debug_frame: Option<(gimli::DebugFrame<Reader>, BaseAddresses)>,
}

/// How many frames a stack trace goes down at most (a corrupt stack must
/// not loop forever).
pub const MAX_FRAMES: usize = 64;

impl Unwinder {
    pub fn new(eh_frame: Option<(Reader, u64)>, debug_frame: Reader, text: u64) -> Self {
        let eh_frame = eh_frame.map(|(data, addr)| {
            let mut section = gimli::EhFrame::from(data);
            section.set_address_size(8);
            (
                section,
                BaseAddresses::default().set_eh_frame(addr).set_text(text),
            )
        });
        let debug_frame = (!gimli::Reader::is_empty(&debug_frame)).then(|| {
            let mut section = gimli::DebugFrame::from(debug_frame);
            section.set_address_size(8);
            (section, BaseAddresses::default())
        });
        Self {
            eh_frame,
            debug_frame,
        }
    }

    /// The caller's rule row for `probe`, from whichever section has it.
    fn row_for(&self, probe: u64) -> Option<gimli::UnwindTableRow<usize>> {
        let mut ctx = Box::new(UnwindContext::new());
        if let Some((section, bases)) = &self.eh_frame {
            if let Ok(row) = section.unwind_info_for_address(
                bases,
                &mut ctx,
                probe,
                gimli::EhFrame::cie_from_offset,
            ) {
                return Some(row.clone());
            }
        }
        if let Some((section, bases)) = &self.debug_frame {
            if let Ok(row) = section.unwind_info_for_address(
                bases,
                &mut ctx,
                probe,
                gimli::DebugFrame::cie_from_offset,
            ) {
                return Some(row.clone());
            }
        }
        None
    }

    /// Computes this frame's CFA (kept in `frame.cfa`) and returns the
    /// caller's registers, or None at the bottom of the stack.
    pub async fn unwind<M: TargetMemory>(
        &self,
        frame: &mut FrameRegs,
        is_top: bool,
        mem: &mut M,
    ) -> Result<Option<FrameRegs>> {
        let pc = frame.pc();
        // A return address points after the call: look up the call itself.
        let probe = if is_top { pc } else { pc.saturating_sub(1) };
        let mut caller = FrameRegs::default();
        if let Some(row) = self.row_for(probe) {
            let cfa = match row.cfa() {
                CfaRule::RegisterAndOffset { register, offset } => {
                    let Some(base) = frame.get(register.0) else {
                        bail!("CFA register {} unknown", register.0)
                    };
                    base.wrapping_add(*offset as u64)
                }
                CfaRule::Expression(_) => bail!("CFA expressions are not supported"),
            };
            frame.cfa = Some(cfa);
            for reg in 0..REG_COUNT as u16 {
                let value = match row.register(gimli::Register(reg)) {
                    // gimli reports a register the CIE and FDE never
                    // mention as Undefined too: a callee-saved one the
                    // function leaves alone (rustc's code without frame
                    // pointers and rbp) keeps its value in the caller, as
                    // gdb takes it; without that the walk stopped at the
                    // first caller whose CFA is rbp-based (std's
                    // lang_start_internal under a Rust main).
                    RegisterRule::Undefined if is_callee_saved(reg) => frame.get(reg),
                    RegisterRule::Undefined => None,
                    RegisterRule::SameValue => frame.get(reg),
                    RegisterRule::Offset(off) => {
                        read_u64(mem, cfa.wrapping_add(off as u64)).await.ok()
                    }
                    RegisterRule::ValOffset(off) => Some(cfa.wrapping_add(off as u64)),
                    RegisterRule::Register(other) => frame.get(other.0),
                    // Callee-saved registers without a rule keep their value.
                    _ if is_callee_saved(reg) => frame.get(reg),
                    _ => None,
                };
                caller.regs[reg as usize] = value;
            }
            caller.regs[RSP as usize] = Some(cfa);
            // The return address column is the caller's pc.
            let ra = match row.register(gimli::Register(RIP)) {
                RegisterRule::Offset(off) => read_u64(mem, cfa.wrapping_add(off as u64)).await.ok(),
                _ => read_u64(mem, cfa.wrapping_sub(8)).await.ok(),
            };
            caller.regs[RIP as usize] = ra;
        } else {
            // Frame-pointer chain: [rbp] = caller's rbp, [rbp+8] = return address.
            let Some(rbp) = frame.get(RBP).filter(|&v| v != 0) else {
                return Ok(None);
            };
            let saved_rbp = read_u64(mem, rbp).await?;
            let ra = read_u64(mem, rbp.wrapping_add(8)).await?;
            frame.cfa = Some(rbp.wrapping_add(16));
            for reg in 0..REG_COUNT as u16 {
                if is_callee_saved(reg) {
                    caller.regs[reg as usize] = frame.get(reg);
                }
            }
            caller.regs[RBP as usize] = Some(saved_rbp);
            caller.regs[RSP as usize] = Some(rbp.wrapping_add(16));
            caller.regs[RIP as usize] = Some(ra);
        }
        match caller.regs[RIP as usize] {
            Some(ra) if ra != 0 => {
                // A caller whose stack pointer did not move up is a loop.
                if caller.get(RSP) <= frame.get(RSP) {
                    return Ok(None);
                }
                Ok(Some(caller))
            }
            _ => Ok(None),
        }
    }
}

fn is_callee_saved(reg: u16) -> bool {
    // rbx, rbp, r12–r15 in the System V ABI.
    matches!(reg, 3 | 6 | 12..=15)
}

pub async fn read_u64<M: TargetMemory>(mem: &mut M, addr: u64) -> Result<u64> {
    let bytes = mem.read(addr, 8).await?;
    if bytes.len() < 8 {
        bail!("memory at {addr:#x} is not readable");
    }
    Ok(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")))
}
