//! The expressions `evaluate` accepts (watch, hover, the debug console,
//! breakpoint conditions and logpoints): names, `$registers`, numbers,
//! `a.b`, `a->b`, `*a`, `&a`, `a[i]`, parentheses, casts to a type the
//! DWARF has (`(struct task_struct *)p`, `(unsigned long)x`,
//! `((struct file *)0xffff…)->f_path`: container_of by hand), and C's arithmetic
//! (`+ - * / %`), comparisons (`== != < <= > >=`) and logic (`&& || !`)
//! with C's precedence. This file parses; the DAP layer evaluates against
//! a frame.

use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Name(String),
    Register(String),
    Number(i64),
    /// A string literal: a map's key (`m["k"]`).
    Str(String),
    Deref(Box<Expr>),
    AddressOf(Box<Expr>),
    Member(Box<Expr>, String),
    Arrow(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    /// `-a` on a value (on a literal it is folded into `Number`).
    Negate(Box<Expr>),
    /// `!a`: 1 when a is zero, else 0.
    Not(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `(type)a`: the type as C writes it, spaces normalized
    /// (`struct file *`).
    Cast(String, Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Mul,
    Div,
    Rem,
    Add,
    Sub,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl Expr {
    /// Whether the value is computed (a number that is no variable):
    /// shown in decimal rather than as an address.
    pub fn is_computed(&self) -> bool {
        matches!(self, Expr::Negate(_) | Expr::Not(_) | Expr::Binary(..))
    }
}

/// Binary operators from the loosest binding to the tightest, as in C.
const LEVELS: &[&[(&str, BinaryOp)]] = &[
    &[("||", BinaryOp::Or)],
    &[("&&", BinaryOp::And)],
    &[("==", BinaryOp::Eq), ("!=", BinaryOp::Ne)],
    &[
        ("<=", BinaryOp::Le),
        (">=", BinaryOp::Ge),
        ("<", BinaryOp::Lt),
        (">", BinaryOp::Gt),
    ],
    &[("+", BinaryOp::Add), ("-", BinaryOp::Sub)],
    &[
        ("*", BinaryOp::Mul),
        ("/", BinaryOp::Div),
        ("%", BinaryOp::Rem),
    ],
];

pub fn parse(text: &str) -> Result<Expr> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let expr = parser.binary(0)?;
    parser.skip_space();
    if parser.pos < parser.chars.len() {
        if parser.chars[parser.pos] == '=' && parser.chars.get(parser.pos + 1) != Some(&'=') {
            bail!(
                "`=` at column {} of {text:?} would assign; use `==` to compare",
                parser.pos + 1
            );
        }
        bail!(
            "unexpected {:?} at column {} of {text:?}",
            parser.chars[parser.pos],
            parser.pos + 1
        );
    }
    Ok(expr)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn skip_space(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_space();
        let n = s.chars().count();
        if self
            .chars
            .get(self.pos..self.pos + n)
            .is_some_and(|w| w.iter().copied().eq(s.chars()))
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<String> {
        self.skip_space();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            self.pos += 1;
        }
        if start == self.pos {
            bail!("expected a name at column {}", start + 1);
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    /// Operators of `LEVELS[level]` and tighter, left to right.
    fn binary(&mut self, level: usize) -> Result<Expr> {
        let Some(ops) = LEVELS.get(level) else {
            return self.unary();
        };
        let mut left = self.binary(level + 1)?;
        'more: loop {
            for (token, op) in ops.iter() {
                if self.at_operator(token) {
                    self.pos += token.len();
                    let right = self.binary(level + 1)?;
                    left = Expr::Binary(*op, Box::new(left), Box::new(right));
                    continue 'more;
                }
            }
            return Ok(left);
        }
    }

    /// Whether the binary operator `token` comes next (and not a longer
    /// one that starts like it: `<` is not `<=`, `&&` not `&`).
    fn at_operator(&mut self, token: &str) -> bool {
        self.skip_space();
        let n = token.chars().count();
        let matches = self
            .chars
            .get(self.pos..self.pos + n)
            .is_some_and(|w| w.iter().copied().eq(token.chars()));
        if !matches {
            return false;
        }
        let next = self.chars.get(self.pos + n).copied();
        match token {
            "<" | ">" => next != Some('='),
            "-" => next != Some('>'),
            _ => true,
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        if let Some(ty) = self.cast_type() {
            return Ok(Expr::Cast(ty, Box::new(self.unary()?)));
        }
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("*") {
            return Ok(Expr::Deref(Box::new(self.unary()?)));
        }
        if self.eat("&") {
            return Ok(Expr::AddressOf(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return match self.unary()? {
                Expr::Number(n) => Ok(Expr::Number(n.wrapping_neg())),
                other => Ok(Expr::Negate(Box::new(other))),
            };
        }
        self.postfix()
    }

    /// `(type)` ahead: consumed, and the type's name. A parenthesized
    /// name is taken as a type when C's grammar says it must be one: a
    /// `struct`/`union`/`enum`, C's own type words, a name with `*`, or a
    /// lone name followed by an operand (`(u64)x`, not `(x) - 1`).
    fn cast_type(&mut self) -> Option<String> {
        const C_TYPE_WORDS: &[&str] = &[
            "unsigned", "signed", "char", "short", "int", "long", "float", "double", "_Bool",
            "void", "const", "volatile",
        ];
        self.skip_space();
        if self.chars.get(self.pos) != Some(&'(') {
            return None;
        }
        let mut pos = self.pos + 1;
        let mut words: Vec<String> = Vec::new();
        let mut stars = 0;
        loop {
            while self.chars.get(pos).is_some_and(|c| c.is_whitespace()) {
                pos += 1;
            }
            match self.chars.get(pos) {
                Some(')') => break,
                Some('*') => {
                    stars += 1;
                    pos += 1;
                }
                Some(c) if (c.is_alphabetic() || *c == '_') && stars == 0 => {
                    let start = pos;
                    while self
                        .chars
                        .get(pos)
                        .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                    {
                        pos += 1;
                    }
                    words.push(self.chars[start..pos].iter().collect());
                }
                _ => return None,
            }
        }
        let after = pos + 1;
        let is_type = match words.first().map(String::as_str) {
            None => false,
            Some("struct" | "union" | "enum") => words.len() == 2,
            Some(_) if words.iter().all(|w| C_TYPE_WORDS.contains(&w.as_str())) => true,
            Some(_) if words.len() == 1 && stars > 0 => true,
            Some(_) if words.len() == 1 => {
                let mut next = after;
                while self.chars.get(next).is_some_and(|c| c.is_whitespace()) {
                    next += 1;
                }
                self.chars
                    .get(next)
                    .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '(' | '$'))
            }
            Some(_) => false,
        };
        if !is_type {
            return None;
        }
        self.pos = after;
        let mut name = words.join(" ");
        if stars > 0 {
            name.push(' ');
            name.push_str(&"*".repeat(stars));
        }
        Some(name)
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut expr = self.primary()?;
        loop {
            if self.eat("->") {
                expr = Expr::Arrow(Box::new(expr), self.ident()?);
            } else if self.eat(".") {
                expr = Expr::Member(Box::new(expr), self.ident()?);
            } else if self.eat("[") {
                let index = self.binary(0)?;
                if !self.eat("]") {
                    bail!("missing `]`");
                }
                expr = Expr::Index(Box::new(expr), Box::new(index));
            } else if self.peek() == Some('(') {
                let function = match &expr {
                    Expr::Name(n) | Expr::Member(_, n) | Expr::Arrow(_, n) => n.as_str(),
                    _ => "the value",
                };
                bail!("`{function}(…)` needs a function call, and evaluate does not run code in the target; read the value's members instead");
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let e = self.binary(0)?;
                if !self.eat(")") {
                    bail!("missing `)`");
                }
                Ok(e)
            }
            Some('$') => {
                self.pos += 1;
                Ok(Expr::Register(self.ident()?.to_ascii_lowercase()))
            }
            Some('"') => {
                self.pos += 1;
                let mut text = String::new();
                loop {
                    match self.chars.get(self.pos).copied() {
                        None => bail!("missing closing `\"`"),
                        Some('"') => break,
                        Some('\\') => {
                            self.pos += 1;
                            text.push(match self.chars.get(self.pos).copied() {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some(c) => c,
                                None => bail!("missing closing `\"`"),
                            });
                        }
                        Some(c) => text.push(c),
                    }
                    self.pos += 1;
                }
                self.pos += 1;
                Ok(Expr::Str(text))
            }
            Some(c) if c.is_ascii_digit() => {
                let word = self.ident()?;
                let n = super::types::parse_int(&word)
                    .with_context(|| format!("{word:?} is not a number"))?;
                Ok(Expr::Number(n))
            }
            Some(_) => Ok(Expr::Name(self.ident()?)),
            None if self.chars.iter().all(|c| c.is_whitespace()) => bail!("empty expression"),
            None => bail!("unexpected end of expression"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_keys() {
        assert_eq!(
            parse(r#"m["a\"b"]"#).unwrap(),
            Expr::Index(
                Box::new(Expr::Name("m".into())),
                Box::new(Expr::Str("a\"b".into()))
            )
        );
    }

    #[test]
    fn parses_casts() {
        let cast = |ty: &str, e: Expr| Expr::Cast(ty.into(), Box::new(e));
        assert_eq!(
            parse("(struct task_struct *)ptr").unwrap(),
            cast("struct task_struct *", Expr::Name("ptr".into()))
        );
        assert_eq!(
            parse("((struct file*)0xffff888000000000)->f_path").unwrap(),
            Expr::Arrow(
                Box::new(cast(
                    "struct file *",
                    Expr::Number(0xffff888000000000u64 as i64)
                )),
                "f_path".into()
            )
        );
        assert_eq!(
            parse("(unsigned long)&init_task").unwrap(),
            cast(
                "unsigned long",
                Expr::AddressOf(Box::new(Expr::Name("init_task".into())))
            )
        );
        assert_eq!(
            parse("(u64)x + 1").unwrap(),
            Expr::Binary(
                BinaryOp::Add,
                Box::new(cast("u64", Expr::Name("x".into()))),
                Box::new(Expr::Number(1))
            )
        );
        // A parenthesized name before an operator is a value, not a type.
        assert_eq!(
            parse("(x) - 1").unwrap(),
            Expr::Binary(
                BinaryOp::Sub,
                Box::new(Expr::Name("x".into())),
                Box::new(Expr::Number(1))
            )
        );
        assert_eq!(
            parse("(a * b)").unwrap(),
            Expr::Binary(
                BinaryOp::Mul,
                Box::new(Expr::Name("a".into())),
                Box::new(Expr::Name("b".into()))
            )
        );
    }

    #[test]
    fn function_calls_say_so() {
        let e = parse("v.len()").unwrap_err().to_string();
        assert!(e.contains("`len(…)` needs a function call"), "{e}");
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse("shape.sides[2]").unwrap(),
            Expr::Index(
                Box::new(Expr::Member(
                    Box::new(Expr::Name("shape".into())),
                    "sides".into()
                )),
                Box::new(Expr::Number(2))
            )
        );
        assert_eq!(
            parse("*pt").unwrap(),
            Expr::Deref(Box::new(Expr::Name("pt".into())))
        );
        assert_eq!(parse("$RIP").unwrap(), Expr::Register("rip".into()));
        assert_eq!(
            parse("s->corner.x").unwrap(),
            Expr::Member(
                Box::new(Expr::Arrow(
                    Box::new(Expr::Name("s".into())),
                    "corner".into()
                )),
                "x".into()
            )
        );
        assert_eq!(parse("0x10").unwrap(), Expr::Number(16));
        assert!(parse("a[").is_err());
        assert!(parse("").is_err());
        assert!(parse("a b").is_err());
    }

    #[test]
    fn parses_conditions_with_c_precedence() {
        use BinaryOp::*;
        let name = |n: &str| Box::new(Expr::Name(n.into()));
        let num = |n: i64| Box::new(Expr::Number(n));
        assert_eq!(
            parse("i == 3").unwrap(),
            Expr::Binary(Eq, name("i"), num(3))
        );
        // a + b * 2 > 5 && !done || x->n <= -1
        assert_eq!(
            parse("a + b * 2 > 5 && !done || x->n <= -1").unwrap(),
            Expr::Binary(
                Or,
                Box::new(Expr::Binary(
                    And,
                    Box::new(Expr::Binary(
                        Gt,
                        Box::new(Expr::Binary(
                            Add,
                            name("a"),
                            Box::new(Expr::Binary(Mul, name("b"), num(2)))
                        )),
                        num(5)
                    )),
                    Box::new(Expr::Not(name("done")))
                )),
                Box::new(Expr::Binary(
                    Le,
                    Box::new(Expr::Arrow(name("x"), "n".into())),
                    num(-1)
                ))
            )
        );
        // Left to right within a level; *p as a dereference after an operator.
        assert_eq!(
            parse("a - b - *p").unwrap(),
            Expr::Binary(
                Sub,
                Box::new(Expr::Binary(Sub, name("a"), name("b"))),
                Box::new(Expr::Deref(name("p")))
            )
        );
        assert_eq!(
            parse("arr[i + 1] % 2 != 0").unwrap(),
            Expr::Binary(
                Ne,
                Box::new(Expr::Binary(
                    Rem,
                    Box::new(Expr::Index(
                        name("arr"),
                        Box::new(Expr::Binary(Add, name("i"), num(1)))
                    )),
                    num(2)
                )),
                num(0)
            )
        );
        assert_eq!(parse("-x").unwrap(), Expr::Negate(name("x")));
        let assign = parse("i = 3").unwrap_err().to_string();
        assert!(assign.contains("use `==`"), "{assign}");
        assert!(parse("i ==").is_err());
        assert!(parse("(a && b").is_err());
    }
}
