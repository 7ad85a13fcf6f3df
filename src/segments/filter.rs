//! The segment filter language: text in, a syntax tree or an error at a column out.
//!
//! ```text
//! filter     = or
//! or         = and ("OR" and)*
//! and        = not ("AND" not)*
//! not        = "NOT" not | primary
//! primary    = "(" or ")" | "segment" "(" string ")" | path tail
//! tail       = op value | "IN" "[" value ("," value)* "]" | "CONTAINS" value | "EXISTS"
//! op         = "=" | "!=" | "<" | "<=" | ">" | ">="
//! value      = string | number | "true" | "false" | "null"
//! path       = name ("." name)*
//! ```
//!
//! Keywords are case-insensitive; `NOT` binds tighter than `AND`, `AND` than `OR`.
//! Hand-written recursive descent rather than a parser crate: the grammar is a dozen
//! lines, and what matters is the error a marketer reads ("expected a value after `>=`
//! at column 23"), which a hand-written parser states exactly where it knows what it
//! expected. Columns count characters from 1. Pure: typing the paths against a schema
//! and evaluating come after.

use std::fmt;

/// The longest filter accepted, in bytes.
pub const MAX_LEN: usize = 8192;

/// The deepest nesting of parentheses and `NOT` accepted.
pub const MAX_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A quoted string (a date or datetime when compared with such a path).
    Str(String),
    /// A number.
    Num(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`: no value.
    Null,
}

/// A dotted path into the profile document, and the column it starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// Its names: `stats.receipts_count` is `["stats", "receipts_count"]`.
    pub names: Vec<String>,
    /// The column of its first character.
    pub column: usize,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names.join("."))
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Any of them.
    Or(Vec<Expr>),
    /// All of them.
    And(Vec<Expr>),
    /// Not it.
    Not(Box<Expr>),
    /// `path op value`.
    Compare(Path, Op, Literal),
    /// `path IN [values]`.
    In(Path, Vec<Literal>),
    /// `path CONTAINS value` (tags, arrays).
    Contains(Path, Literal),
    /// `path EXISTS`: the path has a value.
    Exists(Path),
    /// `segment("name")`: the members of a saved segment; and the column it starts at.
    Segment(String, usize),
}

/// Why a filter is not one, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct FilterError {
    /// The column (characters from 1) where the problem is.
    pub column: usize,
    /// What was expected or wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Num(f64),
    Op(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("`{n}`"),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Num(n) => format!("the number {n}"),
            Tok::Op(op) => format!("`{}`", op.as_str()),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::End => "the end of the filter".into(),
        }
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self, Tok::Name(n) if n.eq_ignore_ascii_case(k))
    }
}

/// Splits a filter into tokens, each with its column.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| FilterError { column, message };
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            '=' => Some(Tok::Op(Op::Eq)),
            _ => None,
        };
        if let Some(t) = single {
            out.push((t, col));
            i += 1;
            continue;
        }
        match c {
            '!' | '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('!', true) => Op::Ne,
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    ('>', true) => Op::Ge,
                    ('>', false) => Op::Gt,
                    _ => {
                        return Err(err(
                            col,
                            "`!` must be followed by `=` (`!=`); use NOT to negate".into(),
                        ));
                    }
                };
                out.push((Tok::Op(op), col));
                i += if eq { 2 } else { 1 };
            }
            '"' => {
                let (s, next) = string(&chars, i)?;
                out.push((Tok::Str(s), col));
                i = next;
            }
            '\'' => {
                return Err(err(
                    col,
                    "strings are written in double quotes (\"Lisbon\")".into(),
                ));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | '-' | '+'))
                {
                    // A sign inside a number only right after an exponent mark.
                    if matches!(chars[i], '-' | '+') && !matches!(chars[i - 1], 'e' | 'E') {
                        break;
                    }
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let n: f64 = word.parse().ok().filter(|n: &f64| n.is_finite()).ok_or_else(|| {
                    err(col, format!("`{word}` is not a number (a date is written in quotes: \"2024-03-01\")"))
                })?;
                out.push((Tok::Num(n), col));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push((Tok::Name(word), col));
            }
            other => {
                return Err(err(col, format!("unexpected character `{other}`")));
            }
        }
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// A JSON-style string starting at `chars[at]` (a `"`): its text and the index after it.
fn string(chars: &[char], at: usize) -> Result<(String, usize), FilterError> {
    let mut s = String::new();
    let mut i = at + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(FilterError {
                column: at + 1,
                message: "this string has no closing `\"`".into(),
            });
        };
        match c {
            '"' => return Ok((s, i + 1)),
            '\\' => {
                let esc = chars.get(i + 1).copied();
                let bad = || {
                    FilterError {
                    column: i + 1,
                    message: "unknown escape in a string: use \\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX"
                        .into(),
                }
                };
                match esc {
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some('/') => s.push('/'),
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    // JSON's other two: a printed filter escapes these characters so.
                    Some('b') => s.push('\u{8}'),
                    Some('f') => s.push('\u{c}'),
                    Some('u') => {
                        let hex: String = chars.get(i + 2..i + 6).ok_or_else(bad)?.iter().collect();
                        let code = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
                        s.push(char::from_u32(code).ok_or_else(bad)?);
                        i += 4;
                    }
                    _ => return Err(bad()),
                }
                i += 2;
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }

    fn column(&self) -> usize {
        self.toks[self.at].1
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn fail<T>(&self, message: String) -> Result<T, FilterError> {
        Err(FilterError {
            column: self.column(),
            message,
        })
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(format!("the filter nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut all = vec![self.and()?];
        while self.peek().keyword("OR") {
            self.next();
            all.push(self.and()?);
        }
        Ok(if all.len() == 1 {
            all.pop().unwrap()
        } else {
            Expr::Or(all)
        })
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut all = vec![self.not()?];
        while self.peek().keyword("AND") {
            self.next();
            all.push(self.not()?);
        }
        Ok(if all.len() == 1 {
            all.pop().unwrap()
        } else {
            Expr::And(all)
        })
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.peek().keyword("NOT") {
            self.next();
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        match self.peek().clone() {
            Tok::LParen => {
                self.next();
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                if *self.peek() != Tok::RParen {
                    return self.fail(format!(
                        "expected `)` to close the parenthesis, found {}",
                        self.peek().describe()
                    ));
                }
                self.next();
                Ok(inner)
            }
            Tok::Name(n)
                if n.eq_ignore_ascii_case("segment") && self.toks[self.at + 1].0 == Tok::LParen =>
            {
                let column = self.column();
                self.next();
                self.next();
                let Tok::Str(name) = self.peek().clone() else {
                    return self.fail(format!(
                        "expected a segment name in quotes after `segment(`, found {}",
                        self.peek().describe()
                    ));
                };
                self.next();
                if *self.peek() != Tok::RParen {
                    return self.fail(format!(
                        "expected `)` after the segment name, found {}",
                        self.peek().describe()
                    ));
                }
                self.next();
                Ok(Expr::Segment(name, column))
            }
            Tok::Name(n)
                if ["AND", "OR", "IN", "CONTAINS", "EXISTS"]
                    .iter()
                    .any(|k| n.eq_ignore_ascii_case(k)) =>
            {
                self.fail(format!("expected a field or path before `{n}`"))
            }
            Tok::Name(n) => {
                let column = self.column();
                let names: Vec<String> = n.split('.').map(str::to_owned).collect();
                if names.iter().any(String::is_empty) {
                    return self.fail(format!(
                        "`{n}` is not a path: a dot must stand between two names"
                    ));
                }
                self.next();
                self.tail(Path { names, column })
            }
            other => self.fail(format!(
                "expected a field, a path, `NOT` or `(`, found {}",
                other.describe()
            )),
        }
    }

    fn tail(&mut self, path: Path) -> Result<Expr, FilterError> {
        let t = self.peek().clone();
        match t {
            Tok::Op(op) => {
                self.next();
                let value = self.value(&format!("after `{}`", op.as_str()))?;
                Ok(Expr::Compare(path, op, value))
            }
            t if t.keyword("IN") => {
                self.next();
                if *self.peek() != Tok::LBracket {
                    return self.fail(format!("expected `[` after `IN`, found {}", self.peek().describe()));
                }
                self.next();
                let mut values = vec![self.value("in the list")?];
                loop {
                    match self.peek() {
                        Tok::Comma => {
                            self.next();
                            values.push(self.value("after `,`")?);
                        }
                        Tok::RBracket => {
                            self.next();
                            return Ok(Expr::In(path, values));
                        }
                        other => {
                            return self.fail(format!("expected `,` or `]` in the list, found {}", other.describe()));
                        }
                    }
                }
            }
            t if t.keyword("CONTAINS") => {
                self.next();
                let value = self.value("after `CONTAINS`")?;
                Ok(Expr::Contains(path, value))
            }
            t if t.keyword("EXISTS") => {
                self.next();
                Ok(Expr::Exists(path))
            }
            other => self.fail(format!(
                "expected a comparison (`=`, `!=`, `<`, `<=`, `>`, `>=`), `IN`, `CONTAINS` or `EXISTS` after `{path}`, found {}",
                other.describe()
            )),
        }
    }

    fn value(&mut self, after: &str) -> Result<Literal, FilterError> {
        let v = match self.peek().clone() {
            Tok::Str(s) => Literal::Str(s),
            Tok::Num(n) => Literal::Num(n),
            Tok::Name(n) if n.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Name(n) if n.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Name(n) if n.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Name(n) => {
                return self.fail(format!(
                    "expected a value {after}, found `{n}` (text is written in double quotes: \"{n}\")"
                ));
            }
            other => {
                return self.fail(format!(
                    "expected a value {after}, found {}",
                    other.describe()
                ));
            }
        };
        self.next();
        Ok(v)
    }
}

/// Parses a filter.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    if text.len() > MAX_LEN {
        return Err(FilterError {
            column: 1,
            message: format!("the filter is {} bytes; at most {MAX_LEN}", text.len()),
        });
    }
    let mut p = Parser {
        toks: lex(text)?,
        at: 0,
        depth: 0,
    };
    if *p.peek() == Tok::End {
        return p.fail("the filter is empty".into());
    }
    let e = p.or()?;
    if *p.peek() != Tok::End {
        return p.fail(format!(
            "expected `AND`, `OR` or the end of the filter, found {}",
            p.peek().describe()
        ));
    }
    Ok(e)
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Literal::Num(n) => write!(f, "{n:?}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for Expr {
    /// The filter written back, fully parenthesized: parsing it gives the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, all: &[Expr], sep: &str| {
            f.write_str("(")?;
            for (i, e) in all.iter().enumerate() {
                if i > 0 {
                    write!(f, " {sep} ")?;
                }
                write!(f, "{e}")?;
            }
            f.write_str(")")
        };
        match self {
            Expr::Or(all) => join(f, all, "OR"),
            Expr::And(all) => join(f, all, "AND"),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Compare(p, op, v) => write!(f, "{p} {} {v}", op.as_str()),
            Expr::In(p, vs) => {
                write!(f, "{p} IN [")?;
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Expr::Contains(p, v) => write!(f, "{p} CONTAINS {v}"),
            Expr::Exists(p) => write!(f, "{p} EXISTS"),
            Expr::Segment(name, _) => {
                write!(f, "segment({})", serde_json::Value::String(name.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn path(p: &str, column: usize) -> Path {
        Path {
            names: p.split('.').map(str::to_owned).collect(),
            column,
        }
    }

    #[test]
    fn the_example_of_the_api_parses() {
        let e = parse(
            r#"city = "Lisbon" AND rfm.segment IN ["champions","loyal"] AND tags CONTAINS "vip""#,
        )
        .unwrap();
        assert_eq!(
            e,
            Expr::And(vec![
                Expr::Compare(path("city", 1), Op::Eq, Literal::Str("Lisbon".into())),
                Expr::In(
                    path("rfm.segment", 21),
                    vec![
                        Literal::Str("champions".into()),
                        Literal::Str("loyal".into())
                    ]
                ),
                Expr::Contains(path("tags", 62), Literal::Str("vip".into())),
            ])
        );
    }

    #[test]
    fn not_binds_tighter_than_and_and_and_than_or() {
        let e = parse("a = 1 OR NOT b = 2 AND c EXISTS").unwrap();
        assert_eq!(e.to_string(), "(a = 1.0 OR (NOT b = 2.0 AND c EXISTS))");
        let e = parse("not (a = 1 or b != -2.5e3) and channels.sms.eligible = TRUE").unwrap();
        assert_eq!(
            e.to_string(),
            "(NOT (a = 1.0 OR b != -2500.0) AND channels.sms.eligible = true)"
        );
        assert_eq!(
            parse(r#"segment("big spenders")"#).unwrap(),
            Expr::Segment("big spenders".into(), 1)
        );
    }

    #[test]
    fn every_escape_json_prints_is_read() {
        // The fuzzer found a printed filter with `\f` that did not parse back.
        assert_eq!(
            parse(r#"a = "\b\f\n\r\t\/\"\\\u00e9""#).unwrap(),
            Expr::Compare(
                path("a", 1),
                Op::Eq,
                Literal::Str("\u{8}\u{c}\n\r\t/\"\\é".into())
            )
        );
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        let cases = [
            (
                "stats.receipts_count >= ",
                25,
                "expected a value after `>=`",
            ),
            ("city = Lisbon", 8, "text is written in double quotes"),
            ("city = 'Lisbon'", 8, "double quotes"),
            ("(a = 1", 7, "expected `)`"),
            ("a = 1 b = 2", 7, "expected `AND`, `OR`"),
            ("a IN [1, 2", 11, "expected `,` or `]`"),
            ("a IN 1", 6, "expected `[` after `IN`"),
            ("a ! 1", 3, "`!` must be followed by `=`"),
            ("AND a = 1", 1, "expected a field or path before `AND`"),
            ("a", 2, "expected a comparison"),
            ("", 1, "empty"),
            ("a = \"open", 5, "no closing"),
            ("a = 1.2.3", 5, "is not a number"),
            ("a..b = 1", 1, "a dot must stand between two names"),
            ("a = \"\\x\"", 6, "unknown escape"),
            ("a = 1 §", 7, "unexpected character `§`"),
        ];
        for (text, column, says) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.column, column, "{text:?}: {e}");
            assert!(e.message.contains(says), "{text:?}: {e}");
        }
        let deep = format!("{}a = 1{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        assert!(
            parse(&"a = 1 OR ".repeat(2000))
                .unwrap_err()
                .message
                .contains("bytes")
        );
    }

    fn literal() -> impl Strategy<Value = Literal> {
        prop_oneof![
            // Control characters too: JSON prints some as `\b`, `\f` (the fuzzer's find).
            "[a-zA-Z0-9 \"\\\\é\u{0}-\u{1f}-]{0,8}".prop_map(Literal::Str),
            (-1.0e6f64..1.0e6).prop_map(Literal::Num),
            any::<bool>().prop_map(Literal::Bool),
            Just(Literal::Null),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        const KEYWORDS: &[&str] = &[
            "and", "or", "not", "in", "contains", "exists", "true", "false", "null", "segment",
        ];
        let p = "[a-z][a-z0-9_]{0,6}(\\.[a-z0-9_]{1,6}){0,2}"
            .prop_filter("a keyword is not a path", |s| {
                !KEYWORDS.contains(&s.split('.').next().unwrap_or(""))
            })
            .prop_map(|s| path(&s, 0));
        let op = prop_oneof![
            Just(Op::Eq),
            Just(Op::Ne),
            Just(Op::Lt),
            Just(Op::Le),
            Just(Op::Gt),
            Just(Op::Ge)
        ];
        let leaf = prop_oneof![
            (p.clone(), op, literal()).prop_map(|(p, o, v)| Expr::Compare(p, o, v)),
            (p.clone(), proptest::collection::vec(literal(), 1..4))
                .prop_map(|(p, v)| Expr::In(p, v)),
            (p.clone(), literal()).prop_map(|(p, v)| Expr::Contains(p, v)),
            p.prop_map(Expr::Exists),
            "[a-z ]{1,8}".prop_map(|s| Expr::Segment(s, 0)),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    /// Columns aside (the printed text places things elsewhere).
    fn strip(e: &Expr) -> Expr {
        let p = |p: &Path| Path {
            names: p.names.clone(),
            column: 0,
        };
        match e {
            Expr::Or(all) => Expr::Or(all.iter().map(strip).collect()),
            Expr::And(all) => Expr::And(all.iter().map(strip).collect()),
            Expr::Not(e) => Expr::Not(Box::new(strip(e))),
            Expr::Compare(a, o, v) => Expr::Compare(p(a), *o, v.clone()),
            Expr::In(a, v) => Expr::In(p(a), v.clone()),
            Expr::Contains(a, v) => Expr::Contains(p(a), v.clone()),
            Expr::Exists(a) => Expr::Exists(p(a)),
            Expr::Segment(s, _) => Expr::Segment(s.clone(), 0),
        }
    }

    proptest! {
        #[test]
        fn a_printed_filter_parses_back_to_itself(e in expr()) {
            let text = e.to_string();
            let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
            prop_assert_eq!(strip(&back), e, "{}", text);
        }

        #[test]
        fn any_text_parses_or_fails_with_a_column_inside_it(text in "\\PC{0,60}") {
            if let Err(e) = parse(&text) {
                prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1);
            }
        }
    }
}
