//! Reading PostgreSQL parse trees (libpg_query's JSON form): `sql_nodes.py`, the same helpers.
//!
//! A node is the inside of `{"IndexStmt": {...}}`: a JSON object whose keys keep libpg_query's
//! order. An absent field is false, zero or empty (protobuf defaults are left out).

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

pub use crate::tree::{Node, Value};

/// NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers.
pub const IDENTIFIER_MAX_BYTES: usize = 63;

pub fn empty() -> &'static Node {
    static EMPTY: OnceLock<Node> = OnceLock::new();
    EMPTY.get_or_init(Node::new)
}

/// `{"IndexStmt": {...}}` -> ("IndexStmt", {...}); anything else -> ("", {}).
pub fn unwrap(wrapped: Option<&Value>) -> (&str, &Node) {
    if let Some(Value::Object(map)) = wrapped {
        if map.len() == 1 {
            let (kind, inner) = map.iter().next().unwrap();
            if let Value::Object(inner) = inner {
                return (kind.as_str(), inner);
            }
        }
    }
    ("", empty())
}

/// `unwrap` of a value that is there.
pub fn unwrap_value(wrapped: &Value) -> (&str, &Node) {
    unwrap(Some(wrapped))
}

pub fn child<'a>(node: &'a Node, key: &str) -> &'a Node {
    match node.get(key) {
        Some(Value::Object(map)) => map,
        _ => empty(),
    }
}

pub fn children<'a>(node: &'a Node, key: &str) -> &'a [Value] {
    match node.get(key) {
        Some(Value::Array(items)) => items.as_slice(),
        _ => &[],
    }
}

pub fn text<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    match node.get(key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// `str(node.get(key, ""))` for a field that holds a string (an enum name, a `sval`).
pub fn text_or<'a>(node: &'a Node, key: &str, default: &'a str) -> &'a str {
    text(node, key).unwrap_or(default)
}

/// Python's truth value of a field (`if node.get(key):`): absent, null, false, 0, "", [] and
/// {} are false.
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
    }
}

/// An optional string as Python's `name or ...` sees it: None when absent or empty.
pub fn nonempty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

pub fn flag(node: &Node, key: &str) -> bool {
    matches!(node.get(key), Some(Value::Bool(true)))
}

/// Python's `str(node.get(key, default))` of a scalar field: strings as they are, numbers in
/// decimal, `True` / `False`, `None`. The rules call it on fields libpg_query writes as
/// scalars; a list or node there (never seen) reads as "".
pub fn scalar_text(value: Option<&Value>, default: &str) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => {
            if *b {
                "True".into()
            } else {
                "False".into()
            }
        }
        Some(Value::Null) => "None".into(),
        None => default.to_string(),
        Some(Value::Array(_) | Value::Object(_)) => String::new(),
    }
}

/// A list of `String` nodes (names, column lists) as strings.
pub fn strings(items: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for item in items {
        let (kind, inner) = unwrap_value(item);
        if kind == "String" {
            out.push(scalar_text(inner.get("sval"), ""));
        }
    }
    out
}

/// The value of an integer `A_Const` (`{"ival": {}}` is 0), else None.
pub fn integer(wrapped: &Value) -> Option<i64> {
    let (kind, inner) = unwrap_value(wrapped);
    if kind != "A_Const" || !inner.contains_key("ival") {
        return None;
    }
    match child(inner, "ival").get("ival") {
        None => Some(0),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
}

/// A constant's value as text (`'5s'`, `0`), else None.
pub fn constant_text(wrapped: &Value) -> Option<String> {
    let (kind, inner) = unwrap_value(wrapped);
    if kind != "A_Const" {
        return None;
    }
    if inner.contains_key("sval") {
        return Some(scalar_text(child(inner, "sval").get("sval"), ""));
    }
    if inner.contains_key("ival") {
        return Some(scalar_text(child(inner, "ival").get("ival"), "0"));
    }
    if inner.contains_key("fval") {
        return Some(scalar_text(child(inner, "fval").get("fval"), "0"));
    }
    if inner.contains_key("boolval") {
        return Some(
            if flag(child(inner, "boolval"), "boolval") {
                "true"
            } else {
                "false"
            }
            .into(),
        );
    }
    None
}

/// A possibly schema-qualified name, as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectName {
    pub name: String,
    pub schema: Option<String>,
}

impl ObjectName {
    pub fn new(name: impl Into<String>, schema: Option<String>) -> Self {
        ObjectName {
            name: name.into(),
            schema,
        }
    }

    /// How the change's state and the table statistics find it: `schema.name`.
    pub fn key(&self) -> String {
        format!(
            "{}.{}",
            self.schema
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("public"),
            self.name
        )
    }

    pub fn from_key(key: &str) -> Self {
        let (schema, name) = match key.split_once('.') {
            Some((schema, name)) => (schema, name),
            None => (key, ""),
        };
        ObjectName::new(
            name,
            if schema == "public" {
                None
            } else {
                Some(schema.to_string())
            },
        )
    }

    pub fn from_parts(parts: &[String]) -> Self {
        match parts.len() {
            0 => ObjectName::new("?", None),
            1 => ObjectName::new(parts[0].clone(), None),
            n => ObjectName::new(parts[n - 1].clone(), Some(parts[n - 2].clone())),
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) if !schema.is_empty() => write!(f, "{}.{}", schema, self.name),
            _ => f.write_str(&self.name),
        }
    }
}

/// The table a `RangeVar` field names.
pub fn relation(node: &Node, key: &str) -> Option<ObjectName> {
    let range_var = child(node, key);
    let name = text(range_var, "relname")?;
    Some(ObjectName::new(
        name,
        text(range_var, "schemaname").map(str::to_string),
    ))
}

/// The objects of a `DropStmt`: lists of names, `ObjectWithArgs`, or a bare `String`.
pub fn dropped_names(node: &Node) -> Vec<ObjectName> {
    let mut names = Vec::new();
    for item in children(node, "objects") {
        let (kind, inner) = unwrap_value(item);
        match kind {
            "List" => names.push(ObjectName::from_parts(&strings(children(inner, "items")))),
            "ObjectWithArgs" => {
                names.push(ObjectName::from_parts(&strings(children(inner, "objname"))))
            }
            "String" => names.push(ObjectName::new(scalar_text(inner.get("sval"), ""), None)),
            "TypeName" => names.push(ObjectName::from_parts(&strings(children(inner, "names")))),
            _ => {}
        }
    }
    names
}

pub fn too_long(identifier: Option<&str>) -> bool {
    identifier.is_some_and(|name| name.len() > IDENTIFIER_MAX_BYTES)
}

/// The option names of a `DefElem` list (`VACUUM (FULL)`, `REINDEX (CONCURRENTLY)`).
pub fn defelem_names(node: &Node, key: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for item in children(node, key) {
        let (kind, inner) = unwrap_value(item);
        if kind == "DefElem" {
            names.insert(scalar_text(inner.get("defname"), ""));
        }
    }
    names
}

pub use crate::pytext::{py_repr, py_repr_opt, py_str};
