//! Breakpoints as the debugger keeps them: user breakpoints on source
//! lines and functions (with their conditions, hit counts and log
//! messages) and data breakpoints on watched locations.

use crate::rsp::WatchKind;

/// A source file as a breakpoint names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceFile {
    pub name: Option<String>,
    pub path: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct UserBreakpoint {
    pub id: i64,
    pub addr: Option<u64>,
    pub line: Option<u32>,
    pub source: Option<SourceFile>,
    pub verified: bool,
    pub message: Option<String>,
    /// Stop only when this expression is true (non-zero).
    pub condition: Option<String>,
    /// Stop only on the hits this allows (counted when the condition holds).
    pub hit_condition: Option<HitCondition>,
    /// A logpoint: print this (with `{expr}` values) and go on.
    pub log_message: Option<String>,
    /// Times the breakpoint was reached with its condition true.
    pub hits: u64,
}

#[derive(Clone, Debug)]
pub struct DataBreakpoint {
    pub id: i64,
    pub addr: u64,
    pub len: usize,
    pub kind: WatchKind,
    pub verified: bool,
    pub message: Option<String>,
}

/// When a breakpoint's hits stop the target (`hitCondition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitCondition {
    /// `N`, `>= N` (`> N` is `>= N+1`): from the Nth hit on, as gdb's
    /// `ignore` count of N-1.
    AtLeast(u64),
    /// `== N`: the Nth hit only.
    Exactly(u64),
    /// `% N`: every Nth hit.
    Every(u64),
}

impl HitCondition {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (op, number) = [">=", "==", "%", ">", "="]
            .iter()
            .find_map(|op| t.strip_prefix(op).map(|rest| (*op, rest.trim())))
            .unwrap_or(("", t));
        let bad = || {
            format!(
                "hitCondition {text:?} is not understood: give a hit count N (stop from the Nth hit on), `>= N`, `> N`, `== N` or `% N` (every Nth hit)"
            )
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        Ok(match op {
            "" | ">=" => HitCondition::AtLeast(n),
            ">" => HitCondition::AtLeast(n.saturating_add(1)),
            "==" | "=" => HitCondition::Exactly(n),
            "%" if n == 0 => {
                return Err(format!(
                    "hitCondition {text:?}: `% 0` divides by zero; give `% N` with N of 1 or more"
                ))
            }
            "%" => HitCondition::Every(n),
            _ => return Err(bad()),
        })
    }

    pub fn stops(self, hits: u64) -> bool {
        match self {
            HitCondition::AtLeast(n) => hits >= n,
            HitCondition::Exactly(n) => hits == n,
            HitCondition::Every(n) => hits % n == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_conditions_read_like_gdb_ignore_counts() {
        let stops = |text: &str| -> Vec<u64> {
            let h = HitCondition::parse(text).unwrap();
            (1..=6).filter(|&n| h.stops(n)).collect()
        };
        assert_eq!(stops("3"), vec![3, 4, 5, 6]);
        assert_eq!(stops(">= 3"), vec![3, 4, 5, 6]);
        assert_eq!(stops("> 3"), vec![4, 5, 6]);
        assert_eq!(stops("== 2"), vec![2]);
        assert_eq!(stops("%2"), vec![2, 4, 6]);
        let bad = HitCondition::parse("often").unwrap_err();
        assert!(
            bad.contains("hitCondition \"often\"") && bad.contains("% N"),
            "{bad}"
        );
        assert!(HitCondition::parse("% 0").unwrap_err().contains("% 0"));
        assert!(HitCondition::parse("-1").is_err());
    }
}
