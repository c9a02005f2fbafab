//! The C/Rust expression evaluator over the target's DWARF and memory
//! (names, registers, `*`, `&`, `[]`, `.`/`->` through references and
//! library types, casts, C arithmetic and comparisons), the rows of a
//! frame's scopes and of a value's children, values shown as text, and the
//! value handles (a DAP variablesReference) valid until the target resumes.

use anyhow::{bail, Context, Result};

use super::target::FrameInfo;
use super::Debugger;
use crate::symbols::expr::{self, BinaryOp, Expr};
use crate::symbols::formatters::{self, parenthesized, Children, Depth};
use crate::symbols::scopes::{LocationSource, Variable, VariableKind};
use crate::symbols::types::{int_of, Place, TypeId, TypeKind};
use crate::symbols::{Language, TargetMemory};

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

/// One row of a variables listing, before it is shown.
#[derive(Clone, Debug)]
pub struct VarEntry {
    pub name: String,
    pub ty: Option<TypeId>,
    pub place: Place,
    pub size: u64,
    pub frame: usize,
    /// Set for rows that are not typed values (registers).
    pub raw_text: Option<String>,
    /// An expression `evaluate` accepts for this row (DAP `evaluateName`,
    /// VS Code's "Copy as Expression"), when the row has one.
    pub expression: Option<String>,
}

/// How many array elements one expansion shows without paging.
pub const MAX_CHILDREN: usize = 1000;

impl Debugger {
    pub fn target_ref(&mut self) -> Result<&mut super::target::TargetState> {
        self.target.as_mut().context("no target")
    }

    pub fn new_reference(&mut self, node: VarNode) -> Result<i64> {
        let refs = &mut self.target_ref()?.stop.refs;
        refs.push(node);
        Ok(refs.len() as i64)
    }
    async fn place_of(&mut self, frame: &FrameInfo, var: &Variable) -> Place {
        match &var.location {
            LocationSource::Constant(bytes) => Place::Bytes(bytes.clone()),
            LocationSource::Unavailable(why) => Place::Unavailable(why.clone()),
            LocationSource::Expression(e) => {
                let Ok(target) = self.target_ref() else {
                    return Place::Unavailable("no target".into());
                };
                let symbols = target.symbols.clone();
                let mut mem = target.memory();
                let frame_base = symbols.frame_base(frame.probe, &frame.regs, &mut mem).await;
                symbols
                    .evaluate_location(var.unit, e, &frame.regs, frame_base, &mut mem)
                    .await
                    .unwrap_or_else(|e| Place::Unavailable(format!("{e:#}")))
            }
        }
    }

    async fn entry_of(
        &mut self,
        frame_index: usize,
        frame: &FrameInfo,
        var: &Variable,
    ) -> VarEntry {
        let place = self.place_of(frame, var).await;
        let size = match (self.target.as_ref(), var.ty) {
            (Some(t), Some(ty)) => t.symbols.resolve_type(ty).size.unwrap_or(0),
            _ => 0,
        };
        VarEntry {
            name: var.name.clone(),
            ty: var.ty,
            place,
            size,
            frame: frame_index,
            raw_text: None,
            expression: Some(var.name.clone()),
        }
    }

    /// The rows under a variablesReference.
    pub async fn children_of(&mut self, reference: i64) -> Result<Vec<VarEntry>> {
        self.children_page(reference, 0, MAX_CHILDREN as u64).await
    }

    /// Rows `start..start + count` under a variablesReference: a long
    /// sequence is read one page at a time.
    pub async fn children_page(
        &mut self,
        reference: i64,
        start: u64,
        count: u64,
    ) -> Result<Vec<VarEntry>> {
        let node = usize::try_from(reference - 1)
            .ok()
            .and_then(|i| self.target.as_ref()?.stop.refs.get(i).cloned())
            .with_context(|| format!("variablesReference {reference} is not valid (any reference ends when the target resumes)"))?;
        match node {
            VarNode::Scope { frame: index, kind } => {
                let frame = self.frame(index).await?;
                let symbols = self.target_ref()?.symbols.clone();
                let vars: Vec<Variable> = match kind {
                    ScopeKind::Locals => symbols
                        .frame_variables(frame.probe, frame.source.inline_depth)
                        .into_iter()
                        .filter(|v| v.kind == VariableKind::Local)
                        .collect(),
                    ScopeKind::Arguments => symbols
                        .frame_variables(frame.probe, frame.source.inline_depth)
                        .into_iter()
                        .filter(|v| v.kind == VariableKind::Argument)
                        .collect(),
                    ScopeKind::Globals => symbols.globals(Some(frame.probe)),
                    ScopeKind::Registers => {
                        let rows = self.register_rows(index, &frame).await?;
                        return Ok(rows
                            .into_iter()
                            .skip(start as usize)
                            .take(count as usize)
                            .collect());
                    }
                };
                let mut out = Vec::new();
                for v in vars.iter().skip(start as usize).take(count as usize) {
                    out.push(self.entry_of(index, &frame, v).await);
                }
                Ok(out)
            }
            VarNode::Value {
                frame,
                name,
                expression,
                ty,
                place,
            } => {
                let rows = self
                    .value_children(frame, &name, expression.as_deref(), ty, place, start, count)
                    .await?;
                Ok(rows)
            }
        }
    }

