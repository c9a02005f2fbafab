//! Guest power-off and reboot: the ACPI sleep-control and reset registers
//! the FADT points at (hardware-reduced ACPI), and the i8042 "pulse reset
//! line" command Linux falls back to. Each ends the VM with its status.

use super::{IoAction, PioDevice};
use crate::error::exit_status;

/// Sleep-control and sleep-status registers (one byte each, same port).
pub const SLEEP_CONTROL_PORT: u16 = 0x3c0;
pub const SLEEP_STATUS_PORT: u16 = 0x3c0;
/// The FADT's reset register and the value that resets.
pub const RESET_PORT: u16 = 0x3c1;
pub const RESET_VALUE: u8 = 0x0e;
pub const BASE: u16 = 0x3c0;
pub const LEN: u16 = 2;
/// The DSDT's \_S5 sleep type; the guest writes it with SLP_EN to power off.
pub const S5_SLEEP_TYPE: u8 = 5;
const SLP_EN: u8 = 1 << 5;
const SLP_TYP_SHIFT: u8 = 2;

/// The i8042 keyboard controller's command port; 0xfe pulses the reset line.
pub const I8042_COMMAND_PORT: u16 = 0x64;
const I8042_RESET_CPU: u8 = 0xfe;

/// ACPI sleep-control and reset registers.
pub struct AcpiPower;

impl PioDevice for AcpiPower {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        // Sleep status: WAK_STS clear, the guest is awake.
        data.fill(0);
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
        let value = data.first().copied().unwrap_or(0);
        match offset {
            0 if value & SLP_EN != 0 => {
                let sleep_type = (value >> SLP_TYP_SHIFT) & 0x7;
                if sleep_type == S5_SLEEP_TYPE {
                    IoAction::Exit(exit_status::GUEST_POWEROFF)
                } else {
                    // S1-S4 would need a wake-up path; staying awake is
                    // what a machine that cannot sleep does.
                    tracing::info!("guest asked for sleep type {sleep_type}; not supported");
                    IoAction::None
                }
            }
            1 if value == RESET_VALUE => IoAction::Exit(exit_status::GUEST_REBOOT),
            _ => IoAction::None,
        }
    }
}

/// Just enough of an i8042 for reboot: status reads float high, which
/// Linux's probe takes as "no controller" at once (instead of waiting for
/// self-test replies), and the reset command ends the VM.
pub struct I8042Reset;

impl PioDevice for I8042Reset {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u16, data: &[u8]) -> IoAction {
        match data.first() {
            Some(&I8042_RESET_CPU) => IoAction::Exit(exit_status::GUEST_REBOOT),
            _ => IoAction::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_powers_off_and_reset_reboots() {
        let s5 = (S5_SLEEP_TYPE << SLP_TYP_SHIFT) | SLP_EN;
        assert_eq!(
            AcpiPower.write(0, &[s5]),
            IoAction::Exit(exit_status::GUEST_POWEROFF)
        );
        assert_eq!(
            AcpiPower.write(0, &[S5_SLEEP_TYPE << SLP_TYP_SHIFT]),
            IoAction::None
        );
        assert_eq!(
            AcpiPower.write(1, &[RESET_VALUE]),
            IoAction::Exit(exit_status::GUEST_REBOOT)
        );
        assert_eq!(
            I8042Reset.write(0, &[0xfe]),
            IoAction::Exit(exit_status::GUEST_REBOOT)
        );
        assert_eq!(I8042Reset.write(0, &[0xaa]), IoAction::None);
    }
}
