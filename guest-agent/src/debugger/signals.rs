//! Linux signal numbers ↔ gdb's own signal numbers (gdb/signals.def). The
//! gdb remote protocol carries gdb's numbering, which differs from Linux's
//! for most signals above 6 (SIGBUS is 7 on Linux and 10 for gdb, …).

/// gdb's number for "a signal gdb has no name for".
const GDB_SIGNAL_UNKNOWN: u8 = 143;

/// gdb's numbers for Linux signals 0..=31.
const LINUX_TO_GDB: [u8; 32] = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    10,
    8,
    9,
    30,
    11,
    31,
    13,
    14,
    15,                 //
    GDB_SIGNAL_UNKNOWN, // SIGSTKFLT
    20,
    19,
    17,
    18,
    21,
    22,
    16,
    24,
    25,
    26,
    27,
    28,
    23,
    32,
    12,
];

pub fn linux_to_gdb(signal: i32) -> u8 {
    match signal {
        0..=31 => LINUX_TO_GDB[signal as usize],
        32 => 77,
        33..=63 => 45 + (signal - 33) as u8,
        64 => 78,
        _ => GDB_SIGNAL_UNKNOWN,
    }
}

/// `None` for gdb signals Linux does not have (the caller refuses them).
pub fn gdb_to_linux(signal: u8) -> Option<i32> {
    if let Some(linux) = LINUX_TO_GDB
        .iter()
        .position(|&g| g == signal && g != GDB_SIGNAL_UNKNOWN)
    {
        return Some(linux as i32);
    }
    match signal {
        77 => Some(32),
        45..=75 => Some(33 + i32::from(signal - 45)),
        78 => Some(64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_linux_signal_round_trips_except_stkflt() {
        for sig in 0..=64 {
            if sig == libc::SIGSTKFLT {
                continue;
            }
            assert_eq!(gdb_to_linux(linux_to_gdb(sig)), Some(sig), "signal {sig}");
        }
        assert_eq!(linux_to_gdb(libc::SIGSEGV), 11);
        assert_eq!(linux_to_gdb(libc::SIGBUS), 10);
        assert_eq!(linux_to_gdb(libc::SIGCHLD), 20);
        assert_eq!(gdb_to_linux(7), None, "gdb's SIGEMT has no Linux twin");
    }
}