    async fn register_rows(&mut self, index: usize, frame: &FrameInfo) -> Result<Vec<VarEntry>> {
        let target = self.target_ref()?;
        let mut rows = Vec::new();
        if index == 0 || frame.physical == 0 {
            let thread = target.thread.clone();
            let block = target.register_block(&thread).await?;
            for info in target.rsp.registers.registers.clone() {
                let size = (info.bits as usize).div_ceil(8);
                let Some(bytes) = block.get(info.offset..info.offset + size) else {
                    continue;
                };
                let text = if size <= 8 {
                    format!("{:#x}", int_of(bytes, false) as u64)
                } else {
                    crate::symbols::types::hex_le(bytes)
                };
                rows.push(VarEntry {
                    name: info.name.clone(),
                    ty: None,
                    place: Place::Bytes(bytes.to_vec()),
                    size: size as u64,
                    frame: index,
                    raw_text: Some(text),
                    expression: Some(format!("${}", info.name)),
                });
            }
        } else {
            for (n, name) in crate::rsp::registers::DWARF_X86_64.iter().enumerate() {
                let text = match frame.regs.regs[n] {
                    Some(v) => format!("{v:#x}"),
                    None => "<not saved>".to_string(),
                };
                rows.push(VarEntry {
                    name: name.to_string(),
                    ty: None,
                    place: Place::Unavailable(String::new()),
                    size: 8,
                    frame: index,
                    raw_text: Some(text),
                    expression: Some(format!("${name}")),
                });
            }
        }
        Ok(rows)
    }

    /// A value's library-type view (a `Vec`'s elements, an enum's active
    /// variant …) from the language formatters, when it has one.
    async fn synthetic(
        &mut self,
        ty: TypeId,
        place: &Place,
    ) -> Option<(formatters::Value, Children)> {
        let symbols = self.target_ref().ok()?.symbols.clone();
        let size = symbols.resolve_type(ty).size.unwrap_or(0);
        let bytes = self.bytes_of(place, size).await.ok()?;
        let value = formatters::Value {
            ty,
            place: place.clone(),
            bytes,
        };
        let children = symbols
            .synthetic_children(&value, &mut self.target_ref().ok()?.memory())
            .await?;
        Some((value, children))
    }

    #[allow(clippy::too_many_arguments)]
    async fn value_children(
        &mut self,
        frame: usize,
        name: &str,
        expression: Option<&str>,
        ty: Option<TypeId>,
        place: Place,
        start: u64,
        count: u64,
    ) -> Result<Vec<VarEntry>> {
        let symbols = self.target_ref()?.symbols.clone();
        let Some(ty) = ty else { return Ok(Vec::new()) };
        if let Some((_, children)) = self.synthetic(ty, &place).await {
            return Ok(
                formatters::indexed_rows(&children, start, count.min(MAX_CHILDREN as u64))
                    .into_iter()
                    .map(|c| VarEntry {
                        expression: expression
                            .and_then(|e| formatters::child_expression(e, &c.name)),
                        name: c.name,
                        size: c.ty.and_then(|t| symbols.resolve_type(t).size).unwrap_or(0),
                        ty: c.ty,
                        place: c.place,
                        frame,
                        raw_text: None,
                    })
                    .collect(),
            );
        }
        let stripped = symbols.strip(ty);
        let mut out = Vec::new();
        match &stripped.kind {
            TypeKind::Struct { members, .. } => {
                let whole = match &place {
                    Place::Memory(_) => None,
                    _ => Some(self.bytes_of(&place, stripped.size.unwrap_or(0)).await?),
                };
                for m in members {
                    let size =
                        m.ty.map(|t| symbols.resolve_type(t).size.unwrap_or(0))
                            .unwrap_or(0);
                    let child_place = match (&place, m.bits, &whole) {
                        (Place::Memory(a), None, _) => Place::Memory(a + m.offset),
                        (Place::Memory(_), Some(_), _) => {
                            let bytes = self.bytes_of(&place, stripped.size.unwrap_or(0)).await?;
                            Place::Bytes(
                                symbols
                                    .member_bytes(m, &bytes)
                                    .map(|(_, b)| b)
                                    .unwrap_or_default(),
                            )
                        }
                        (_, _, Some(bytes)) => Place::Bytes(
                            symbols
                                .member_bytes(m, bytes)
                                .map(|(_, b)| b)
                                .unwrap_or_default(),
                        ),
                        _ => Place::Unavailable("not available".into()),
                    };
                    out.push(VarEntry {
                        name: m.name.clone(),
                        ty: m.ty,
                        place: child_place,
                        size,
                        frame,
                        raw_text: None,
                        expression: expression
                            .and_then(|e| formatters::child_expression(e, &m.name)),
                    });
                }
            }
            TypeKind::Array { element, counts } => {
                let inner = &counts[1..];
                let elem_size = symbols.element_size(*element, &[]).unwrap_or(0);
                let total: u64 = counts.iter().map(|c| c.unwrap_or(0)).product();
                let whole = match &place {
                    Place::Memory(_) => None,
                    _ => Some(self.bytes_of(&place, stripped.size.unwrap_or(0)).await?),
                };
                let end = total.min(start.saturating_add(count.min(MAX_CHILDREN as u64)));
                for i in start as usize..end as usize {
                    // Multi-dimensional arrays are listed flat, row-major.
                    let label = if inner.is_empty() {
                        format!("[{i}]")
                    } else {
                        let mut rest = i as u64;
                        let mut idx = Vec::new();
                        for c in counts.iter().rev() {
                            let c = c.unwrap_or(1).max(1);
                            idx.push(rest % c);
                            rest /= c;
                        }
                        idx.iter().rev().map(|x| format!("[{x}]")).collect()
                    };
                    let offset = i as u64 * elem_size;
                    let child_place = match (&place, &whole) {
                        (Place::Memory(a), _) => Place::Memory(a + offset),
                        (_, Some(bytes)) => Place::Bytes(
                            bytes
                                .get(offset as usize..(offset + elem_size) as usize)
                                .map(<[u8]>::to_vec)
                                .unwrap_or_default(),
                        ),
                        _ => Place::Unavailable("not available".into()),
                    };
                    out.push(VarEntry {
                        expression: expression
                            .and_then(|e| formatters::child_expression(e, &label)),
                        name: label,
                        ty: *element,
                        place: child_place,
                        size: elem_size,
                        frame,
                        raw_text: None,
                    });
                }
            }
            TypeKind::Pointer {
                target: Some(pointee),
                ..
            } if start == 0 => {
                let bytes = self.bytes_of(&place, 8).await?;
                let addr = int_of(&bytes, false) as u64;
                let size = symbols.resolve_type(*pointee).size.unwrap_or(0);
                out.push(VarEntry {
                    name: format!("*{name}"),
                    ty: Some(*pointee),
                    place: Place::Memory(addr),
                    size,
                    frame,
                    raw_text: None,
                    expression: expression.map(|e| format!("*{}", parenthesized(e))),
                });
            }
            _ => {}
        }
        Ok(out)
    }

