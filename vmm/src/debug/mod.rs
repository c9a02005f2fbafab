//! Guest debugging, independent of any wire protocol: the four x86 debug
//! address slots (DR0–DR3) shared by breakpoints and watchpoints,
//! single-step, decoding why a vCPU stopped, and guest-virtual memory access
//! through the guest's own page tables.
//!
//! The gdb stub is one user of this layer; snapshots and recording will be
//! others, which is why nothing here speaks RSP.

pub mod paging;
pub mod probe;

use kvm_bindings::{
    kvm_debug_exit_arch, kvm_guest_debug, KVM_GUESTDBG_BLOCKIRQ, KVM_GUESTDBG_ENABLE,
    KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP,
};

pub const SLOT_COUNT: usize = 4;

/// What a debug address slot watches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Execute,
    Write,
    ReadWrite,
}

/// Who asked for a slot, so a stop can be reported the way it was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A software breakpoint request served by a hardware slot because this
    /// host's KVM does not intercept int3.
    SoftwareBreakpoint,
    HardwareBreakpoint,
    /// A watchpoint over `[addr, addr + len)` as the debugger asked for it;
    /// one request may take several slots.
    Watchpoint {
        addr: u64,
        len: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub addr: u64,
    pub len: u8,
    pub access: Access,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotError {
    /// All four debug address registers are in use.
    NoFreeSlot,
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "all {SLOT_COUNT} hardware debug registers (DR0-DR3) are in use by breakpoints and watchpoints; delete one first"
        )
    }
}

/// Why a vCPU stopped, decoded from a KVM_EXIT_DEBUG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugStop {
    SingleStep,
    Slot(Slot),
    /// A #BP (int3) intercepted by KVM.
    Int3,
    /// A debug exit that matches nothing this layer set up.
    Unknown {
        dr6: u64,
    },
}

/// The debug address registers and their DR7 encoding.
#[derive(Clone, Debug, Default)]
pub struct DebugSlots {
    slots: [Option<Slot>; SLOT_COUNT],
}

impl DebugSlots {
    pub fn insert_breakpoint(&mut self, addr: u64, origin: Origin) -> Result<(), SlotError> {
        if self.find(addr, Access::Execute, origin).is_some() {
            return Ok(());
        }
        self.insert(&[Slot {
            addr,
            len: 1,
            access: Access::Execute,
            origin,
        }])
    }

    /// Covers `[addr, addr + len)` with naturally aligned 1/2/4/8-byte
    /// pieces, one slot each; all of them or none are taken.
    pub fn insert_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<(), SlotError> {
        let origin = Origin::Watchpoint { addr, len };
        let pieces: Vec<Slot> = aligned_pieces(addr, len.max(1))
            .into_iter()
            .map(|(addr, len)| Slot {
                addr,
                len,
                access,
                origin,
            })
            .collect();
        self.insert(&pieces)
    }

    fn insert(&mut self, pieces: &[Slot]) -> Result<(), SlotError> {
        let free: Vec<usize> = (0..SLOT_COUNT)
            .filter(|&i| self.slots[i].is_none())
            .collect();
        if free.len() < pieces.len() {
            return Err(SlotError::NoFreeSlot);
        }
        for (slot, piece) in free.into_iter().zip(pieces) {
            self.slots[slot] = Some(*piece);
        }
        Ok(())
    }

    fn find(&self, addr: u64, access: Access, origin: Origin) -> Option<usize> {
        self.slots.iter().position(
            |s| matches!(s, Some(s) if s.addr == addr && s.access == access && s.origin == origin),
        )
    }

    /// Returns whether anything was removed.
    pub fn remove_breakpoint(&mut self, addr: u64, origin: Origin) -> bool {
        match self.find(addr, Access::Execute, origin) {
            Some(i) => {
                self.slots[i] = None;
                true
            }
            None => false,
        }
    }

    pub fn remove_watchpoint(&mut self, addr: u64, len: u64, access: Access) -> bool {
        let origin = Origin::Watchpoint { addr, len };
        let mut removed = false;
        for slot in self.slots.iter_mut() {
            if matches!(slot, Some(s) if s.origin == origin && s.access == access) {
                *slot = None;
                removed = true;
            }
        }
        removed
    }

