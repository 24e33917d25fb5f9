//! Column types as the parser names them, and what changing one type into another costs
//! (`column_types.py`).
//!
//! PostgreSQL rewrites a table on `ALTER COLUMN ... TYPE` unless the old type converts to the
//! new one without touching the stored bytes (a binary-coercible cast and a typmod that only
//! widens). A narrowing change scans every row and fails or, for numbers and timestamps,
//! silently rounds.

use std::fmt;

use crate::nodes::{children, integer, strings, Node};

/// `_ALIASES`: the parser's spellings of a type -> the catalog name.
fn alias(base: &str) -> Option<&'static str> {
    Some(match base {
        "int" | "integer" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "serial4" => "serial",
        "serial8" => "bigserial",
        "serial2" => "smallserial",
        "float" | "double precision" => "float8",
        "real" => "float4",
        "decimal" => "numeric",
        "bool" | "boolean" => "bool",
        "timestamp with time zone" => "timestamptz",
        "timestamp without time zone" => "timestamp",
        _ => return None,
    })
}

pub const SERIAL_TYPES: [&str; 3] = ["serial", "bigserial", "smallserial"];

/// `_INTEGER_WIDTH`: bytes of an integer type.
fn integer_width_of(name: &str) -> Option<i64> {
    Some(match name {
        "int2" | "smallserial" => 2,
        "int4" | "serial" => 4,
        "int8" | "bigserial" => 8,
        _ => return None,
    })
}

/// `_TEXTUAL`.
fn textual(name: &str) -> bool {
    matches!(name, "text" | "varchar")
}

/// `_FIXED_LAYOUT`: (typlen, typalign in bytes) of PostgreSQL's fixed-width built-in types.
fn fixed_layout(name: &str) -> Option<(i64, i64)> {
    Some(match name {
        "bool" => (1, 1),
        "int2" | "smallserial" => (2, 2),
        "int4" | "serial" | "date" | "float4" | "oid" => (4, 4),
        "macaddr" => (6, 4),
        "int8" | "bigserial" | "float8" | "timestamp" | "timestamptz" | "time" | "money" => (8, 8),
        "macaddr8" => (8, 4),
        "timetz" => (12, 8),
        "interval" | "point" => (16, 8),
        "uuid" => (16, 1),
        _ => return None,
    })
}

/// A column type: its base name without `pg_catalog`, its modifiers, array-ness.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeRef {
    pub name: String,
    pub modifiers: Vec<i64>,
    pub array: bool,
}

impl TypeRef {
    /// `TypeRef.from_node`: the type a `TypeName` node names.
    pub fn from_node(type_name: &Node) -> TypeRef {
        let parts: Vec<String> = strings(children(type_name, "names"))
            .into_iter()
            .filter(|p| p != "pg_catalog")
            .collect();
        let base = if parts.is_empty() {
            "?".to_string()
        } else {
            parts.join(".").to_lowercase()
        };
        let modifiers: Vec<i64> = children(type_name, "typmods")
            .iter()
            .filter_map(integer)
            .collect();
        let name = alias(&base).map_or(base, str::to_string);
        TypeRef {
            name,
            modifiers,
            array: !children(type_name, "arrayBounds").is_empty(),
        }
    }

    /// `integer_width`: bytes of a (non-array) integer type.
    pub fn integer_width(&self) -> Option<i64> {
        if self.array {
            None
        } else {
            integer_width_of(&self.name)
        }
    }

    /// (bytes, alignment) of a fixed-width value; None for a variable-width one.
    pub fn layout(&self) -> Option<(i64, i64)> {
        if self.array {
            None
        } else {
            fixed_layout(&self.name)
        }
    }
}

impl fmt::Display for TypeRef {
    /// `TypeRef.__str__`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = match self.name.as_str() {
            "int4" => "integer",
            "int8" => "bigint",
            "int2" => "smallint",
            "bpchar" => "char",
            other => other,
        };
        f.write_str(shown)?;
        if !self.modifiers.is_empty() {
            f.write_str("(")?;
            for (i, m) in self.modifiers.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{m}")?;
            }
            f.write_str(")")?;
        }
        if self.array {
            f.write_str("[]")?;
        }
        Ok(())
    }
}

/// Bytes of alignment padding in a row whose columns have `types` in this order.
pub fn row_padding(types: &[TypeRef]) -> i64 {
    let mut offset = 0i64;
    let mut padding = 0i64;
    for kind in types {
        let Some((size, align)) = kind.layout() else {
            offset += 2;
            continue;
        };
        // Python's `-offset % align` is never negative.
        let pad = (-offset).rem_euclid(align);
        padding += pad;
        offset += pad + size;
    }
    padding
}

