//! The C/Rust expression evaluator over the target's DWARF and memory,
//! and the value handles (variablesReference) that inspection hands out
//! until the target resumes.

use crate::symbols::types::{Place, TypeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    Locals,
    Arguments,
    Registers,
    Globals,
}

/// What a variablesReference stands for.
#[derive(Clone, Debug)]
pub enum VarNode {
    Scope {
        frame: usize,
        kind: ScopeKind,
    },
    Value {
        frame: usize,
        name: String,
        /// What `evaluate` takes for it: its children's `evaluateName`s
        /// extend it.
        expression: Option<String>,
        ty: Option<TypeId>,
        place: Place,
    },
}
