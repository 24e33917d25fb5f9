//! Text the way Python treats it, where the analysis' output depends on it: `re`'s `\w` and
//! `\d`, `str.isspace`/`strip`, `repr()`, `float()`'s decimal digits (tables generated from
//! the project's Python: `pytext_tables.rs`).

use crate::pytext_tables::{DECIMAL_ZEROS, DIGIT, SPACE, UNPRINTABLE, WORD};

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let code = c as u32;
    table
        .binary_search_by(|&(low, high)| {
            if high < code {
                std::cmp::Ordering::Less
            } else if low > code {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `str.isspace()`, and `re`'s `\s` on a str.
pub fn is_space(c: char) -> bool {
    if c.is_ascii() {
        return matches!(c, '\t'..='\r' | '\x1c'..='\x1f' | ' ');
    }
    in_ranges(SPACE, c)
}

/// `re`'s `\w` on a str (`str.isalnum()` or `_`).
pub fn is_word(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    in_ranges(WORD, c)
}

/// `re`'s `\d` on a str (a Unicode decimal digit).
pub fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_ranges(DIGIT, c)
}

/// `str.strip()`.
pub fn strip(text: &str) -> &str {
    text.trim_matches(is_space)
}

/// The ASCII digit of a Unicode decimal digit, else None.
pub fn decimal_digit(c: char) -> Option<char> {
    let code = c as u32;
    DECIMAL_ZEROS
        .iter()
        .find(|&&zero| (zero..zero + 10).contains(&code))
        .and_then(|&zero| char::from_digit(code - zero, 10))
}

/// `repr()` of a string (`{name!r}` in the rules' messages): single quotes unless the text
/// holds a `'` and no `"`; backslash, the quote and what `str.isprintable()` rejects escaped.
pub fn py_repr(value: &str) -> String {
    let quote = if value.contains('\'') && !value.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(value.len() + 2);
    out.push(quote);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c != ' '
                && (c.is_ascii_control() || (!c.is_ascii() && in_ranges(UNPRINTABLE, c))) =>
            {
                let code = c as u32;
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `f"{x}"` of an optional value: `None` when absent.
pub fn py_str<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "None".to_string(), |v| v.to_string())
}

/// `repr()` of an optional string: `None` for None.
pub fn py_repr_opt(value: Option<&str>) -> String {
    value.map_or_else(|| "None".to_string(), py_repr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_escapes_what_python_escapes() {
        assert_eq!(py_repr("a\u{a0}b\u{200b}c"), "'a\\xa0b\\u200bc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("\u{e0001}é"), "'\\U000e0001é'");
        assert_eq!(py_repr("x\x7f"), "'x\\x7f'");
    }

    #[test]
    fn classes() {
        assert!(is_space('\x1c') && is_space('\u{3000}') && !is_space('\u{200b}'));
        assert!(is_word('é') && is_word('_') && !is_word('$'));
        assert!(is_digit('\u{665}') && !is_digit('x'));
        assert_eq!(decimal_digit('\u{665}'), Some('5'));
    }
}