    /// The bytes of a value.
    async fn bytes_of(&mut self, place: &Place, size: u64) -> Result<Vec<u8>> {
        match place {
            Place::Memory(addr) => {
                let size = size.min(1 << 20) as usize;
                let bytes = self.target_ref()?.memory().read(*addr, size).await?;
                if bytes.len() < size {
                    bail!("cannot read memory at {addr:#x}");
                }
                Ok(bytes)
            }
            Place::Bytes(b) | Place::Register(_, b) => {
                let mut b = b.clone();
                if size > 0 {
                    b.resize(size as usize, 0);
                }
                Ok(b)
            }
            Place::Unavailable(why) => bail!("<{why}>"),
        }
    }

    /// Shows one row: its value as text, its type, and a handle on its
    /// children when it has some (allocated here, valid until resume).
    pub async fn describe(&mut self, entry: VarEntry, hex: bool) -> Result<Shown> {
        let symbols = self.target_ref()?.symbols.clone();
        if let Some(text) = entry.raw_text {
            return Ok(Shown {
                name: entry.name,
                value: text,
                type_name: None,
                reference: 0,
                indexed: None,
                address: None,
                expression: entry.expression,
            });
        }
        let type_name = entry
            .ty
            .map(|t| symbols.resolve_type(t).name.clone())
            .unwrap_or_default();
        let (value, synthetic) = match (self.bytes_of(&entry.place, entry.size).await, entry.ty) {
            (Ok(bytes), Some(ty)) => {
                let value = formatters::Value {
                    ty,
                    place: entry.place.clone(),
                    bytes,
                };
                let mut memory = self.target_ref()?.memory();
                let text = symbols
                    .summarize(&value, &mut memory, Depth::top(hex))
                    .await;
                let children = symbols.synthetic_children(&value, &mut memory).await;
                (text, children)
            }
            (Ok(bytes), None) => (symbols.format_value(None, &bytes, 0, hex), None),
            (Err(e), _) => (format!("{e:#}"), None),
        };
        let indexed = match &synthetic {
            Some(Children::Indexed(sequence)) => Some(sequence.count),
            _ => None,
        };
        let expandable = match &synthetic {
            Some(Children::Indexed(sequence)) => sequence.count > 0,
            Some(Children::Named(rows)) => !rows.is_empty(),
            None => entry.ty.is_some_and(|t| match &symbols.strip(t).kind {
                TypeKind::Struct { members, .. } => !members.is_empty(),
                TypeKind::Array { .. } => true,
                TypeKind::Pointer {
                    target: Some(p), ..
                } => {
                    !matches!(symbols.strip(*p).kind, TypeKind::Function)
                        && symbols.resolve_type(*p).size.is_some()
                }
                _ => false,
            }),
        } && !matches!(entry.place, Place::Unavailable(_));
        let reference = if expandable {
            // Its children's expressions extend this row's.
            self.new_reference(VarNode::Value {
                frame: entry.frame,
                name: entry.name.clone(),
                expression: entry.expression.clone(),
                ty: entry.ty,
                place: entry.place.clone(),
            })?
        } else {
            0
        };
        Ok(Shown {
            name: entry.name,
            value,
            type_name: Some(type_name),
            reference,
            indexed: indexed.filter(|_| reference != 0),
            address: match entry.place {
                Place::Memory(addr) => Some(addr),
                _ => None,
            },
            expression: entry.expression,
        })
    }

