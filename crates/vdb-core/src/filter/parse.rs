//! The text form of filters:
//!
//! ```text
//! filter := or
//! or     := and ("or" and)*
//! and    := unary ("and" unary)*
//! unary  := "not" unary | "(" filter ")" | "true" | "false" | cond
//! cond   := NAME op value | NAME ["not"] "in" list | NAME "contains" STRING
//!         | "id" ("=" | "!=") INT | "id" ["not"] "in" list
//! op     := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//! list   := "[" [value ("," value)*] "]"      (or parentheses)
//! value  := 'string' | "string" | INT | FLOAT | true | false
//! ```
//!
//! Words are case-insensitive; strings take `\'`, `\"` and `\\`.

use super::{CmpOp, Filter};
use crate::fields::{FieldError, Value};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Int(i64),
    /// An integer above `i64::MAX` (only an id can be one).
    Big(u64),
    Float(f64),
    Punct(&'static str),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("{n:?}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Int(n) => format!("{n}"),
            Tok::Big(n) => format!("{n}"),
            Tok::Float(x) => format!("{x}"),
            Tok::Punct(p) => format!("'{p}'"),
            Tok::End => "the end".into(),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self, Tok::Name(n) if n.eq_ignore_ascii_case(w))
    }
}

fn fail(at: usize, reason: impl std::fmt::Display) -> FieldError {
    FieldError::new("filter", format!("at {at}: {reason}"))
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, FieldError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Name(text[start..i].to_string())));
        } else if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' {
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == b'.'
                    || ((b[i] == b'-' || b[i] == b'+') && matches!(b[i - 1], b'e' | b'E')))
            {
                i += 1;
            }
            let s = &text[start..i];
            let tok = if let Ok(n) = s.parse::<i64>() {
                Tok::Int(n)
            } else if let Ok(n) = s.parse::<u64>() {
                Tok::Big(n)
            } else {
                match s.parse::<f64>() {
                    Ok(x) if x.is_finite() => Tok::Float(x),
                    _ => return Err(fail(start, format!("{s:?} is not a number"))),
                }
            };
            out.push((start, tok));
        } else if c == b'\'' || c == b'"' {
            let mut s = String::new();
            let mut chars = text[i + 1..].char_indices();
            let mut closed = None;
            while let Some((j, ch)) = chars.next() {
                if ch == c as char {
                    closed = Some(i + 1 + j + 1);
                    break;
                }
                if ch == '\\' {
                    match chars.next() {
                        Some((_, e @ ('\'' | '"' | '\\'))) => s.push(e),
                        Some((k, e)) => {
                            return Err(fail(i + 1 + k, format!("unknown escape \\{e}")));
                        }
                        None => break,
                    }
                } else {
                    s.push(ch);
                }
            }
            i = closed.ok_or_else(|| fail(start, "the string is not closed"))?;
            out.push((start, Tok::Str(s)));
        } else {
            let two = text.get(i..i + 2).unwrap_or("");
            let p: &'static str = match two {
                "==" => "=",
                "!=" | "<>" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                _ => match c {
                    b'=' => "=",
                    b'<' => "<",
                    b'>' => ">",
                    b'(' => "(",
                    b')' => ")",
                    b'[' => "[",
                    b']' => "]",
                    b',' => ",",
                    _ => {
                        let ch = text[i..].chars().next().unwrap_or('?');
                        return Err(fail(i, format!("unexpected {ch:?}")));
                    }
                },
            };
            i += if matches!(two, "==" | "!=" | "<>" | "<=" | ">=") {
                2
            } else {
                1
            };
            out.push((start, Tok::Punct(p)));
        }
    }
    out.push((text.len(), Tok::End));
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    depth: usize,
}

