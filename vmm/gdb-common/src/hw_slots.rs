//! Which breakpoint and watchpoint requests one x86 debug register
//! (DR0–DR3) can express, so both stubs refuse the same ones: a range of
//! 1, 2, 4 or 8 bytes aligned to its length; an instruction breakpoint of
//! length 1. A request the hardware cannot express is refused rather than
//! accepted and then watched partly or not at all.

/// DR0–DR3.
pub const SLOT_COUNT: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not 1, 2, 4 or 8 bytes.
    Length(u64),
    /// Not aligned to its length.
    Misaligned { addr: u64, len: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Length(len) => {
                write!(f, "a debug register watches 1, 2, 4 or 8 bytes, not {len}")
            }
            Self::Misaligned { addr, len } => write!(
                f,
                "a {len}-byte watch must start at a multiple of {len}, not {addr:#x}"
            ),
        }
    }
}

/// Whether one debug register can watch `[addr, addr + len)`.
pub fn check_watch(addr: u64, len: u64) -> Result<(), Refusal> {
    if !matches!(len, 1 | 2 | 4 | 8) {
        return Err(Refusal::Length(len));
    }
    if addr % len != 0 {
        return Err(Refusal::Misaligned { addr, len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aligned_power_of_two_ranges_up_to_8_fit_one_register() {
        for len in [1, 2, 4, 8] {
            assert_eq!(check_watch(0x208000, len), Ok(()));
        }
        assert_eq!(check_watch(0x208000, 22), Err(Refusal::Length(22)));
        assert_eq!(check_watch(0x208000, 0), Err(Refusal::Length(0)));
        assert_eq!(check_watch(0x208000, 16), Err(Refusal::Length(16)));
        assert_eq!(
            check_watch(0x208002, 4),
            Err(Refusal::Misaligned {
                addr: 0x208002,
                len: 4
            })
        );
        assert_eq!(check_watch(u64::MAX, 1), Ok(()));
    }
}