/// The column order with the least padding: fixed-width columns by alignment, widest first,
/// then the variable-width ones (each group in its written order).
pub fn aligned_order(types: &[TypeRef]) -> Vec<usize> {
    let rank = |position: usize| -> (i64, usize) {
        match types[position].layout() {
            Some((_, align)) => (-align, position),
            None => (1, position),
        }
    };
    let mut order: Vec<usize> = (0..types.len()).collect();
    order.sort_by_key(|&p| rank(p));
    order
}

/// What an `ALTER COLUMN ... TYPE` does to the stored rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeChange {
    NoRewrite,
    Rewrite,
    Narrowing,
    UnknownOldType,
}

/// `classify_type_change(old, new, *, using)`.
pub fn classify_type_change(old: Option<&TypeRef>, new: &TypeRef, using: bool) -> TypeChange {
    let Some(old) = old else {
        return TypeChange::UnknownOldType;
    };
    if old == new && !using {
        return TypeChange::NoRewrite;
    }
    if old.array != new.array {
        return TypeChange::Rewrite;
    }
    if narrows(old, new) {
        return TypeChange::Narrowing;
    }
    if using {
        return TypeChange::Rewrite;
    }
    if binary_compatible_widening(old, new) {
        return TypeChange::NoRewrite;
    }
    TypeChange::Rewrite
}

/// `_limit`: the first modifier.
fn limit(t: &TypeRef) -> Option<i64> {
    t.modifiers.first().copied()
}

/// `_narrows`: whether the new type cannot hold every old value.
fn narrows(old: &TypeRef, new: &TypeRef) -> bool {
    let (old_width, new_width) = (old.integer_width(), new.integer_width());
    // Widths are never 0, so Python's truthiness is `is not None`.
    if let (Some(old_width), Some(new_width)) = (old_width, new_width) {
        return new_width < old_width;
    }
    if let Some(old_width) = old_width {
        if new.name == "numeric" {
            let digits = match old_width {
                2 => 5,
                4 => 10,
                _ => 19,
            };
            return !new.modifiers.is_empty() && new.modifiers[0] - scale(new) < digits;
        }
    }
    if old.name == "numeric" && new_width.is_some() {
        return true; // rounds the fraction away
    }
    if (textual(&old.name) || old.name == "bpchar")
        && matches!(new.name.as_str(), "varchar" | "bpchar")
    {
        let (new_limit, old_limit) = (limit(new), limit(old));
        return match (new_limit, old_limit) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(n), Some(o)) => n < o,
        };
    }
    if old.name == "numeric" && new.name == "numeric" && !new.modifiers.is_empty() {
        if old.modifiers.is_empty() {
            return true;
        }
        return new.modifiers[0] < old.modifiers[0] || scale(new) < scale(old);
    }
    if old.name == new.name
        && matches!(
            old.name.as_str(),
            "timestamp" | "timestamptz" | "time" | "interval"
        )
    {
        return !new.modifiers.is_empty()
            && (old.modifiers.is_empty() || new.modifiers[0] < old.modifiers[0]);
    }
    if old.name == "float8" && new.name == "float4" {
        return true;
    }
    matches!(old.name.as_str(), "timestamp" | "timestamptz") && new.name == "date"
}

/// `_scale`: the second modifier, 0 when absent.
fn scale(t: &TypeRef) -> i64 {
    t.modifiers.get(1).copied().unwrap_or(0)
}

/// `_binary_compatible_widening`: a change PostgreSQL makes without touching the rows.
fn binary_compatible_widening(old: &TypeRef, new: &TypeRef) -> bool {
    if textual(&old.name) && new.name == "text" {
        return true;
    }
    if textual(&old.name) && new.name == "varchar" {
        let (new_limit, old_limit) = (limit(new), limit(old));
        return match (new_limit, old_limit) {
            (None, _) => true,
            (Some(n), Some(o)) => n >= o,
            (Some(_), None) => false,
        };
    }
    if old.name == new.name && matches!(old.name.as_str(), "numeric" | "varbit" | "bit varying") {
        if new.modifiers.is_empty() {
            return true;
        }
        return !old.modifiers.is_empty()
            && new.modifiers[0] >= old.modifiers[0]
            && scale(new) == scale(old);
    }
    if old.name == new.name
        && matches!(
            old.name.as_str(),
            "timestamp" | "timestamptz" | "time" | "interval"
        )
    {
        return new.modifiers.is_empty()
            || (!old.modifiers.is_empty() && new.modifiers[0] >= old.modifiers[0]);
    }
    old.name == "cidr" && new.name == "inet"
}

/// With the old type unknown: targets that a text/varchar/numeric column reaches free.
pub fn probably_no_rewrite(new: &TypeRef) -> bool {
    !new.array
        && (new.name == "text"
            || (matches!(new.name.as_str(), "varchar" | "numeric") && new.modifiers.is_empty()))
}
