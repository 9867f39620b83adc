//! Taking the connection token out of the server's own environment, so that
//! neither a child nor a client can read it back.
//!
//! A child started with `inheritEnv` never gets `EXEC_SERVER_TOKEN` (the
//! process table leaves it out). But the server's initial environment stays
//! readable as `/proc/<pid>/environ` (which `fs/readFile` could serve), and
//! unsetting a variable does not change that: the kernel shows the memory
//! the environment was passed in. So once `serve` has copied the token, it
//! overwrites the value there with NUL bytes, through `/proc/self/mem`
//! (plain file I/O, no unsafe code). The variable then reads as empty.

use std::fs::OpenOptions;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};

use exec_server::TOKEN_ENV_VARIABLE;

/// The token in `EXEC_SERVER_TOKEN`, if set and not empty, after blanking it
/// in this process's initial environment. A token that cannot be blanked is
/// still returned (the reason is logged): refusing to start would not make
/// it any less visible.
pub(crate) fn take() -> Option<String> {
    let token = std::env::var(TOKEN_ENV_VARIABLE)
        .ok()
        .filter(|token| !token.is_empty())?;
    if let Err(error) = blank_initial_value(TOKEN_ENV_VARIABLE) {
        tracing::warn!(
            %error,
            "cannot blank {TOKEN_ENV_VARIABLE} in /proc/self/environ; prefer --token-file"
        );
    }
    Some(token)
}

/// Overwrites the value of `name` in the initial environment block (between
/// `env_start` and `env_end` of proc(5)'s `/proc/self/stat`) with NUL bytes.
fn blank_initial_value(name: &str) -> io::Result<()> {
    let (start, end) = environment_block()?;
    let length = usize::try_from(end.saturating_sub(start))
        .map_err(|_| io::Error::other("the environment block is too large"))?;
    let mut memory = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")?;
    memory.seek(SeekFrom::Start(start))?;
    let mut block = vec![0_u8; length];
    memory.read_exact(&mut block)?;
    let prefix = format!("{name}=");
    let mut offset = 0;
    for entry in block.split(|byte| *byte == 0) {
        if let Some(value) = entry.strip_prefix(prefix.as_bytes())
            && !value.is_empty()
        {
            let value_start = start + (offset + prefix.len()) as u64;
            memory.seek(SeekFrom::Start(value_start))?;
            memory.write_all(&vec![0_u8; value.len()])?;
        }
        offset += entry.len() + 1;
    }
    Ok(())
}

/// `env_start` and `env_end` (fields 50 and 51 of `/proc/self/stat`).
fn environment_block() -> io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields are counted from 1; the command name (field 2) may hold
    // spaces, so counting starts after its closing parenthesis, at field 3.
    let after_name = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("/proc/self/stat has no command name"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> io::Result<u64> {
        fields
            .get(number - 3)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| io::Error::other(format!("/proc/self/stat has no field {number}")))
    };
    Ok((field(50)?, field(51)?))
}
