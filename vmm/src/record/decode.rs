//! Which instructions a recording must treat specially, decoded from their
//! bytes: the few KVM does not trap that read host state (RDTSC, RDTSCP,
//! RDRAND, RDSEED) and HLT, which would otherwise wait for an interrupt
//! on host time. Everything else is `Other`. A hand decoder of prefixes
//! and these opcodes is enough; nothing here needs a full disassembler.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hlt,
    /// Reads host time or entropy: its results are logged and replayed.
    HostValue,
    Other,
}

/// Classifies the instruction that starts at `bytes[0]`.
pub fn classify(bytes: &[u8]) -> Kind {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 => i += 1,
            0x40..=0x4f => i += 1,
            _ => break,
        }
        if i >= 14 {
            return Kind::Other;
        }
    }
    match bytes.get(i..) {
        // A prefixed hlt (never emitted by compilers) runs as any other.
        Some([0xf4, ..]) if i == 0 => Kind::Hlt,
        Some([0x0f, 0x31, ..]) => Kind::HostValue,
        Some([0x0f, 0x01, 0xf9, ..]) => Kind::HostValue,
        // 0f c7 /6 (rdrand) and /7 (rdseed), register operand only.
        Some([0x0f, 0xc7, modrm, ..]) if modrm >> 6 == 3 && (modrm >> 3) & 7 >= 6 => {
            Kind::HostValue
        }
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_instructions_a_recording_handles() {
        assert_eq!(classify(&[0xf4]), Kind::Hlt);
        assert_eq!(classify(&[0x0f, 0x31]), Kind::HostValue);
        assert_eq!(classify(&[0x0f, 0x01, 0xf9]), Kind::HostValue);
        assert_eq!(classify(&[0x48, 0x0f, 0xc7, 0xf0]), Kind::HostValue); // rdrand rax
        assert_eq!(classify(&[0x0f, 0xc7, 0xf8]), Kind::HostValue); // rdseed eax
        assert_eq!(classify(&[0x0f, 0xc7, 0x08]), Kind::Other); // cmpxchg8b [rax]
        assert_eq!(classify(&[0x90]), Kind::Other);
        assert_eq!(classify(&[0x66; 20]), Kind::Other);
    }
}
