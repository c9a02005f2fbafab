//! The 8254 programmable interval timer in userspace, on virtual time.
//!
//! KVM's in-kernel PIT counts host nanoseconds, which a recording cannot
//! reproduce; a machine built for recording has this one instead (ports
//! 0x40–0x43 and the speaker/gate port 0x61). Its clock is a
//! [`VirtualClock`] that the recorder advances by a fixed amount per
//! executed instruction (and jumps forward over `hlt`), so every count the
//! guest reads and every IRQ 0 edge happens at the same instruction in
//! every replay. The PIT never raises its interrupt itself: the recorder
//! asks [`Pit::irq0_due`] at instruction boundaries and raises the line on
//! the in-kernel PIC; while no recording is on, the clock follows host
//! time and [`crate::record::live`] asks instead.
//!
//! Modes 0 (interrupt on terminal count), 2 (rate generator) and 3 (square
//! wave) are modelled for counting and channel 0's interrupt; the others
//! count like mode 2. Counter latch (command 0b00 in the access field) and
//! lobyte/hibyte/word access are supported; read-back and BCD are not.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{IoAction, Persist, PioDevice};

pub const BASE: u16 = 0x40;
pub const LEN: u16 = 4;
/// Port 0x61: the speaker and channel 2's gate (NMI status on a PC).
pub const SPEAKER_PORT: u16 = 0x61;
/// The 8254's input clock, Hz.
pub const FREQUENCY_HZ: u128 = 1_193_182;

/// Virtual nanoseconds since the machine was built, shared between the
/// recorder (which advances it) and the PIT (which reads it). While no
/// recording is on it follows host time ([`VirtualClock::follow_host`]),
/// so a recordable machine's timer runs at its real rate until a recording
/// takes it over.
#[derive(Clone, Debug, Default)]
pub struct VirtualClock(Arc<ClockState>);

#[derive(Debug, Default)]
struct ClockState {
    /// The time itself, or (following the host) its offset from
    /// [`host_ns`], wrapping.
    ns: AtomicU64,
    follows_host: AtomicBool,
}

/// Host monotonic nanoseconds since the first call in this process.
fn host_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl VirtualClock {
    pub fn now_ns(&self) -> u64 {
        let ns = self.0.ns.load(Ordering::Relaxed);
        if self.0.follows_host.load(Ordering::Relaxed) {
            ns.wrapping_add(host_ns())
        } else {
            ns
        }
    }

    pub fn set_ns(&self, ns: u64) {
        let stored = if self.0.follows_host.load(Ordering::Relaxed) {
            ns.wrapping_sub(host_ns())
        } else {
            ns
        };
        self.0.ns.store(stored, Ordering::Relaxed)
    }

    /// From now on the clock advances with host time (`true`) or only when
    /// set (`false`, a recording's instruction clock), going on from the
    /// time it shows now either way. Called while nothing else uses it
    /// (the vCPU and the live ticker stopped).
    pub fn follow_host(&self, on: bool) {
        let now = self.now_ns();
        self.0.follows_host.store(on, Ordering::Relaxed);
        self.set_ns(now);
    }
}
fn ticks_at(ns: u64) -> u128 {
    ns as u128 * FREQUENCY_HZ / 1_000_000_000
}

/// The first virtual nanosecond at which `ticks` PIT ticks have elapsed.
fn ns_of_ticks(ticks: u128) -> u64 {
    let ns = (ticks * 1_000_000_000).div_ceil(FREQUENCY_HZ);
    ns.min(u64::MAX as u128) as u64
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub mode: u8,
    /// 1 lobyte, 2 hibyte, 3 lobyte then hibyte.
    pub access: u8,
    /// The programmed count (0 means 65536).
    pub reload: u16,
    /// Virtual ns at which counting started with `reload`; `None` until a
    /// count is written.
    pub start_ns: Option<u64>,
    pub latched: Option<u16>,
    /// The next byte read/written is the high one (access 3).
    pub read_high: bool,
    pub write_high: bool,
    /// The low byte of a count being written in two halves.
    pub write_low: u8,
}

impl Channel {
    fn period(&self) -> u128 {
        if self.reload == 0 {
            65536
        } else {
            self.reload as u128
        }
    }