    /// Sets the row `name` under a handle to `value` (as the row's type
    /// reads it): in memory, or in a register of the innermost frame.
    pub async fn set_variable(
        &mut self,
        reference: i64,
        name: &str,
        value: &str,
    ) -> Result<SetValue> {
        let entries = self.children_of(reference).await?;
        let entry = entries
            .into_iter()
            .find(|e| e.name == name)
            .with_context(|| format!("no variable {name:?} here"))?;
        let target = self.target_ref()?;
        let symbols = target.symbols.clone();
        if entry.raw_text.is_some() {
            // A register of the innermost frame.
            if entry.frame != 0 {
                bail!("registers can be set in the innermost frame only");
            }
            let info = target
                .rsp
                .registers
                .by_name(&entry.name)
                .cloned()
                .with_context(|| format!("no register {}", entry.name))?;
            let value = crate::symbols::types::parse_int(value.trim())?;
            let size = (info.bits as usize).div_ceil(8);
            let mut bytes = value.to_le_bytes().to_vec();
            bytes.resize(size, 0);
            let thread = target.thread.clone();
            target
                .rsp
                .write_register(&thread, info.regnum, &bytes)
                .await?;
            target.stop.registers.clear();
            target.stop.frames = None;
            return Ok(SetValue::Register(value as u64));
        }
        let bytes = symbols.parse_value(entry.ty, value)?;
        match entry.place {
            Place::Memory(addr) => {
                target.rsp.write_memory(addr, &bytes).await?;
                target.stop.memory.clear();
            }
            Place::Register(reg, _) if entry.frame == 0 => {
                let name = crate::rsp::registers::DWARF_X86_64
                    .get(reg as usize)
                    .context("unknown register")?;
                let info = target
                    .rsp
                    .registers
                    .by_name(name)
                    .cloned()
                    .context("the stub has no such register")?;
                let thread = target.thread.clone();
                let mut value = target
                    .register_block(&thread)
                    .await?
                    .get(info.offset..info.offset + 8)
                    .map(<[u8]>::to_vec)
                    .unwrap_or(vec![0; 8]);
                value[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
                target
                    .rsp
                    .write_register(&thread, info.regnum, &value)
                    .await?;
                target.stop.registers.clear();
                target.stop.frames = None;
            }
            _ => bail!(
                "{} is not in memory or a register of the innermost frame; it cannot be set",
                name
            ),
        }
        let shown = VarEntry {
            place: match entry.place {
                Place::Register(r, _) => Place::Register(r, bytes.clone()),
                p => p,
            },
            ..entry
        };
        Ok(SetValue::Value(shown))
    }

    /// Resolves a name in a frame: locals and arguments, then globals.
    async fn lookup_name(&mut self, frame_index: usize, name: &str) -> Result<VarEntry> {
        let symbols = self.target_ref()?.symbols.clone();
        let frame = self.frame(frame_index).await.ok();
        if let Some(frame) = &frame {
            let vars = symbols.frame_variables(frame.probe, frame.source.inline_depth);
            // The innermost declaration wins (last in DIE order).
            if let Some(v) = vars.iter().rev().find(|v| v.name == name) {
                return Ok(self.entry_of(frame_index, frame, v).await);
            }
        }
        let cpu = {
            let target = self.target_ref()?;
            target
                .threads
                .iter()
                .position(|t| *t == target.thread)
                .unwrap_or(0)
        };
        let v = &symbols
            .global_named(name, cpu)
            .with_context(|| format!("no symbol {name:?} in the current context"))?;
        let frame = match frame {
            Some(f) => f,
            None => bail!("no frame"),
        };
        Ok(self.entry_of(frame_index, &frame, v).await)
    }

    async fn eval(&mut self, frame_index: usize, e: &Expr) -> Result<Evaluated> {
        let symbols = self.target_ref()?.symbols.clone();
        Ok(match e {
            Expr::Number(n) => Evaluated::Int(*n),
            Expr::Name(name) => Evaluated::Entry(self.lookup_name(frame_index, name).await?),
            Expr::Register(name) => {
                let frame = self.frame(frame_index).await?;
                let alias = match name.as_str() {
                    "pc" => "rip",
                    "sp" => "rsp",
                    "fp" => "rbp",
                    other => other,
                };
                if frame.physical == 0 {
                    let target = self.target_ref()?;
                    let thread = target.thread.clone();
                    let block = target.register_block(&thread).await?;
                    let value = target
                        .register_value(&block, alias)
                        .with_context(|| format!("no register ${name}"))?;
                    Evaluated::Int(value as i64)
                } else {
                    let n = crate::rsp::registers::DWARF_X86_64
                        .iter()
                        .position(|r| *r == alias)
                        .with_context(|| format!("${name} is not known in caller frames"))?;
                    Evaluated::Int(
                        frame.regs.regs[n]
                            .with_context(|| format!("${name} was not saved by this frame"))?
                            as i64,
                    )
                }
            }
            Expr::AddressOf(inner) => match Box::pin(self.eval(frame_index, inner)).await? {
                Evaluated::Entry(VarEntry {
                    place: Place::Memory(a),
                    ..
                }) => Evaluated::Int(a as i64),
                _ => bail!("the value has no address"),
            },
            Expr::Deref(inner) => {
                let value = Box::pin(self.eval(frame_index, inner)).await?;
                self.deref(value, 0).await?
            }
            Expr::Str(_) => bail!("a string literal is only a map's key here (m[\"key\"])"),
            Expr::Index(base, key) if matches!(**key, Expr::Str(_)) => {
                let Expr::Str(key) = &**key else {
                    unreachable!("matched above")
                };
                let base = Box::pin(self.eval(frame_index, base)).await?;
                // The map's row for the key, named as the key's summary.
                self.keyed(base, &format!("[{key:?}]")).await?
            }
            Expr::Index(base, index) => {
                let base = Box::pin(self.eval(frame_index, base)).await?;
                let index = match Box::pin(self.eval(frame_index, index)).await? {
                    Evaluated::Int(n) => n,
                    Evaluated::Entry(entry) => {
                        let bytes = self.bytes_of(&entry.place, entry.size).await?;
                        int_of(&bytes, true)
                    }
                };
                self.deref(base, index).await?
            }
            Expr::Negate(inner) => {
                let value = Box::pin(self.eval(frame_index, inner)).await?;
                match self.scalar(value).await? {
                    Scalar::Int(n) => Evaluated::Int(n.wrapping_neg()),
                    Scalar::Float(_) => bail!("arithmetic on floating-point values is not supported; compare them instead"),
                }
            }
            Expr::Cast(type_name, inner) => {
                let value = Box::pin(self.eval(frame_index, inner)).await?;
                self.cast(frame_index, type_name, value).await?
            }
            Expr::Not(inner) => {
                let value = Box::pin(self.eval(frame_index, inner)).await?;
                Evaluated::Int(i64::from(self.scalar(value).await?.is_zero()))
            }
            Expr::Binary(op, left, right) => {
                let l = Box::pin(self.eval(frame_index, left)).await?;
                let l = self.scalar(l).await?;
                // && and || do not evaluate their right side when the left decides.
                match op {
                    BinaryOp::And if l.is_zero() => return Ok(Evaluated::Int(0)),
                    BinaryOp::Or if !l.is_zero() => return Ok(Evaluated::Int(1)),
                    _ => {}
                }
                let r = Box::pin(self.eval(frame_index, right)).await?;
                let r = self.scalar(r).await?;
                Evaluated::Int(binary(*op, l, r)?)
            }
            Expr::Member(base, field) | Expr::Arrow(base, field) => {
                let mut value = Box::pin(self.eval(frame_index, base)).await?;
                if matches!(e, Expr::Arrow(..)) {
                    value = self.deref(value, 0).await?;
                }
                let Evaluated::Entry(entry) = value else {
                    bail!("a number has no member {field:?}")
                };
                let ty = entry.ty.context("the value has no type")?;
                let mut entry = entry;
                if matches!(symbols.strip(ty).kind, TypeKind::Pointer { .. })
                    && matches!(e, Expr::Member(..))
                {
                    // Rust's `.` reaches through references and Box, C++'s
                    // through references.
                    let reference = matches!(
                        symbols.strip(ty).kind,
                        TypeKind::Pointer {
                            reference: Some(_),
                            ..
                        }
                    );
                    if symbols.languages[ty.unit] != Language::Rust && !reference {
                        bail!("{} is a pointer; use -> to reach {field:?}", entry.name);
                    }
                    let Evaluated::Entry(target) = self.deref(Evaluated::Entry(entry), 0).await?
                    else {
                        bail!("cannot dereference")
                    };
                    entry = target;
                }
                let ty = entry.ty.context("the value has no type")?;
                let children = self
                    .value_children(
                        frame_index,
                        &entry.name,
                        None,
                        entry.ty,
                        entry.place.clone(),
                        0,
                        MAX_CHILDREN as u64,
                    )
                    .await?;
                let through = match children.as_slice() {
                    [only] if only.name == "value" || only.name == "*get()" => Some(only.clone()),
                    _ => None,
                };
                let children = match through {
                    Some(inner) if !children.iter().any(|c| c.name == *field) => {
                        self.value_children(
                            frame_index,
                            &inner.name,
                            None,
                            inner.ty,
                            inner.place,
                            0,
                            MAX_CHILDREN as u64,
                        )
                        .await?
                    }
                    _ => children,
                };
                let child = children
                    .into_iter()
                    .find(|c| c.name == *field)
                    .with_context(|| {
                        format!("{} has no member {field:?}", symbols.resolve_type(ty).name)
                    })?;
                Evaluated::Entry(VarEntry {
                    name: format!("{}.{}", entry.name, child.name),
                    ..child
                })
            }
        })
    }

    /// The number a value stands for in arithmetic and comparisons:
    /// integers, enumerators, booleans, characters and pointers (as their
    /// address; an array as its first element's), or a floating-point value.
    async fn scalar(&mut self, value: Evaluated) -> Result<Scalar> {
        let entry = match value {
            Evaluated::Int(n) => return Ok(Scalar::Int(n)),
            Evaluated::Entry(entry) => entry,
        };
        let symbols = self.target_ref()?.symbols.clone();
        let ty = entry
            .ty
            .with_context(|| format!("{} has no type", entry.name))?;
        let stripped = symbols.strip(ty);
        let signed = match &stripped.kind {
            TypeKind::Base { encoding } => {
                if *encoding == gimli::DW_ATE_float {
                    let bytes = self.bytes_of(&entry.place, entry.size).await?;
                    return match bytes.len() {
                        4 => Ok(Scalar::Float(f64::from(f32::from_le_bytes(
                            bytes[..4].try_into().expect("4 bytes"),
                        )))),
                        8 => Ok(Scalar::Float(f64::from_le_bytes(
                            bytes[..8].try_into().expect("8 bytes"),
                        ))),
                        n => bail!("{} is a {n}-byte floating-point value, which expressions do not compute with", entry.name),
                    };
                }
                *encoding == gimli::DW_ATE_signed || *encoding == gimli::DW_ATE_signed_char
            }
            TypeKind::Enum { signed, .. } => *signed,
            TypeKind::Pointer { .. } => false,
            TypeKind::Array { .. } => match entry.place {
                Place::Memory(addr) => return Ok(Scalar::Int(addr as i64)),
                _ => bail!("{} is an array that is not in memory", entry.name),
            },
            _ => bail!(
                "{} is a {}, not a number; use one of its members",
                entry.name,
                symbols.resolve_type(ty).name
            ),
        };
        let bytes = self.bytes_of(&entry.place, entry.size.min(8)).await?;
        Ok(Scalar::Int(int_of(&bytes, signed)))
    }

    /// The row named `key` (`["k"]`) of a map.
    async fn keyed(&mut self, value: Evaluated, key: &str) -> Result<Evaluated> {
        let symbols = self.target_ref()?.symbols.clone();
        let Evaluated::Entry(entry) = value else {
            bail!("a number has no element {key}")
        };
        let ty = entry.ty.context("the value has no type")?;
        let Some((_, Children::Named(rows))) = self.synthetic(ty, &entry.place).await else {
            bail!("{} is not a map", entry.name)
        };
        let row = rows
            .into_iter()
            .find(|r| r.name == key)
            .with_context(|| format!("{} has no element {key}", entry.name))?;
        Ok(Evaluated::Entry(VarEntry {
            name: format!("{}{key}", entry.name),
            size: row
                .ty
                .and_then(|t| symbols.resolve_type(t).size)
                .unwrap_or(0),
            ty: row.ty,
            place: row.place,
            frame: entry.frame,
            raw_text: None,
            expression: None,
        }))
    }

    /// `(type)value`: a pointer or a number takes the value's number (an
    /// address for a pointer: `((struct file *)0xffff…)->f_path`); a
    /// struct, union or array is the value's memory seen as that type.
    async fn cast(&mut self, frame: usize, type_name: &str, value: Evaluated) -> Result<Evaluated> {
        let symbols = self.target_ref()?.symbols.clone();
        let ty = symbols
            .type_named(&dwarf_type_name(type_name))
            .with_context(|| match type_name.strip_suffix('*') {
                Some(target) => format!(
                    "no type {type_name:?}: the DWARF of {} has no {} or no pointer to it",
                    symbols.path.display(),
                    target.trim_end()
                ),
                None => format!(
                    "no type {type_name:?} in the DWARF of {}",
                    symbols.path.display()
                ),
            })?;
        let stripped = symbols.strip(ty);
        let size = stripped.size.unwrap_or(8);
        let name = format!("({type_name})");
        let place = match &stripped.kind {
            TypeKind::Pointer { .. } | TypeKind::Base { .. } | TypeKind::Enum { .. } => {
                let n = match self.scalar(value).await? {
                    Scalar::Int(n) => n,
                    Scalar::Float(f) => f as i64,
                };
                Place::Bytes(n.to_le_bytes()[..(size as usize).min(8)].to_vec())
            }
            _ => match value {
                Evaluated::Entry(VarEntry {
                    place: Place::Memory(addr),
                    ..
                }) => Place::Memory(addr),
                _ => bail!("only a value in memory can be seen as {type_name}; cast its address to a pointer instead"),
            },
        };
        Ok(Evaluated::Entry(VarEntry {
            name,
            ty: Some(ty),
            place,
            size,
            frame,
            raw_text: None,
            expression: None,
        }))
    }

    /// `*value` (index 0) or `value[index]` for pointers and arrays.
    async fn deref(&mut self, value: Evaluated, index: i64) -> Result<Evaluated> {
        let symbols = self.target_ref()?.symbols.clone();
        let Evaluated::Entry(entry) = value else {
            bail!("a number cannot be dereferenced (it has no type)")
        };
        let ty = entry.ty.context("the value has no type")?;
        let stripped = symbols.strip(ty);
        let (element, base) = match &stripped.kind {
            TypeKind::Pointer { target, .. } => {
                let bytes = self.bytes_of(&entry.place, 8).await?;
                (*target, Place::Memory(int_of(&bytes, false) as u64))
            }
            TypeKind::Array { element, .. } => (*element, entry.place.clone()),
            // A library sequence (Vec, slice, std::vector): bounds-checked,
            // as the language's own indexing is.
            _ => match self.synthetic(ty, &entry.place).await {
                Some((_, Children::Indexed(sequence))) => {
                    let address = u64::try_from(index)
                        .ok()
                        .and_then(|i| sequence.address(i))
                        .with_context(|| {
                            format!(
                                "index {index} is out of range for {} (length {})",
                                entry.name, sequence.count
                            )
                        })?;
                    (sequence.element, Place::Memory(address))
                }
                // A map's value by its key (the row `[key]`); what a smart
                // pointer, an `Rc` or an optional holds (its one row).
                Some((_, Children::Named(rows))) => {
                    let key = format!("[{index}]");
                    let row = rows
                        .iter()
                        .find(|r| r.name == key)
                        .or_else(|| match rows.as_slice() {
                            [only]
                                if index == 0
                                    && ["*get()", "[contained value]", "value"]
                                        .contains(&only.name.as_str()) =>
                            {
                                Some(only)
                            }
                            _ => None,
                        })
                        .with_context(|| format!("{} has no element {key}", entry.name))?;
                    (row.ty, row.place.clone())
                }
                _ => bail!("{} is neither a pointer nor an array", entry.name),
            },
        };
        // A library sequence's element place already includes the index.
        let step = if matches!(
            stripped.kind,
            TypeKind::Pointer { .. } | TypeKind::Array { .. }
        ) {
            index
        } else {
            0
        };
        let element = element.context("cannot dereference a void pointer")?;
        let size = symbols
            .resolve_type(element)
            .size
            .context("the element size is unknown")?;
        let offset = (step as u64).wrapping_mul(size);
        let place = match base {
            Place::Memory(a) => Place::Memory(a.wrapping_add(offset)),
            Place::Bytes(b) | Place::Register(_, b) => Place::Bytes(
                b.get(offset as usize..(offset + size) as usize)
                    .context("index out of range")?
                    .to_vec(),
            ),
            Place::Unavailable(why) => bail!("<{why}>"),
        };
        Ok(Evaluated::Entry(VarEntry {
            name: format!("{}[{index}]", entry.name),
            ty: Some(element),
            place,
            size,
            frame: entry.frame,
            raw_text: None,
            expression: None,
        }))
    }

    pub async fn evaluate_to_value(&mut self, frame: usize, text: &str) -> Result<VarNode> {
        let parsed = expr::parse(text)?;
        match self.eval(frame, &parsed).await? {
            Evaluated::Entry(e) => Ok(VarNode::Value {
                frame,
                name: e.name,
                expression: Some(text.to_string()),
                ty: e.ty,
                place: e.place,
            }),
            Evaluated::Int(_) => bail!("{text} is not a variable"),
        }
    }

    /// A breakpoint condition in the top frame: true when non-zero.
    pub async fn evaluate_truth(&mut self, text: &str) -> Result<bool> {
        let parsed = expr::parse(text)?;
        let value = self.eval(0, &parsed).await?;
        Ok(!self.scalar(value).await?.is_zero())
    }

    /// An expression's value in the top frame, as `evaluate` shows it.
    pub async fn evaluate_text(&mut self, text: &str) -> Result<String> {
        Ok(self.evaluate(0, text, false).await?.result(false))
    }

    /// An expression in a frame: a number it computed, an address, or a
    /// value of the program's (shown in hex when `hex`).
    pub async fn evaluate(&mut self, frame: usize, text: &str, hex: bool) -> Result<Evaluation> {
        let parsed = expr::parse(text)?;
        Ok(match self.eval(frame, &parsed).await? {
            Evaluated::Int(n) if parsed.is_computed() => Evaluation::Number(n),
            Evaluated::Int(n) => Evaluation::Address(n as u64),
            Evaluated::Entry(entry) => {
                let entry = VarEntry {
                    name: text.to_string(),
                    expression: Some(text.to_string()),
                    ..entry
                };
                Evaluation::Value(self.describe(entry, hex).await?)
            }
        })
    }
}

/// A row as the user sees it.
#[derive(Clone, Debug)]
pub struct Shown {
    pub name: String,
    pub value: String,
    /// The type's name; None for rows that are no typed value (registers).
    pub type_name: Option<String>,
    /// The handle on its children; 0 when it has none.
    pub reference: i64,
    /// How many children an indexed sequence has (listed a page at a time).
    pub indexed: Option<u64>,
    /// Where it is, when it is in memory.
    pub address: Option<u64>,
    /// An expression `evaluate` takes for it.
    pub expression: Option<String>,
}

/// What an expression evaluated to.
pub enum Evaluation {
    /// A number it computed (`a + 1`, `x == 2`).
    Number(i64),
    /// A plain number or an address (`0x1000`, `&x`): a memory reference.
    Address(u64),
    /// A value of the program's.
    Value(Shown),
}

impl Evaluation {
    /// The result as text: a computed number in decimal (hex when `hex`),
    /// an address in hex, a value as [`Debugger::describe`] showed it.
    pub fn result(&self, hex: bool) -> String {
        match self {
            Evaluation::Number(n) if hex => format!("{:#x}", *n as u64),
            Evaluation::Number(n) => n.to_string(),
            Evaluation::Address(a) => format!("{a:#x}"),
            Evaluation::Value(v) => v.value.clone(),
        }
    }
}

/// What `set_variable` set.
pub enum SetValue {
    /// A register of the innermost frame, to this value.
    Register(u64),
    /// A value in memory or a register; the row as it is now.
    Value(VarEntry),
}

pub enum Evaluated {
    Entry(VarEntry),
    Int(i64),
}

/// A value as arithmetic and comparisons see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Int(i64),
    Float(f64),
}

