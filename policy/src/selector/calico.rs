//! Parser for Calico's selector language.
//!
//! Grammar (Calico's `projectcalico.org/v3` selectors):
//!
//! ```text
//! expr    := and ('||' and)*
//! and     := unary ('&&' unary)*
//! unary   := '!' unary | primary
//! primary := '(' expr ')' | 'all()' | 'global()' | 'has(' key ')'
//!          | key ('==' | '!=') string
//!          | key 'in' set | key 'not' 'in' set
//!          | key 'contains' string | key 'starts' 'with' string | key 'ends' 'with' string
//! set     := '{' [string (',' string)*] '}'
//! string  := '…' | "…"
//! ```
//!
//! An empty selector means `all()`. Errors name the 1-based column and what was expected.

use std::collections::BTreeSet;

use super::{Selector, SelectorError};

/// Parses a Calico selector expression.
pub fn parse_calico_selector(text: &str) -> Result<Selector, SelectorError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
    };
    if parser.peek().kind == Tok::Eof {
        return Ok(Selector::All);
    }
    let expr = parser.or()?;
    let next = parser.peek();
    if next.kind != Tok::Eof {
        return Err(parser.error(next.column, "expected && or || or the end of the selector"));
    }
    Ok(expr)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Not,
    And,
    Or,
    EqEq,
    NotEq,
    Word(String),
    Str(String),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    column: usize,
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn tokenize(text: &str) -> Result<Vec<Token>, SelectorError> {
    let chars: Vec<char> = text.chars().collect();
    let err = |column: usize, message: String| SelectorError {
        selector: text.to_owned(),
        column,
        message,
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let two = chars.get(i + 1).copied();
        let (kind, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '{' => (Tok::LBrace, 1),
            '}' => (Tok::RBrace, 1),
            ',' => (Tok::Comma, 1),
            '&' if two == Some('&') => (Tok::And, 2),
            '|' if two == Some('|') => (Tok::Or, 2),
            '=' if two == Some('=') => (Tok::EqEq, 2),
            '!' if two == Some('=') => (Tok::NotEq, 2),
            '!' => (Tok::Not, 1),
            '\'' | '"' => {
                let end = chars[i + 1..].iter().position(|&x| x == c).ok_or_else(|| {
                    err(column, format!("unterminated string (missing closing {c})"))
                })?;
                let value: String = chars[i + 1..i + 1 + end].iter().collect();
                (Tok::Str(value), end + 2)
            }
            c if is_key_char(c) => {
                let len = chars[i..].iter().take_while(|&&x| is_key_char(x)).count();
                (Tok::Word(chars[i..i + len].iter().collect()), len)
            }
            '&' | '|' | '=' => {
                return Err(err(
                    column,
                    format!("unexpected {c:?} (did you mean {c}{c}?)"),
                ));
            }
            other => return Err(err(column, format!("unexpected character {other:?}"))),
        };
        out.push(Token { kind, column });
        i += len;
    }
    out.push(Token {
        kind: Tok::Eof,
        column: chars.len() + 1,
    });
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        self.tokens[self.pos.min(self.tokens.len() - 1)].clone()
    }

    fn peek_at(&self, offset: usize) -> Tok {
        self.tokens[(self.pos + offset).min(self.tokens.len() - 1)]
            .kind
            .clone()
    }

    fn bump(&mut self) -> Token {
        let t = self.peek();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error(&self, column: usize, message: &str) -> SelectorError {
        SelectorError {
            selector: self.text.to_owned(),
            column,
            message: message.to_owned(),
        }
    }

    fn expect(&mut self, kind: Tok, what: &str) -> Result<(), SelectorError> {
        let t = self.bump();
        if t.kind == kind {
            Ok(())
        } else {
            Err(self.error(t.column, &format!("expected {what}")))
        }
    }

    fn or(&mut self) -> Result<Selector, SelectorError> {
        let mut parts = vec![self.and()?];
        while self.peek().kind == Tok::Or {
            self.bump();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Selector::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Selector, SelectorError> {
        let mut parts = vec![self.unary()?];
        while self.peek().kind == Tok::And {
            self.bump();
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Selector::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Selector, SelectorError> {
        if self.peek().kind == Tok::Not {
            self.bump();
            return Ok(Selector::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Selector, SelectorError> {
        let t = self.bump();
        match t.kind {
            Tok::LParen => {
                let inner = self.or()?;
                self.expect(Tok::RParen, "a closing parenthesis")?;
                Ok(inner)
            }
            Tok::Word(word) if self.peek().kind == Tok::LParen => {
                self.bump();
                match word.as_str() {
                    "all" | "global" => {
                        self.expect(Tok::RParen, &format!("{word}() to have no arguments"))?;
                        Ok(if word == "all" {
                            Selector::All
                        } else {
                            Selector::Global
                        })
                    }
                    "has" => {
                        let key = self.key("a label key inside has()")?;
                        self.expect(Tok::RParen, "a closing parenthesis after has(key")?;
                        Ok(Selector::Has(key))
                    }
                    other => Err(self.error(
                        t.column,
                        &format!(
                            "unknown function {other}() (expected all(), global() or has(key))"
                        ),
                    )),
                }
            }
            Tok::Word(key) => self.comparison(key),
            _ => Err(self.error(
                t.column,
                "expected a label key, has(key), all(), !, or a parenthesised expression",
            )),
        }
    }

    fn key(&mut self, what: &str) -> Result<String, SelectorError> {
        let t = self.bump();
        match t.kind {
            Tok::Word(k) => Ok(k),
            _ => Err(self.error(t.column, &format!("expected {what}"))),
        }
    }

    fn string(&mut self, after: &str) -> Result<String, SelectorError> {
        let t = self.bump();
        match t.kind {
            Tok::Str(s) => Ok(s),
            Tok::Word(w) => Err(self.error(
                t.column,
                &format!("expected a quoted string after {after} (write '{w}')"),
            )),
            _ => Err(self.error(t.column, &format!("expected a quoted string after {after}"))),
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        self.expect(Tok::LBrace, "{ to open the value set")?;
        let mut values = BTreeSet::new();
        if self.peek().kind == Tok::RBrace {
            self.bump();
            return Ok(values);
        }
        loop {
            values.insert(self.string("{ or ,")?);
            let t = self.bump();
            match t.kind {
                Tok::Comma => continue,
                Tok::RBrace => return Ok(values),
                _ => return Err(self.error(t.column, "expected , or } in the value set")),
            }
        }
    }

    fn comparison(&mut self, key: String) -> Result<Selector, SelectorError> {
        let op = self.bump();
        let word = |w: &str| Tok::Word(w.to_owned());
        match op.kind {
            Tok::EqEq => Ok(Selector::Eq(key, self.string("==")?)),
            Tok::NotEq => Ok(Selector::Ne(key, self.string("!=")?)),
            Tok::Word(w) => match w.as_str() {
                "in" => Ok(Selector::In(key, self.set()?)),
                "not" if self.peek_at(0) == word("in") => {
                    self.bump();
                    Ok(Selector::NotIn(key, self.set()?))
                }
                "contains" => Ok(Selector::Contains(key, self.string("contains")?)),
                "starts" | "ends" if self.peek_at(0) == word("with") => {
                    self.bump();
                    let s = self.string(&format!("{w} with"))?;
                    Ok(if w == "starts" {
                        Selector::StartsWith(key, s)
                    } else {
                        Selector::EndsWith(key, s)
                    })
                }
                _ => Err(self.operator_error(&key, op.column)),
            },
            _ => Err(self.operator_error(&key, op.column)),
        }
    }

    fn operator_error(&self, key: &str, column: usize) -> SelectorError {
        self.error(
            column,
            &format!(
                "expected an operator after {key:?} (==, !=, in, not in, contains, starts with, ends with)"
            ),
        )
    }
}
