//! How volatile a column default is (`default_values.py`), which decides whether
//! ADD COLUMN rewrites the table.

use crate::nodes::Value;

use crate::nodes::{children, flag, scalar_text, strings, unwrap_value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Volatility {
    Constant = 0,
    Stable = 1,
    Volatile = 2,
}

/// `_VOLATILE`.
const VOLATILE: [&str; 20] = [
    "random",
    "random_normal",
    "setseed",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "currval",
    "lastval",
    "setval",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "gen_random_bytes",
    "gen_salt",
    "txid_current",
    "pg_current_xact_id",
    "pg_backend_pid",
];
/// `_STABLE`.
const STABLE: [&str; 17] = [
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_setting",
    "to_char",
    "to_timestamp",
    "to_date",
    "concat",
    "concat_ws",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "json_build_array",
    "current_database",
    "current_schema",
    "date_trunc",
    "age",
];
/// `_IMMUTABLE`.
const IMMUTABLE: [&str; 37] = [
    "lower",
    "upper",
    "length",
    "char_length",
    "md5",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "replace",
    "substr",
    "substring",
    "abs",
    "round",
    "floor",
    "ceil",
    "timezone",
    "make_interval",
    "make_date",
    "make_timestamp",
    "make_timestamptz",
    "array_fill",
    "to_jsonb",
    "to_json",
    "jsonb_typeof",
    "array_length",
    "left",
    "right",
    "format",
    "uuid_nil",
    "int4",
    "int8",
    "numeric",
    "text",
    "encode",
    "decode",
    "sha256",
];

/// How volatile an expression is, and the function that makes it so (if any).
pub fn volatility(expression: &Value) -> (Volatility, Option<String>) {
    let (kind, node) = unwrap_value(expression);
    if kind == "FuncCall" {
        let name = strings(children(node, "funcname"))
            .pop()
            .unwrap_or_else(|| "?".to_string())
            .to_lowercase();
        let own = if VOLATILE.contains(&name.as_str()) {
            Volatility::Volatile
        } else if STABLE.contains(&name.as_str()) {
            Volatility::Stable
        } else if IMMUTABLE.contains(&name.as_str()) {
            Volatility::Constant
        } else {
            Volatility::Volatile
        };
        let mut worst = (
            own,
            if own != Volatility::Constant {
                Some(name)
            } else {
                None
            },
        );
        for argument in children(node, "args") {
            let found = volatility(argument);
            if found.0 > worst.0 {
                worst = found;
            }
        }
        return worst;
    }
    if kind == "SQLValueFunction" {
        let op = scalar_text(node.get("op"), "");
        let op = op.strip_prefix("SVFOP_").unwrap_or(&op).to_lowercase();
        return (Volatility::Stable, Some(op));
    }
    if kind == "SubLink" {
        return (Volatility::Volatile, Some("a subquery".to_string()));
    }
    // Any other node: the worst of its child nodes, in the tree's key order (first on ties).
    let mut worst = (Volatility::Constant, None);
    for value in node.values() {
        let items: &[Value] = match value {
            Value::Array(items) => items.as_slice(),
            other => std::slice::from_ref(other),
        };
        for item in items {
            if item.is_object() {
                let found = volatility(item);
                if found.0 > worst.0 {
                    worst = found;
                }
            }
        }
    }
    worst
}

/// Whether the expression is the constant NULL.
pub fn is_null_constant(expression: &Value) -> bool {
    let (kind, node) = unwrap_value(expression);
    kind == "A_Const" && flag(node, "isnull")
}
