//! Running child processes (almost always cargo) with inherited output, and turning a non-zero
//! exit into an [`Error`] that names the command line, so a failure log says what to re-run.

use crate::{Error, Result};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitStatus};

/// A `cargo` command rooted at the workspace. Uses `$CARGO` when set (it is, under `cargo xtask`)
/// so the children run the same toolchain as the cargo that started us.
pub fn cargo(root: &Path, args: &[&str]) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(root).args(args);
    command
}

/// How a command is shown in headers and errors: `cargo` rather than `$CARGO`'s full path, plus
/// any environment we set, since that is part of what must be reproduced by hand.
pub fn display(command: &Command) -> String {
    let mut parts: Vec<String> = command
        .get_envs()
        .filter_map(|(key, value)| Some(format!("{}={:?}", key.to_string_lossy(), value?)))
        .collect();
    parts.push("cargo".into());
    parts.extend(
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned()),
    );
    parts.join(" ")
}

/// Runs `command` to completion with stdin/stdout/stderr inherited. A non-zero exit becomes
/// `Error::Failed` carrying the child's exit code, so pass-through subcommands keep it.
pub fn run(mut command: Command) -> Result {
    let shown = display(&command);
    let status = command
        .status()
        .map_err(|err| Error::failed(format!("could not start `{shown}`: {err}")))?;
    check(&shown, status)
}

/// `Ok` for a successful exit of the command shown as `shown`, else `Error::Failed` with the
/// child's exit code, for callers that start the child themselves.
pub fn check(shown: &str, status: ExitStatus) -> Result {
    if status.success() {
        return Ok(());
    }
    // Killed by a signal has no code; 1 still says "failed". Codes above 255 cannot be exit codes.
    let code = status
        .code()
        .map_or(1, |code| u8::try_from(code).unwrap_or(1));
    Err(Error::Failed {
        message: format!("`{shown}` failed ({status})"),
        code,
    })
}