pub(super) fn parse(text: &str) -> Result<Filter, FieldError> {
    let mut p = Parser {
        toks: lex(text)?,
        at: 0,
        depth: 0,
    };
    if p.peek() == &Tok::End {
        return Err(fail(0, "the filter is empty"));
    }
    let f = p.or()?;
    match p.peek() {
        Tok::End => Ok(f),
        t => Err(fail(
            p.pos(),
            format!("expected 'and', 'or' or the end, found {}", t.describe()),
        )),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.at).map_or(&Tok::End, |(_, t)| t)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(0, |(p, _)| *p)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.at += 1;
        t
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.peek().is_word(w) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str, what: &str) -> Result<(), FieldError> {
        if self.peek() == &Tok::Punct(leak(p)) {
            self.at += 1;
            Ok(())
        } else {
            Err(fail(
                self.pos(),
                format!("expected {what}, found {}", self.peek().describe()),
            ))
        }
    }

    fn or(&mut self) -> Result<Filter, FieldError> {
        let mut v = vec![self.and()?];
        while self.eat_word("or") {
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Filter::Or(v)
        })
    }

    fn and(&mut self) -> Result<Filter, FieldError> {
        let mut v = vec![self.unary()?];
        while self.eat_word("and") {
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Filter::And(v)
        })
    }

    fn unary(&mut self) -> Result<Filter, FieldError> {
        self.depth += 1;
        if self.depth > super::MAX_DEPTH {
            return Err(fail(
                self.pos(),
                format!("nested deeper than {}", super::MAX_DEPTH),
            ));
        }
        let f = if self.eat_word("true") {
            Filter::And(Vec::new())
        } else if self.eat_word("false") {
            Filter::Or(Vec::new())
        } else if self.eat_word("not") {
            Filter::Not(Box::new(self.unary()?))
        } else if self.peek() == &Tok::Punct("(") {
            self.at += 1;
            let f = self.or()?;
            self.expect(")", "')'")?;
            f
        } else {
            self.cond()?
        };
        self.depth -= 1;
        Ok(f)
    }

    fn cond(&mut self) -> Result<Filter, FieldError> {
        let at = self.pos();
        let field = match self.next() {
            Tok::Name(n) if !is_keyword(&n) => n,
            t => {
                return Err(fail(
                    at,
                    format!("expected a field name, found {}", t.describe()),
                ));
            }
        };
        let is_id = field.eq_ignore_ascii_case("id");
        let negated_in = self.peek().is_word("not");
        if negated_in {
            self.at += 1;
            if !self.peek().is_word("in") {
                return Err(fail(self.pos(), "expected 'in' after 'not'"));
            }
        }
        if self.eat_word("in") {
            let f = if is_id {
                Filter::Ids(self.list(Self::id)?)
            } else {
                Filter::In {
                    field,
                    values: self.list(Self::value)?,
                }
            };
            return Ok(if negated_in {
                Filter::Not(Box::new(f))
            } else {
                f
            });
        }
        if self.eat_word("contains") {
            let at = self.pos();
            return match self.value()? {
                Value::Keyword(value) if !is_id => Ok(Filter::Contains { field, value }),
                v => Err(fail(at, format!("contains takes a string, found {v}"))),
            };
        }
        let at = self.pos();
        let op = match self.next() {
            Tok::Punct("=") => CmpOp::Eq,
            Tok::Punct("!=") => CmpOp::Ne,
            Tok::Punct("<") => CmpOp::Lt,
            Tok::Punct("<=") => CmpOp::Le,
            Tok::Punct(">") => CmpOp::Gt,
            Tok::Punct(">=") => CmpOp::Ge,
            t => {
                return Err(fail(
                    at,
                    format!(
                        "expected a comparison, 'in' or 'contains' after {field:?}, found {}",
                        t.describe()
                    ),
                ));
            }
        };
        if is_id {
            let id = vec![self.id()?];
            return match op {
                CmpOp::Eq => Ok(Filter::Ids(id)),
                CmpOp::Ne => Ok(Filter::Not(Box::new(Filter::Ids(id)))),
                _ => Err(fail(at, "id compares with = , != and in only")),
            };
        }
        let value = self.value()?;
        Ok(Filter::Compare { field, op, value })
    }

    fn id(&mut self) -> Result<u64, FieldError> {
        let at = self.pos();
        match self.next() {
            Tok::Int(n) if n >= 0 => Ok(n as u64),
            Tok::Big(n) => Ok(n),
            t => Err(fail(
                at,
                format!("an id is a non-negative integer, found {}", t.describe()),
            )),
        }
    }

    fn value(&mut self) -> Result<Value, FieldError> {
        let at = self.pos();
        Ok(match self.next() {
            Tok::Str(s) => Value::Keyword(s),
            Tok::Int(n) => Value::Int(n),
            Tok::Float(x) => Value::Float(x),
            Tok::Big(n) => {
                return Err(fail(at, format!("{n} is above the largest int (2^63 - 1)")));
            }
            Tok::Name(n) if n.eq_ignore_ascii_case("true") => Value::Bool(true),
            Tok::Name(n) if n.eq_ignore_ascii_case("false") => Value::Bool(false),
            t => {
                let hint = if matches!(t, Tok::Name(_)) {
                    " (quote strings: 'like this')"
                } else {
                    ""
                };
                return Err(fail(
                    at,
                    format!("expected a value, found {}{hint}", t.describe()),
                ));
            }
        })
    }

    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, FieldError>,
    ) -> Result<Vec<T>, FieldError> {
        let close = match self.next() {
            Tok::Punct("[") => "]",
            Tok::Punct("(") => ")",
            t => {
                return Err(fail(
                    self.toks.get(self.at - 1).map_or(0, |(p, _)| *p),
                    format!("expected '[' after 'in', found {}", t.describe()),
                ));
            }
        };
        let mut out = Vec::new();
        if self.peek() == &Tok::Punct(leak(close)) {
            self.at += 1;
            return Ok(out);
        }
        loop {
            if out.len() >= super::MAX_SET {
                return Err(fail(
                    self.pos(),
                    format!("a list of over {} values", super::MAX_SET),
                ));
            }
            out.push(item(self)?);
            match self.next() {
                Tok::Punct(",") => {}
                Tok::Punct(p) if p == close => return Ok(out),
                t => {
                    return Err(fail(
                        self.toks.get(self.at - 1).map_or(0, |(p, _)| *p),
                        format!("expected ',' or '{close}', found {}", t.describe()),
                    ));
                }
            }
        }
    }
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "not", "in", "contains", "true", "false"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(w))
}

fn leak(p: &str) -> &'static str {
    match p {
        ")" => ")",
        "]" => "]",
        "(" => "(",
        "[" => "[",
        "," => ",",
        _ => "",
    }
}