    /// The slots that hold watchpoints, with their DR index.
    pub fn watch_slots(&self) -> impl Iterator<Item = (usize, Slot)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|s| s.access != Access::Execute).map(|s| (i, s)))
    }

    /// The slots that hold breakpoints.
    pub fn breakpoints(&self) -> impl Iterator<Item = Slot> + '_ {
        self.slots
            .iter()
            .flatten()
            .copied()
            .filter(|s| s.access == Access::Execute)
    }

    /// The slots that hold breakpoints, with their DR index.
    pub fn breakpoint_slots(&self) -> impl Iterator<Item = (usize, Slot)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.filter(|s| s.access == Access::Execute).map(|s| (i, s)))
    }

    pub fn clear(&mut self) {
        self.slots = Default::default();
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The DR7 value enabling every used slot (global enable bits).
    pub fn dr7(&self) -> u64 {
        let mut dr7 = 0u64;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            let rw = match slot.access {
                Access::Execute => 0b00,
                Access::Write => 0b01,
                Access::ReadWrite => 0b11,
            };
            let len = match (slot.access, slot.len) {
                (Access::Execute, _) | (_, 1) => 0b00,
                (_, 2) => 0b01,
                (_, 8) => 0b10,
                _ => 0b11,
            };
            dr7 |= 1 << (i * 2 + 1);
            dr7 |= (rw | (len << 2)) << (16 + i * 4);
        }
        dr7
    }

    /// The KVM_SET_GUEST_DEBUG argument for these slots.
    pub fn guest_debug(&self, single_step: bool, block_irq_on_step: bool) -> kvm_guest_debug {
        let mut dbg = kvm_guest_debug::default();
        if self.is_empty() && !single_step {
            return dbg;
        }
        dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
        if single_step {
            dbg.control |= KVM_GUESTDBG_SINGLESTEP;
            if block_irq_on_step {
                dbg.control |= KVM_GUESTDBG_BLOCKIRQ;
            }
        }
        for (i, slot) in self.slots.iter().enumerate() {
            dbg.arch.debugreg[i] = slot.map_or(0, |s| s.addr);
        }
        dbg.arch.debugreg[7] = self.dr7();
        dbg
    }

    /// Decodes a debug exit: DR6 bits 0-3 name the slot that fired, bit 14
    /// (BS) a completed single-step, exception 3 an int3.
    pub fn classify(&self, exit: &kvm_debug_exit_arch) -> DebugStop {
        const BP_VECTOR: u32 = 3;
        const DR6_BS: u64 = 1 << 14;
        if exit.exception == BP_VECTOR {
            return DebugStop::Int3;
        }
        for i in 0..SLOT_COUNT {
            if exit.dr6 & (1 << i) != 0 {
                if let Some(slot) = self.slots[i] {
                    return DebugStop::Slot(slot);
                }
            }
        }
        if exit.dr6 & DR6_BS != 0 {
            return DebugStop::SingleStep;
        }
        // Some hosts report an exec breakpoint without DR6 bits; RIP tells.
        if let Some(slot) = self
            .slots
            .iter()
            .flatten()
            .find(|s| s.access == Access::Execute && s.addr == exit.pc)
        {
            return DebugStop::Slot(*slot);
        }
        DebugStop::Unknown { dr6: exit.dr6 }
    }
}

fn aligned_pieces(mut addr: u64, len: u64) -> Vec<(u64, u8)> {
    let end = addr.saturating_add(len);
    let mut pieces = Vec::new();
    while addr < end {
        let size = [8u64, 4, 2, 1]
            .into_iter()
            .find(|&s| addr % s == 0 && addr + s <= end)
            .unwrap_or(1);
        pieces.push((addr, size as u8));
        addr += size;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_slots_then_a_clear_error() {
        let mut d = DebugSlots::default();
        for i in 0..4 {
            d.insert_breakpoint(0x1000 + i, Origin::HardwareBreakpoint)
                .unwrap();
        }
        assert_eq!(
            d.insert_breakpoint(0x2000, Origin::HardwareBreakpoint),
            Err(SlotError::NoFreeSlot)
        );
        assert!(d.remove_breakpoint(0x1002, Origin::HardwareBreakpoint));
        d.insert_breakpoint(0x2000, Origin::HardwareBreakpoint)
            .unwrap();
    }

    #[test]
    fn dr7_encodes_write_watch_of_4_bytes() {
        let mut d = DebugSlots::default();
        d.insert_watchpoint(0x1000, 4, Access::Write).unwrap();
        // G0, RW0 = 01 (write), LEN0 = 11 (4 bytes)
        assert_eq!(d.dr7(), 0b10 | (0b1101 << 16));
    }

    #[test]
    fn unaligned_watch_takes_several_slots_or_none() {
        let mut d = DebugSlots::default();
        d.insert_watchpoint(0x1001, 4, Access::ReadWrite).unwrap(); // 1 + 2 + 1
        assert_eq!(d.slots.iter().flatten().count(), 3);
        assert_eq!(
            d.insert_watchpoint(0x3000, 16, Access::Write),
            Err(SlotError::NoFreeSlot)
        );
        assert_eq!(d.slots.iter().flatten().count(), 3);
        assert!(d.remove_watchpoint(0x1001, 4, Access::ReadWrite));
        assert!(d.is_empty());
    }

    #[test]
    fn classify_picks_the_slot_from_dr6() {
        let mut d = DebugSlots::default();
        d.insert_breakpoint(0x1000, Origin::SoftwareBreakpoint)
            .unwrap();
        d.insert_watchpoint(0x2000, 8, Access::Write).unwrap();
        let exit = kvm_debug_exit_arch {
            dr6: 0b10,
            ..Default::default()
        };
        assert!(matches!(
            d.classify(&exit),
            DebugStop::Slot(Slot {
                origin: Origin::Watchpoint {
                    addr: 0x2000,
                    len: 8
                },
                ..
            })
        ));
        let step = kvm_debug_exit_arch {
            dr6: 1 << 14,
            ..Default::default()
        };
        assert_eq!(d.classify(&step), DebugStop::SingleStep);
    }
}
