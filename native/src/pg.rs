//! PostgreSQL's parser and scanner: libpg_query's C functions, from the library pglast's
//! extension module is built with (the same one the Python analysis calls through ctypes, so
//! both read the same trees). The library is opened once by path (`load`).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

#[repr(C)]
struct PgQueryError {
    message: *const c_char,
    funcname: *const c_char,
    filename: *const c_char,
    lineno: c_int,
    cursorpos: c_int,
    context: *const c_char,
}

#[repr(C)]
struct PgQueryParseResult {
    parse_tree: *const c_char,
    stderr_buffer: *const c_char,
    error: *const PgQueryError,
}

#[repr(C)]
struct PgQueryScanTokensResult {
    tokens: *const c_int,
    n_tokens: c_int,
    error: *const PgQueryError,
}

type ParseFn = unsafe extern "C" fn(*const c_char) -> PgQueryParseResult;
type FreeParseFn = unsafe extern "C" fn(PgQueryParseResult);
type ScanFn = unsafe extern "C" fn(*const c_char) -> PgQueryScanTokensResult;
type FreeScanFn = unsafe extern "C" fn(PgQueryScanTokensResult);
type NameFn = unsafe extern "C" fn(c_int) -> *const c_char;

extern "C" {
    fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

const RTLD_NOW: c_int = 2;

struct Library {
    parse: ParseFn,
    free_parse: FreeParseFn,
    scan: ScanFn,
    free_scan: FreeScanFn,
    token_name: NameFn,
    kind_name: NameFn,
}

static LIBRARY: OnceLock<Library> = OnceLock::new();

/// Open libpg_query at `path` (pglast's `parser` extension module); an error naming what is
/// missing. Later calls keep the first library.
pub fn load(path: &str) -> Result<(), String> {
    if LIBRARY.get().is_some() {
        return Ok(());
    }
    let c_path = CString::new(path).map_err(|_| format!("{path}: not a path"))?;
    // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols are libpg_query's functions
    // with the signatures of pg_query.h (and pglast's pg_query_scan_tokens).
    unsafe {
        let handle = dlopen(c_path.as_ptr(), RTLD_NOW);
        if handle.is_null() {
            return Err(format!("cannot open {path}"));
        }
        let symbol = |name: &str| -> Result<*mut c_void, String> {
            let c_name = CString::new(name).unwrap();
            let found = dlsym(handle, c_name.as_ptr());
            if found.is_null() {
                Err(format!("{path} has no {name}"))
            } else {
                Ok(found)
            }
        };
        let library = Library {
            parse: std::mem::transmute::<*mut c_void, ParseFn>(symbol("pg_query_parse")?),
            free_parse: std::mem::transmute::<*mut c_void, FreeParseFn>(symbol(
                "pg_query_free_parse_result",
            )?),
            scan: std::mem::transmute::<*mut c_void, ScanFn>(symbol("pg_query_scan_tokens")?),
            free_scan: std::mem::transmute::<*mut c_void, FreeScanFn>(symbol(
                "pg_query_free_scan_tokens_result",
            )?),
            token_name: std::mem::transmute::<*mut c_void, NameFn>(symbol("pg_query_token_name")?),
            kind_name: std::mem::transmute::<*mut c_void, NameFn>(symbol(
                "pg_query_keyword_kind_name",
            )?),
        };
        let _ = LIBRARY.set(library);
    }
    Ok(())
}

fn library() -> &'static Library {
    LIBRARY.get().expect("libpg_query is not loaded (pg::load)")
}

/// The parser's error: PostgreSQL's message and its 1-based character position (0: none).
#[derive(Clone, Debug)]
pub struct ParseError {
    pub message: String,
    pub cursorpos: i64,
}

fn c_text(pointer: *const c_char) -> String {
    if pointer.is_null() {
        return String::new();
    }
    // SAFETY: libpg_query's strings are NUL-terminated and live until the result is freed.
    let bytes = unsafe { CStr::from_ptr(pointer) }.to_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn c_string(sql: &str) -> CString {
    // A NUL inside the text ends it for the C parser, as it does for pglast.
    let end = sql.find('\0').unwrap_or(sql.len());
    CString::new(&sql[..end]).unwrap()
}

/// The parse tree as libpg_query's JSON (statement locations are byte offsets).
pub fn parse_json(sql: &str) -> Result<String, ParseError> {
    let lib = library();
    let text = c_string(sql);
    // SAFETY: the result is read, copied, then freed once.
    unsafe {
        let result = (lib.parse)(text.as_ptr());
        let outcome = if !result.error.is_null() {
            let error = &*result.error;
            Err(ParseError {
                message: c_text(error.message),
                cursorpos: error.cursorpos as i64,
            })
        } else if result.parse_tree.is_null() {
            Err(ParseError {
                message: "no parse tree".into(),
                cursorpos: 0,
            })
        } else {
            Ok(c_text(result.parse_tree))
        };
        (lib.free_parse)(result);
        outcome
    }
}

/// One token, offsets in BYTES: `start` inclusive, `end` exclusive.
#[derive(Clone, Debug)]
pub struct RawToken {
    pub start: usize,
    pub end: usize,
    pub name: &'static str,
    pub kind: &'static str,
}

fn static_name(function: NameFn, value: c_int) -> &'static str {
    // SAFETY: the names are static strings of libpg_query's grammar tables.
    let pointer = unsafe { function(value) };
    if pointer.is_null() {
        return "UNKNOWN";
    }
    unsafe { CStr::from_ptr(pointer) }
        .to_str()
        .unwrap_or("UNKNOWN")
}

/// The scanner's tokens of `sql`, or the scanner's error.
pub fn scan(sql: &str) -> Result<Vec<RawToken>, ParseError> {
    let lib = library();
    let text = c_string(sql);
    // SAFETY: `tokens` is an array of n_tokens * 4 ints {start, end, token, keyword_kind}.
    unsafe {
        let result = (lib.scan)(text.as_ptr());
        let outcome = if !result.error.is_null() {
            let error = &*result.error;
            Err(ParseError {
                message: c_text(error.message),
                cursorpos: error.cursorpos as i64,
            })
        } else if result.n_tokens <= 0 || result.tokens.is_null() {
            Ok(Vec::new())
        } else {
            let fields = std::slice::from_raw_parts(result.tokens, 4 * result.n_tokens as usize);
            Ok(fields
                .chunks_exact(4)
                .map(|t| RawToken {
                    start: t[0].max(0) as usize,
                    end: t[1].max(0) as usize,
                    name: static_name(lib.token_name, t[2]),
                    kind: static_name(lib.kind_name, t[3]),
                })
                .collect())
        };
        (lib.free_scan)(result);
        outcome
    }
}
