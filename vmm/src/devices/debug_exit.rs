//! QEMU-compatible `isa-debug-exit`: a write of V ends the VM with process
//! exit status `(V << 1) | 1`, so test kernels run unchanged on both.

use super::{IoAction, PioDevice};

pub const PORT: u16 = 0xf4;
pub const LEN: u16 = 4;

pub struct DebugExit;

impl PioDevice for DebugExit {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u16, data: &[u8]) -> IoAction {
        let mut bytes = [0u8; 4];
        let n = data.len().min(4);
        bytes[..n].copy_from_slice(&data[..n]);
        let value = u32::from_le_bytes(bytes);
        IoAction::Exit(((value << 1) | 1) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_matches_qemu() {
        assert_eq!(DebugExit.write(0, &[0x2a]), IoAction::Exit(85));
        assert_eq!(DebugExit.write(0, &[0, 0, 0, 0]), IoAction::Exit(1));
    }
}
