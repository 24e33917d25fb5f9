//! What the analysis knows at each statement (`change_state.py`): the schema so far, what this
//! change created, the open transaction, and the timeouts in effect.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::column_types::TypeRef;
use crate::findings::Finding;

/// An index's key columns in order (None: an expression).
pub type IndexKeys = Vec<Option<String>>;

#[derive(Default, Debug)]
pub struct SchemaKnowledge {
    /// table key -> column -> type, for tables whose definition the analysis has read.
    pub columns: HashMap<String, IndexMap<String, TypeRef>>,
    /// index key -> table key.
    pub index_tables: HashMap<String, String>,
    /// table key -> its indexes a foreign key's lookups can use -> their key columns.
    pub table_indexes: HashMap<String, IndexMap<String, IndexKeys>>,
}

impl SchemaKnowledge {
    pub fn column_type(&self, table: &str, column: &str) -> Option<&TypeRef> {
        self.columns
            .get(table)
            .and_then(|columns| columns.get(column))
    }

    pub fn add_index(&mut self, index: &str, table: &str, columns: IndexKeys) {
        self.forget_index(index);
        self.index_tables
            .insert(index.to_string(), table.to_string());
        if !columns.is_empty() {
            self.table_indexes
                .entry(table.to_string())
                .or_default()
                .insert(index.to_string(), columns);
        }
    }

    pub fn forget_index(&mut self, index: &str) {
        if let Some(table) = self.index_tables.remove(index) {
            if let Some(indexes) = self.table_indexes.get_mut(&table) {
                indexes.shift_remove(index);
            }
        }
    }

    /// Whether an index on `table` starts with `columns` (in any order).
    pub fn indexed(&self, table: &str, columns: &[String]) -> bool {
        let wanted: HashSet<Option<&str>> = columns.iter().map(|c| Some(c.as_str())).collect();
        let width = columns.len();
        self.table_indexes.get(table).is_some_and(|indexes| {
            indexes.values().any(|keys| {
                let head: HashSet<Option<&str>> =
                    keys.iter().take(width).map(|k| k.as_deref()).collect();
                head == wanted
            })
        })
    }

    pub fn rename_table(&mut self, old: &str, new: &str) {
        if let Some(columns) = self.columns.remove(old) {
            self.columns.insert(new.to_string(), columns);
        }
        if let Some(indexes) = self.table_indexes.remove(old) {
            self.table_indexes.insert(new.to_string(), indexes);
        }
        for table in self.index_tables.values_mut() {
            if table == old {
                *table = new.to_string();
            }
        }
    }

    pub fn rename_column(&mut self, table: &str, old: &str, new: &str) {
        if let Some(columns) = self.columns.get_mut(table) {
            if let Some(index) = columns.get_index_of(old) {
                // Python pops and re-inserts: the renamed column goes last.
                let (_, kind) = columns.shift_remove_index(index).unwrap();
                columns.insert(new.to_string(), kind);
            }
        }
        if let Some(indexes) = self.table_indexes.get_mut(table) {
            for keys in indexes.values_mut() {
                if keys.iter().any(|k| k.as_deref() == Some(old)) {
                    for key in keys.iter_mut() {
                        if key.as_deref() == Some(old) {
                            *key = Some(new.to_string());
                        }
                    }
                }
            }
        }
    }

    /// The column, and the indexes that use it (PostgreSQL drops them with it).
    pub fn drop_column(&mut self, table: &str, column: &str) {
        if let Some(columns) = self.columns.get_mut(table) {
            columns.shift_remove(column);
        }
        let doomed: Vec<String> = match self.table_indexes.get(table) {
            Some(indexes) => indexes
                .iter()
                .filter(|(_, keys)| keys.iter().any(|k| k.as_deref() == Some(column)))
                .map(|(index, _)| index.clone())
                .collect(),
            None => Vec::new(),
        };
        for index in doomed {
            self.forget_index(&index);
        }
    }

    pub fn drop_table(&mut self, table: &str) {
        self.columns.remove(table);
        self.table_indexes.remove(table);
        self.index_tables.retain(|_, t| t != table);
    }
}