impl Scalar {
    pub fn is_zero(self) -> bool {
        match self {
            Scalar::Int(n) => n == 0,
            Scalar::Float(f) => f == 0.0,
        }
    }
}

/// `l op r` as C computes it on 64-bit integers (wrapping), comparisons
/// giving 1 or 0; floating-point values can be compared only.
pub fn binary(op: BinaryOp, l: Scalar, r: Scalar) -> Result<i64> {
    use BinaryOp::*;
    if let (Scalar::Int(a), Scalar::Int(b)) = (l, r) {
        return Ok(match op {
            Mul => a.wrapping_mul(b),
            Div | Rem if b == 0 => bail!("division by zero"),
            Div => a.wrapping_div(b),
            Rem => a.wrapping_rem(b),
            Add => a.wrapping_add(b),
            Sub => a.wrapping_sub(b),
            _ => compare(op, a, b, 0).expect("every other operator compares"),
        });
    }
    let float = |s: Scalar| match s {
        Scalar::Int(n) => n as f64,
        Scalar::Float(f) => f,
    };
    compare(op, float(l), float(r), 0.0).with_context(|| {
        "arithmetic on floating-point values is not supported; compare them instead"
    })
}

/// A comparison or logical operator on two values, as C's 1 or 0; None
/// for an arithmetic operator.
fn compare<T: PartialOrd>(op: BinaryOp, a: T, b: T, zero: T) -> Option<i64> {
    use BinaryOp::*;
    let truth = match op {
        Lt => a < b,
        Le => a <= b,
        Gt => a > b,
        Ge => a >= b,
        Eq => a == b,
        Ne => a != b,
        And => a != zero && b != zero,
        Or => a != zero || b != zero,
        Mul | Div | Rem | Add | Sub => return None,
    };
    Some(i64::from(truth))
}

