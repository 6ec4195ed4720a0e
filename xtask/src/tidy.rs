//! `cargo xtask tidy`: source rules the compiler cannot check.
//!
//! - Only `engine/src/io/os.rs` may reach the operating system (files, sockets, clocks, threads,
//!   randomness). Everything else goes through the IO seams, which is what lets the simulator
//!   replace them and replay a seed exactly. `engine/src/main.rs` and `engine/src/bin/` are the
//!   binary's wiring and may too.
//! - Every file under `engine/src` and `sim/src` opens with a `//!` module doc.
//!
//! The checks are textual on purpose: cheap, and they need no parser. Lines whose trimmed text
//! starts with `//` are skipped, so docs may name what they avoid.

use crate::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// What only the OS module may use. More specific patterns come first: a line is reported once,
/// under the first pattern it contains.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::net",
    "std::time::Instant",
    "std::time::SystemTime",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "std::thread::spawn",
    "std::thread",
    "memmap2::",
    "nix::",
    "tokio::net",
    "tokio::fs",
    "libc::",
];

/// Directories whose .rs files must open with a `//!` doc.
const DOC_ROOTS: &[&str] = &["engine/src", "sim/src"];

/// The directory the forbidden patterns apply to.
const SEAM_ROOT: &str = "engine/src";

/// Files and directories under [`SEAM_ROOT`] that may touch the OS.
const SEAM_EXEMPT: &[&str] = &[
    "engine/src/io/os.rs",
    "engine/src/main.rs",
    "engine/src/bin",
];

/// One rule broken at one place.
struct Problem {
    path: PathBuf,
    line: usize,
    message: String,
}

/// Runs both checks, prints each problem as `path:line: message` and a summary line, and fails
/// if there was any problem.
pub fn run(root: &Path) -> Result {
    let mut files = Vec::new();
    for dir in DOC_ROOTS {
        collect_rs_files(root, &root.join(dir), &mut files)?;
    }
    let mut problems = Vec::new();
    for rel in &files {
        let text = fs::read_to_string(root.join(rel))
            .map_err(|err| Error::failed(format!("tidy: cannot read {}: {err}", rel.display())))?;
        check_module_doc(rel, &text, &mut problems);
        if rel.starts_with(SEAM_ROOT) && !SEAM_EXEMPT.iter().any(|exempt| rel.starts_with(exempt)) {
            check_forbidden(rel, &text, &mut problems);
        }
    }
    for problem in &problems {
        println!(
            "{}:{}: {}",
            problem.path.display(),
            problem.line,
            problem.message
        );
    }
    println!(
        "tidy: {} files checked, {} problems",
        files.len(),
        problems.len()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::failed("tidy: found problems, listed above"))
    }
}

/// Appends every .rs file under `dir` to `out`, relative to `root`, in sorted order so the report
/// reads the same on every machine. A missing `dir` is an error: a moved crate must not make the
/// check silently pass.
fn collect_rs_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result {
    let read_err = |err: std::io::Error| Error::failed(format!("tidy: {}: {err}", dir.display()));
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read_err)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<std::io::Result<_>>()
        .map_err(read_err)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs_files(root, &path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let rel = path.strip_prefix(root).expect("walk stays under the root");
            out.push(rel.to_path_buf());
        }
    }
    Ok(())
}

/// The first non-blank line must be a `//!` doc line.
fn check_module_doc(path: &Path, text: &str, problems: &mut Vec<Problem>) {
    let first = text
        .lines()
        .enumerate()
        .find(|(_, line)| !line.trim().is_empty());
    if let Some((_, line)) = first {
        if line.trim_start().starts_with("//!") {
            return;
        }
    }
    problems.push(Problem {
        path: path.to_path_buf(),
        line: first.map_or(1, |(index, _)| index + 1),
        message: "missing leading `//!` module doc".into(),
    });
}

/// Reports each non-comment line that contains a forbidden pattern.
fn check_forbidden(path: &Path, text: &str, problems: &mut Vec<Problem>) {
    for (index, line) in text.lines().enumerate() {
        let code = line.trim();
        if code.starts_with("//") {
            continue;
        }
        if let Some(pattern) = FORBIDDEN
            .iter()
            .find(|pattern| contains_path(code, pattern))
        {
            problems.push(Problem {
                path: path.to_path_buf(),
                line: index + 1,
                message: format!("`{pattern}` outside engine/src/io/os.rs: {code}"),
            });
        }
    }
}

/// Whether `pattern` occurs in `line` as a whole path, not as part of a longer identifier: so
/// `nix::` does not match `std::os::unix::`, nor `std::thread` match `std::thread_local!`.
fn contains_path(line: &str, pattern: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(pattern).any(|(start, _)| {
        let before = line[..start].chars().next_back();
        let after = line[start + pattern.len()..].chars().next();
        let glued_before = before.is_some_and(is_ident);
        let glued_after = pattern.ends_with(is_ident) && after.is_some_and(is_ident);
        !glued_before && !glued_after
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_whole_paths_only() {
        assert!(contains_path("use std::fs;", "std::fs"));
        assert!(contains_path("let t = Instant::now();", "Instant::now"));
        assert!(contains_path("std::thread::sleep(d);", "std::thread"));
        assert!(contains_path("use nix::unistd;", "nix::"));
        assert!(!contains_path("use std::os::unix::fs::FileExt;", "nix::"));
        assert!(!contains_path("std::thread_local! {", "std::thread"));
        assert!(!contains_path("SimInstant::now()", "Instant::now"));
        assert!(!contains_path("use std::fsx;", "std::fs"));
    }

    #[test]
    fn comment_lines_are_skipped() {
        let mut problems = Vec::new();
        let text = "//! Uses no std::fs.\n    // std::net is off limits\nfn f() {}\n";
        check_forbidden(Path::new("engine/src/x.rs"), text, &mut problems);
        assert!(problems.is_empty());
        check_forbidden(
            Path::new("engine/src/x.rs"),
            "use std::net::TcpStream;\n",
            &mut problems,
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 1);
    }

    #[test]
    fn module_doc_after_blank_lines() {
        let mut problems = Vec::new();
        check_module_doc(
            Path::new("a.rs"),
            "\n\n//! Doc.\nfn f() {}\n",
            &mut problems,
        );
        assert!(problems.is_empty());
        check_module_doc(
            Path::new("b.rs"),
            "\n/// Item doc.\nfn f() {}\n",
            &mut problems,
        );
        check_module_doc(Path::new("c.rs"), "", &mut problems);
        let lines: Vec<usize> = problems.iter().map(|problem| problem.line).collect();
        assert_eq!(lines, [2, 1]);
    }
}