    fn count_at(&self, ns: u64) -> u16 {
        let Some(start) = self.start_ns else {
            return 0;
        };
        let elapsed = ticks_at(ns).saturating_sub(ticks_at(start));
        let period = self.period();
        match self.mode {
            0 => (period.saturating_sub(elapsed) & 0xffff) as u16,
            3 => {
                // Counts down by two, twice per period.
                let half = period.div_ceil(2).max(1);
                ((period - 2 * (elapsed % half).min(period / 2)) & 0xffff) as u16
            }
            _ => (period - elapsed % period) as u16,
        }
    }

    fn output_at(&self, ns: u64) -> bool {
        let Some(start) = self.start_ns else {
            return false;
        };
        let elapsed = ticks_at(ns).saturating_sub(ticks_at(start));
        let period = self.period();
        match self.mode {
            0 => elapsed >= period,
            3 => elapsed % period < period.div_ceil(2),
            _ => elapsed % period != period - 1,
        }
    }

    /// How many interrupts (rising edges) channel 0 has produced by `ns`.
    fn edges_by(&self, ns: u64) -> u128 {
        let Some(start) = self.start_ns else {
            return 0;
        };
        let elapsed = ticks_at(ns).saturating_sub(ticks_at(start));
        match self.mode {
            0 => (elapsed >= self.period()) as u128,
            _ => elapsed / self.period(),
        }
    }

    /// When edge number `n` (from 1) happens, if it ever does.
    fn edge_ns(&self, n: u128) -> Option<u64> {
        let start = self.start_ns?;
        if self.mode == 0 && n > 1 {
            return None;
        }
        Some(ns_of_ticks(ticks_at(start) + n * self.period()))
    }
}

/// Everything the guest can observe of the PIT, plus how many of channel
/// 0's interrupts have been delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitState {
    pub channels: [Channel; 3],
    pub port61: u8,
    /// Channel 0 edges already raised on IRQ 0 since `start_ns`.
    pub delivered: u64,
}

pub struct Pit {
    clock: VirtualClock,
    state: PitState,
}

impl Pit {
    pub fn new(clock: VirtualClock) -> Self {
        Self {
            clock,
            state: PitState::default(),
        }
    }

    /// Whether channel 0 has produced an edge not yet delivered; marks it
    /// delivered. Edges missed while interrupts were not looked at (a long
    /// `hlt` jump) collapse into one, as a real PIC's edge latch does.
    pub fn irq0_due(&mut self) -> bool {
        let ch = &self.state.channels[0];
        let edges = ch.edges_by(self.clock.now_ns());
        if edges > self.state.delivered as u128 {
            self.state.delivered = edges.min(u64::MAX as u128) as u64;
            true
        } else {
            false
        }
    }

    /// The virtual time of channel 0's next undelivered edge.
    pub fn next_irq0_ns(&self) -> Option<u64> {
        self.state.channels[0].edge_ns(self.state.delivered as u128 + 1)
    }

    fn write_command(&mut self, value: u8) {
        let index = (value >> 6) as usize;
        if index == 3 {
            return; // read-back: not modelled
        }
        let access = (value >> 4) & 3;
        let now = self.clock.now_ns();
        let ch = &mut self.state.channels[index];
        if access == 0 {
            if ch.latched.is_none() {
                ch.latched = Some(ch.count_at(now));
            }
            return;
        }
        ch.access = access;
        ch.mode = match (value >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        };
        ch.start_ns = None;
        ch.latched = None;
        ch.read_high = false;
        ch.write_high = false;
        if index == 0 {
            self.state.delivered = 0;
        }
    }

    fn write_count(&mut self, index: usize, value: u8) {
        let now = self.clock.now_ns();
        let ch = &mut self.state.channels[index];
        let reload = match ch.access {
            1 => value as u16,
            2 => (value as u16) << 8,
            _ if !ch.write_high => {
                ch.write_low = value;
                ch.write_high = true;
                return;
            }
            _ => {
                ch.write_high = false;
                (value as u16) << 8 | ch.write_low as u16
            }
        };
        ch.reload = reload;
        ch.start_ns = Some(now);
        if index == 0 {
            self.state.delivered = 0;
        }
    }

    fn read_count(&mut self, index: usize) -> u8 {
        let now = self.clock.now_ns();
        let ch = &mut self.state.channels[index];
        let value = ch.latched.unwrap_or_else(|| ch.count_at(now));
        let (byte, done) = match ch.access {
            1 => (value as u8, true),
            2 => ((value >> 8) as u8, true),
            _ if !ch.read_high => {
                ch.read_high = true;
                (value as u8, false)
            }
            _ => {
                ch.read_high = false;
                ((value >> 8) as u8, true)
            }
        };
        if done {
            ch.latched = None;
        }
        byte
    }
}