/// C's spellings of the integer types as DWARF names them (`unsigned
/// long` is `long unsigned int`); other names are DWARF's already.
fn dwarf_type_name(c_name: &str) -> String {
    let (base, stars) = match c_name.find('*') {
        Some(i) => (c_name[..i].trim(), &c_name[i..]),
        None => (c_name.trim(), ""),
    };
    let base = match base {
        "unsigned" | "unsigned int" => "unsigned int",
        "signed" | "signed int" | "int" => "int",
        "long" | "long int" | "signed long" => "long int",
        "unsigned long" | "unsigned long int" => "long unsigned int",
        "long long" | "long long int" | "signed long long" => "long long int",
        "unsigned long long" | "unsigned long long int" => "long long unsigned int",
        "short" | "short int" | "signed short" => "short int",
        "unsigned short" | "unsigned short int" => "short unsigned int",
        other => other,
    };
    if stars.is_empty() {
        base.to_string()
    } else {
        format!("{base} {stars}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_arithmetic_on_64_bit_integers() {
        use BinaryOp::*;
        assert_eq!(
            binary(Add, Scalar::Int(i64::MAX), Scalar::Int(1)).unwrap(),
            i64::MIN
        );
        // C truncates towards zero.
        assert_eq!(binary(Div, Scalar::Int(-7), Scalar::Int(2)).unwrap(), -3);
        assert_eq!(binary(Rem, Scalar::Int(-7), Scalar::Int(2)).unwrap(), -1);
        assert!(binary(Div, Scalar::Int(1), Scalar::Int(0)).is_err());
        assert_eq!(binary(Lt, Scalar::Float(0.5), Scalar::Int(1)).unwrap(), 1);
        assert_eq!(binary(And, Scalar::Int(2), Scalar::Int(0)).unwrap(), 0);
        assert!(binary(Add, Scalar::Float(0.5), Scalar::Int(1)).is_err());
    }

    #[test]
    fn c_type_names_as_dwarf_spells_them() {
        assert_eq!(dwarf_type_name("unsigned long *"), "long unsigned int *");
        assert_eq!(dwarf_type_name("short"), "short int");
        assert_eq!(dwarf_type_name("struct node"), "struct node");
    }
}
