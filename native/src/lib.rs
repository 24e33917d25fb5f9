//! The migration guardian's static SQL analysis, native.
//!
//! A port of services/migration/domain's SQL rules (the Python modules stay the reference:
//! `tests/unit/migration` runs every case through both and requires the same findings, and the
//! golden corpus reports hold both to the same bytes). Module names follow the Python ones.

pub mod analysis;
pub mod column_types;
pub mod default_values;
pub mod files;
pub mod findings;
pub mod nodes;
pub mod pg;
pub mod pytext;
#[rustfmt::skip]
mod pytext_tables;
pub mod report;
#[rustfmt::skip]
mod rule_table;
pub mod rules;
pub mod source;
pub mod state;
pub mod suppressions;
pub mod tree;

use std::collections::HashSet;
use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::analysis::{SqlAnalysis, SqlFile, SqlOptions};
use crate::findings::{Catalog, Finding};

/// One finding as Python's `Finding` fields, in order (kind left out: always `database`):
/// rule, severity, message, effect, file, line, column, statement, target, fix, lock,
/// preexisting, rollback.
fn as_tuple<'py>(py: Python<'py>, f: &Finding) -> PyResult<Bound<'py, PyTuple>> {
    let items: [PyObject; 13] = [
        f.rule.as_str().into_py_any(py)?,
        f.severity.as_str().into_py_any(py)?,
        f.message.as_str().into_py_any(py)?,
        f.effect.as_str().into_py_any(py)?,
        f.file.as_deref().into_py_any(py)?,
        f.line.into_py_any(py)?,
        f.column.into_py_any(py)?,
        f.statement.as_deref().into_py_any(py)?,
        f.target.as_deref().into_py_any(py)?,
        f.fix.as_deref().into_py_any(py)?,
        f.lock.map(|l| l.as_str()).into_py_any(py)?,
        f.preexisting.into_py_any(py)?,
        f.rollback.into_py_any(py)?,
    ];
    PyTuple::new(py, items)
}

pyo3::create_exception!(
    _native,
    NativeError,
    PyRuntimeError,
    "The native analysis failed (a bug: it panicked). The analysis object is not to be used \
     again; the Python analysis finds the same."
);

/// Run `work`, a panic in it (a bug) turned into `NativeError` with its message, instead of
/// pyo3's PanicException (a BaseException that `except Exception` does not catch).
fn guarded<T>(work: impl FnOnce() -> T) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        NativeError::new_err(message)
    })
}

/// `SqlAnalysis` for Python: feed it files in apply order, read the findings.
#[pyclass(unsendable, module = "services.migration.domain._native")]
struct Analysis {
    inner: SqlAnalysis,
}

#[pymethods]
impl Analysis {
    #[new]
    fn new(pg_version: i64, transaction_per_file: bool) -> Self {
        let options = SqlOptions {
            pg_version,
            transaction_per_file,
        };
        Analysis {
            inner: SqlAnalysis::new(options, Arc::new(Catalog::builtin())),
        }
    }

    fn analyse_file(&mut self, name: String, sql: String, rollback: bool) -> PyResult<()> {
        guarded(|| {
            self.inner.analyse_file(&SqlFile {
                name,
                sql,
                rollback,
            })
        })
    }

    fn new_change(&mut self) -> PyResult<()> {
        guarded(|| self.inner.new_change())
    }

    fn end_change(&mut self) -> PyResult<()> {
        guarded(|| self.inner.end_change())
    }

    /// After reading the history (already applied migrations): keep what was learnt of the
    /// schema, start the change with no findings, a new scope and a new session.
    fn start_after_history(&mut self) {
        self.inner.forget_findings();
        self.inner.scope = Default::default();
        self.inner.session = Default::default();
    }

    fn findings<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.inner
            .findings
            .iter()
            .map(|f| as_tuple(py, f))
            .collect()
    }

    fn finding_count(&self) -> usize {
        self.inner.findings.len()
    }
}

/// `guardians lint --format json|text` over the migrations under `paths` (found and read here, as
/// `cli.lint` would): (risk, the report as UTF-8, unknown suppressions as findings, which make it a
/// usage error and the report empty),
/// or None where `cli.lint` would stop with a usage error: it then runs and reports it.
#[pyfunction]
#[pyo3(signature = (paths, pg_version, transaction_per_file, one_change, down, excluded, format))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn lint_paths<'py>(
    py: Python<'py>,
    paths: Vec<String>,
    pg_version: i64,
    transaction_per_file: bool,
    one_change: bool,
    down: bool,
    excluded: HashSet<String>,
    format: &str,
) -> PyResult<Option<(&'static str, Bound<'py, PyBytes>, Vec<Bound<'py, PyTuple>>)>> {
    let format = match format {
        "json" => report::Format::Json,
        "text" => report::Format::Text,
        other => {
            return Err(PyValueError::new_err(format!(
                "format {other:?}: json or text"
            )))
        }
    };
    let options = SqlOptions {
        pg_version,
        transaction_per_file,
    };
    let mode = report::LintMode { one_change, down };
    let done = py.allow_threads(|| {
        guarded(|| {
            let paths: Vec<String> = paths.iter().map(|p| files::path_text(p)).collect();
            let migrations = files::find_migrations(&paths)?;
            Some(report::lint_report(
                &migrations,
                options,
                mode,
                Arc::new(Catalog::builtin()),
                &excluded,
                format,
            ))
        })
    })?;
    let Some(done) = done else { return Ok(None) };
    let unknown = done
        .unknown
        .iter()
        .map(|f| as_tuple(py, f))
        .collect::<PyResult<_>>()?;
    Ok(Some((
        done.risk.as_str(),
        PyBytes::new(py, done.text.as_bytes()),
        unknown,
    )))
}

/// Open libpg_query (pglast's parser extension module, by path).
#[pyfunction]
fn load_parser(path: &str) -> PyResult<()> {
    pg::load(path).map_err(PyRuntimeError::new_err)
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Analysis>()?;
    module.add("NativeError", module.py().get_type::<NativeError>())?;
    module.add_function(wrap_pyfunction!(load_parser, module)?)?;
    module.add_function(wrap_pyfunction!(lint_paths, module)?)?;
    Ok(())
}

/// The analysis builds and frees many small values (parse trees, messages) on three threads:
/// mimalloc's thread-local heaps, not glibc's arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