impl PioDevice for Pit {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        let value = match offset {
            0..=2 => self.read_count(offset as usize),
            // Port 0x61 is mapped at its own base: bit 5 is channel 2's
            // output, bit 4 toggles with DRAM refresh (here: with time).
            SPEAKER_OFFSET => {
                let now = self.clock.now_ns();
                let out2 = self.state.channels[2].output_at(now) as u8;
                let refresh = ((now / 15_000) & 1) as u8;
                (self.state.port61 & 0x0f) | out2 << 5 | refresh << 4
            }
            _ => 0xff,
        };
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
        let Some(&value) = data.first() else {
            return IoAction::None;
        };
        match offset {
            0..=2 => self.write_count(offset as usize, value),
            3 => self.write_command(value),
            SPEAKER_OFFSET => self.state.port61 = value,
            _ => {}
        }
        IoAction::None
    }
}

/// The speaker port is mapped as a one-port device of its own; the bus
/// hands it offset 0, told apart from the counters by this marker.
const SPEAKER_OFFSET: u16 = 0x100;

/// Port 0x61, served by the PIT it belongs to.
pub struct SpeakerPort(pub Arc<std::sync::Mutex<Pit>>);

impl PioDevice for SpeakerPort {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        super::lock_device(&self.0).read(SPEAKER_OFFSET, data)
    }

    fn write(&mut self, _offset: u16, data: &[u8]) -> IoAction {
        super::lock_device(&self.0).write(SPEAKER_OFFSET, data)
    }
}

impl Persist for Pit {
    type State = PitState;

    fn save(&self) -> PitState {
        self.state.clone()
    }

    fn restore(&mut self, state: &PitState) -> Result<(), String> {
        self.state = state.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pit() -> (Pit, VirtualClock) {
        let clock = VirtualClock::default();
        (Pit::new(clock.clone()), clock)
    }

    #[test]
    fn rate_generator_interrupts_once_per_period() {
        let (mut pit, clock) = pit();
        pit.write(3, &[0x34]); // channel 0, lobyte/hibyte, mode 2
        pit.write(0, &[0xa9]);
        pit.write(0, &[0x04]); // 1193: ~1 ms
        assert!(!pit.irq0_due());
        let next = pit.next_irq0_ns().unwrap();
        assert!((999_000..1_001_000).contains(&next), "{next}");
        clock.set_ns(next - 1);
        assert!(!pit.irq0_due());
        clock.set_ns(next);
        assert!(pit.irq0_due());
        assert!(!pit.irq0_due());
        assert!(pit.next_irq0_ns().unwrap() > next);
    }

    #[test]
    fn latched_count_reads_low_then_high() {
        let (mut pit, clock) = pit();
        pit.write(3, &[0x34]);
        pit.write(0, &[0x00]);
        pit.write(0, &[0x10]); // 4096
        clock.set_ns(ns_of_ticks(96));
        pit.write(3, &[0x00]); // latch channel 0
        clock.set_ns(ns_of_ticks(500));
        let mut lo = [0u8];
        let mut hi = [0u8];
        pit.read(0, &mut lo);
        pit.read(0, &mut hi);
        assert_eq!(u16::from_le_bytes([lo[0], hi[0]]), 4000);
    }

    #[test]
    fn one_shot_interrupts_once() {
        let (mut pit, clock) = pit();
        pit.write(3, &[0x30]); // mode 0
        pit.write(0, &[100]);
        pit.write(0, &[0]);
        clock.set_ns(1_000_000_000);
        assert!(pit.irq0_due());
        assert!(!pit.irq0_due());
        assert_eq!(pit.next_irq0_ns(), None);
    }

    #[test]
    fn clock_follows_the_host_and_freezes_where_it_is() {
        let clock = VirtualClock::default();
        clock.set_ns(5_000);
        clock.follow_host(true);
        let first = clock.now_ns();
        assert!(first >= 5_000);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = clock.now_ns();
        assert!(later >= first + 2_000_000, "{first} then {later}");
        clock.follow_host(false);
        let frozen = clock.now_ns();
        assert!(frozen >= later);
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert_eq!(
            clock.now_ns(),
            frozen,
            "a recording's clock moves only when set"
        );
        clock.set_ns(frozen + 1_000);
        assert_eq!(clock.now_ns(), frozen + 1_000);
    }
}
