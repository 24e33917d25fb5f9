//! The migrations `guardians lint` finds under its paths, as `cli.lint.find_migrations` finds
//! them (pathlib's rules on strings). Anything that would be a usage error there (a path that
//! does not exist or is not a .sql file, a folder without migrations, a file that cannot be
//! read or is not UTF-8) is `None` here: the Python command then runs and reports it.

use std::fs;

use crate::report::Migration;

/// `str(Path(text))`: repeated and trailing slashes, and `.` parts, dropped.
pub fn path_text(text: &str) -> String {
    let (root, rest) = if text.starts_with("//") && !text.starts_with("///") {
        ("//", &text[2..])
    } else if text.starts_with('/') {
        ("/", text.trim_start_matches('/'))
    } else {
        ("", text)
    };
    let parts: Vec<&str> = rest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let joined = parts.join("/");
    if root.is_empty() && joined.is_empty() {
        ".".to_string()
    } else {
        format!("{root}{joined}")
    }
}

/// `str(Path(folder) / name)`.
fn child(folder: &str, name: &str) -> String {
    if folder == "." {
        name.to_string()
    } else if folder.ends_with('/') {
        format!("{folder}{name}")
    } else {
        format!("{folder}/{name}")
    }
}

enum Kind {
    File,
    Dir,
    Other,
    Missing,
}

/// What `os.stat` finds (following links); None for an error other than "no such file".
fn kind(path: &str) -> Option<Kind> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => Some(Kind::File),
        Ok(meta) if meta.is_dir() => Some(Kind::Dir),
        Ok(_) => Some(Kind::Other),
        Err(error) => match error.raw_os_error() {
            // ENOENT, ENOTDIR, EBADF, ELOOP: pathlib's "does not exist"
            Some(2 | 20 | 9 | 40) => Some(Kind::Missing),
            _ => None,
        },
    }
}

/// The text Python's `open(path, encoding="utf-8").read()` returns (newlines translated).
fn read(path: &str) -> Option<String> {
    let text = String::from_utf8(fs::read(path).ok()?).ok()?;
    Some(if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    })
}

/// pathlib's `suffix` of the last part of `path`.
fn suffix(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(i) if i > 0 && i < name.len() - 1 => &name[i..],
        _ => "",
    }
}

/// A migration found, its files not read yet: name, up script, down script.
struct Found {
    name: String,
    up: String,
    down: Option<String>,
}

fn migrations_in(folder: &str, found: &mut Vec<Found>) -> Option<()> {
    let up = child(folder, "up.sql");
    if matches!(kind(&up)?, Kind::File) {
        let down = child(folder, "down.sql");
        let down = match kind(&down)? {
            Kind::File => Some(down),
            _ => None,
        };
        found.push(Found {
            name: folder.to_string(),
            up,
            down,
        });
        return Some(());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(folder).ok()? {
        names.push(entry.ok()?.file_name().into_string().ok()?);
    }
    names.sort();
    for name in names {
        let entry = child(folder, &name);
        match kind(&entry)? {
            Kind::File if name.chars().count() > 4 && name.ends_with(".sql") => {
                found.push(Found {
                    name: entry.clone(),
                    up: entry,
                    down: None,
                });
            }
            Kind::Dir if matches!(kind(&child(&entry, "up.sql"))?, Kind::File) => {
                migrations_in(&entry, found)?;
            }
            _ => {}
        }
    }
    Some(())
}

/// The migrations under `paths` (as `str(Path)`), in order, read (on two threads); None where
/// Python would stop with a usage error.
pub fn find_migrations(paths: &[String]) -> Option<Vec<Migration>> {
    let mut migrations = Vec::new();
    for path in paths {
        match kind(path)? {
            Kind::File => {
                if suffix(path) != ".sql" {
                    return None;
                }
                migrations.push(Found {
                    name: path.clone(),
                    up: path.clone(),
                    down: None,
                });
            }
            Kind::Dir => {
                let before = migrations.len();
                migrations_in(path, &mut migrations)?;
                if migrations.len() == before {
                    return None;
                }
            }
            Kind::Other | Kind::Missing => return None,
        }
    }
    read_all(migrations)
}

/// Read every migration's scripts, the even ones on another thread.
fn read_all(found: Vec<Found>) -> Option<Vec<Migration>> {
    let load = |f: &Found| -> Option<Migration> {
        let down = match &f.down {
            Some(path) => Some(read(path)?),
            None => None,
        };
        Some(Migration {
            name: f.name.clone(),
            up: read(&f.up)?,
            down,
        })
    };
    let (even, odd): (Vec<Option<Migration>>, Vec<Option<Migration>>) =
        std::thread::scope(|scope| {
            let other = scope.spawn(|| found.iter().step_by(2).map(load).collect());
            let odd = found.iter().skip(1).step_by(2).map(load).collect();
            (other.join().unwrap_or_default(), odd)
        });
    if even.len() != found.len().div_ceil(2) {
        return None;
    }
    let mut migrations = Vec::with_capacity(found.len());
    let mut odd = odd.into_iter();
    for migration in even {
        migrations.push(migration?);
        if let Some(next) = odd.next() {
            migrations.push(next?);
        }
    }
    Some(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_pathlib_writes_them() {
        assert_eq!(path_text("a//b/./c/"), "a/b/c");
        assert_eq!(path_text("./"), ".");
        assert_eq!(path_text("//x"), "//x");
        assert_eq!(path_text("///x"), "/x");
        assert_eq!(suffix("dir/.sql"), "");
        assert_eq!(suffix("dir/a.sql"), ".sql");
    }
}