/// PostgreSQL keeps tables, views, indexes and sequences in one namespace (pg_class).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    Relation,
    Type,
    Function,
    Schema,
}

#[derive(Default, Debug)]
pub struct ChangeScope {
    pub created: HashSet<(Namespace, String)>,
    /// (table key, column) added by this change: UPDATE of only these is a backfill.
    pub added_columns: HashSet<(String, String)>,
    /// Objects dropped by this change -> their findings' indexes (softened if re-created).
    pub dropped: HashMap<(Namespace, String), Vec<usize>>,
    /// constraint name -> the transaction that added it NOT VALID.
    pub not_valid: HashMap<String, u64>,
    /// CHECK (col IS NOT NULL) constraint name -> (table key, column).
    pub not_null_checks: HashMap<String, (String, String)>,
    /// (table key, column) with a validated CHECK (col IS NOT NULL).
    pub proven_not_null: HashSet<(String, String)>,
    /// Foreign keys this change added: (table key, columns, the finding to report if no
    /// index on the table starts with those columns when the change ends).
    pub foreign_keys: Vec<(String, Vec<String>, Finding)>,
}

impl ChangeScope {
    pub fn is_new(&self, namespace: Namespace, key: &str) -> bool {
        let schema = key.split('.').next().unwrap_or(key);
        self.created.contains(&(namespace, key.to_string()))
            || self
                .created
                .contains(&(Namespace::Schema, schema.to_string()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transaction {
    /// The migration runner's implicit per-file transaction.
    Runner,
    /// A BEGIN written in the file, outside any runner transaction.
    Explicit,
    /// A BEGIN written inside the runner's transaction (PostgreSQL ignores it, with a warning).
    Nested,
}

/// One timeout GUC: the session value, a SET LOCAL override, the value at BEGIN.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeoutSetting {
    pub session: bool,
    pub local: Option<bool>,
    pub at_begin: bool,
}

impl TimeoutSetting {
    pub fn in_effect(&self) -> bool {
        self.local.unwrap_or(self.session)
    }

    pub fn set(&mut self, value: bool, local: bool, in_transaction: bool) {
        if local {
            if in_transaction {
                self.local = Some(value);
            }
        } else {
            self.session = value;
            self.local = None;
        }
    }

    pub fn reset(&mut self) {
        self.session = false;
        self.local = None;
    }

    pub fn begin(&mut self) {
        self.at_begin = self.session;
    }

    pub fn end(&mut self, committed: bool) {
        if !committed {
            self.session = self.at_begin;
        }
        self.local = None;
    }
}

#[derive(Debug, Default)]
pub struct Session {
    pub transaction: Option<Transaction>,
    pub transaction_serial: u64,
    pub began_at_line: Option<i64>,
    pub lock_timeout: TimeoutSetting,
    pub statement_timeout: TimeoutSetting,
    /// Pre-existing tables this transaction holds ACCESS EXCLUSIVE on -> the line that took it.
    pub exclusive: IndexMap<String, i64>,
    pub exclusive_reported: bool,
}

impl Session {
    pub fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    pub fn begin(&mut self, kind: Transaction, line: Option<i64>) {
        if self.transaction.is_none() {
            self.transaction_serial += 1;
            self.lock_timeout.begin();
            self.statement_timeout.begin();
            self.exclusive.clear();
            self.exclusive_reported = false;
        }
        self.transaction = Some(kind);
        self.began_at_line = line;
    }

    pub fn end(&mut self, committed: bool) {
        self.transaction = None;
        self.began_at_line = None;
        self.exclusive.clear();
        self.exclusive_reported = false;
        self.lock_timeout.end(committed);
        self.statement_timeout.end(committed);
    }

    /// `lock_timeout` or `statement_timeout`, by name.
    pub fn setting(&mut self, name: &str) -> Option<&mut TimeoutSetting> {
        match name {
            "lock_timeout" => Some(&mut self.lock_timeout),
            "statement_timeout" => Some(&mut self.statement_timeout),
            _ => None,
        }
    }
}
