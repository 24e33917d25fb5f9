//! The rule modules, one per Python module of services/migration/domain, and the handler
//! table (`sql_analysis.HANDLERS`): parse-node type -> handler.

use crate::analysis::StatementReport;
use crate::nodes::Node;

pub mod column_rules;
pub mod constraint_rules;
pub mod data_rules;
pub mod index_rules;
pub mod object_rules;
pub mod session_rules;
pub mod table_rules;

/// What of a statement the handlers read (`sql_analysis.WANTED`): None for a statement no
/// handler takes (its tree is never decoded), `Some(&[])` for the whole node, else the
/// top-level fields read (a view's query, an INSERT's rows, a function's body are skipped).
pub fn wanted(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "InsertStmt" => Some(&["relation", "cols"]),
        "ViewStmt" => Some(&["view", "aliases"]),
        "CreateFunctionStmt" => Some(&["is_procedure", "replace", "funcname"]),
        "IndexStmt"
        | "ReindexStmt"
        | "CreateDomainStmt"
        | "AlterDomainStmt"
        | "CreateStmt"
        | "CreateTableAsStmt"
        | "LockStmt"
        | "AlterTableStmt"
        | "DropStmt"
        | "DropdbStmt"
        | "RenameStmt"
        | "AlterObjectSchemaStmt"
        | "CreateEnumStmt"
        | "CompositeTypeStmt"
        | "CreateRangeStmt"
        | "CreateSchemaStmt"
        | "CreateSeqStmt"
        | "AlterEnumStmt"
        | "CreateTrigStmt"
        | "RefreshMatViewStmt"
        | "CreatedbStmt"
        | "AlterSystemStmt"
        | "TruncateStmt"
        | "DeleteStmt"
        | "UpdateStmt"
        | "VacuumStmt"
        | "ClusterStmt"
        | "TransactionStmt"
        | "VariableSetStmt"
        | "SelectStmt" => Some(&[]),
        _ => None,
    }
}

/// Run the handler for a statement of parse-node type `kind`, if there is one.
pub fn dispatch(kind: &str, node: &Node, report: &mut StatementReport) {
    match kind {
        "IndexStmt" => index_rules::create_index(node, report),
        "ReindexStmt" => index_rules::reindex(node, report),
        "CreateDomainStmt" => constraint_rules::create_domain(node, report),
        "AlterDomainStmt" => constraint_rules::alter_domain(node, report),
        "CreateStmt" => table_rules::create_table(node, report),
        "CreateTableAsStmt" => table_rules::create_table_as(node, report),
        "LockStmt" => table_rules::lock_table(node, report),
        "AlterTableStmt" => table_rules::alter_table(node, report),
        "DropStmt" => object_rules::drop(node, report),
        "DropdbStmt" => object_rules::drop_database(node, report),
        "RenameStmt" => object_rules::rename(node, report),
        "AlterObjectSchemaStmt" => object_rules::set_schema(node, report),
        "ViewStmt" => object_rules::create_view(node, report),
        "CreateFunctionStmt" => object_rules::create_function(node, report),
        "CreateEnumStmt" => object_rules::create_enum(node, report),
        "CompositeTypeStmt" | "CreateRangeStmt" => object_rules::create_type(node, report),
        "CreateSchemaStmt" => object_rules::create_schema(node, report),
        "CreateSeqStmt" => object_rules::create_sequence(node, report),
        "AlterEnumStmt" => object_rules::alter_enum(node, report),
        "CreateTrigStmt" => object_rules::create_trigger(node, report),
        "RefreshMatViewStmt" => object_rules::refresh_view(node, report),
        "CreatedbStmt" | "AlterSystemStmt" => object_rules::cluster_wide(node, report),
        "TruncateStmt" => data_rules::truncate(node, report),
        "DeleteStmt" => data_rules::delete(node, report),
        "UpdateStmt" => data_rules::update(node, report),
        "VacuumStmt" => data_rules::vacuum(node, report),
        "ClusterStmt" => data_rules::cluster(node, report),
        "InsertStmt" => data_rules::insert(node, report),
        "TransactionStmt" => session_rules::transaction(node, report),
        "VariableSetStmt" => session_rules::variable_set(node, report),
        "SelectStmt" => session_rules::select(node, report),
        _ => {}
    }
}
