//! The expressions `evaluate` accepts (watch, hover, the debug console):
//! names, `$registers`, numbers, `a.b`, `a->b`, `*a`, `&a`, `a[i]` and
//! parentheses. This file parses; the DAP layer evaluates against a frame.

use anyhow::{bail, Context, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Name(String),
    Register(String),
    Number(i64),
    Deref(Box<Expr>),
    AddressOf(Box<Expr>),
    Member(Box<Expr>, String),
    Arrow(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
}

pub fn parse(text: &str) -> Result<Expr> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let expr = parser.unary()?;
    parser.skip_space();
    if parser.pos < parser.chars.len() {
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

    fn unary(&mut self) -> Result<Expr> {
        if self.eat("*") {
            return Ok(Expr::Deref(Box::new(self.unary()?)));
        }
        if self.eat("&") {
            return Ok(Expr::AddressOf(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            return match self.postfix()? {
                Expr::Number(n) => Ok(Expr::Number(n.wrapping_neg())),
                _ => bail!("`-` applies to numbers only"),
            };
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut expr = self.primary()?;
        loop {
            if self.eat("->") {
                expr = Expr::Arrow(Box::new(expr), self.ident()?);
            } else if self.eat(".") {
                expr = Expr::Member(Box::new(expr), self.ident()?);
            } else if self.eat("[") {
                let index = self.unary()?;
                if !self.eat("]") {
                    bail!("missing `]`");
                }
                expr = Expr::Index(Box::new(expr), Box::new(index));
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let e = self.unary()?;
                if !self.eat(")") {
                    bail!("missing `)`");
                }
                Ok(e)
            }
            Some('$') => {
                self.pos += 1;
                Ok(Expr::Register(self.ident()?.to_ascii_lowercase()))
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
}
