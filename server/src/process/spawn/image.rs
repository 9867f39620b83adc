//! [`ExecImage`]: what a child execs, as the C strings and NULL-terminated
//! pointer arrays `execve` takes, all built before the clone, since the
//! child may not allocate.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::raw::c_char;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::Path;
use std::ptr;

/// The shell a file without a known executable format runs with, as
/// `execvp` runs it (`_PATH_BSHELL`).
const SHELL: &str = "/bin/sh";

/// The program, arguments, environment and working directory of a child,
/// ready for `execve` and `chdir` without any allocation.
///
/// The pointer arrays point into the heap buffers of the `CString`s held
/// beside them, which never move while those are alive (moving a `CString`
/// moves only its box pointer), so the arrays stay valid for the image's
/// whole life. Holding raw pointers keeps the type on the thread that built
/// it (neither `Send` nor `Sync`), which is where it is used.
pub(crate) struct ExecImage {
    /// The program's path, as `execve` takes it.
    program: CString,
    /// The working directory.
    cwd: CString,
    /// The argument vector (`argv[0]` first) and the environment
    /// (`NAME=value` entries), owning what the pointer arrays point to.
    _strings: Vec<CString>,
    /// `argv[0]`, the arguments, then NULL.
    argv: Vec<*const c_char>,
    /// The environment entries, then NULL.
    envp: Vec<*const c_char>,
    /// `/bin/sh`, the program, the arguments, then NULL: what runs when the
    /// kernel refuses the program with ENOEXEC (a script without `#!`), as
    /// glibc's `execvp` does.
    shell_argv: Vec<*const c_char>,
    /// [`SHELL`] as a C string.
    shell: CString,
}

impl ExecImage {
    /// The image of `program` run as `arg0 args...` in `cwd` with exactly
    /// `env`. Errors: `InvalidInput` when a string holds a NUL byte (the
    /// kernel cannot be given it), as std's `Command` reports it.
    pub(crate) fn new<'a>(
        program: &Path,
        arg0: &str,
        args: impl IntoIterator<Item = &'a str>,
        env: impl IntoIterator<Item = (&'a OsString, &'a OsString)>,
        cwd: &Path,
    ) -> io::Result<Self> {
        let program = c_string(program.as_os_str().as_bytes().to_vec())?;
        let cwd = c_string(cwd.as_os_str().as_bytes().to_vec())?;
        let shell = c_string(SHELL.as_bytes().to_vec())?;
        let mut strings = vec![c_string(arg0.as_bytes().to_vec())?];
        for arg in args {
            strings.push(c_string(arg.as_bytes().to_vec())?);
        }
        let argument_count = strings.len();
        for (name, value) in env {
            strings.push(c_string(environment_entry(name, value))?);
        }
        let pointers = |strings: &[CString]| -> Vec<*const c_char> {
            strings
                .iter()
                .map(|string| string.as_ptr())
                .chain([ptr::null()])
                .collect()
        };
        let (arguments, environment) = strings.split_at(argument_count);
        let argv = pointers(arguments);
        let envp = pointers(environment);
        let shell_argv = [shell.as_ptr(), program.as_ptr()]
            .into_iter()
            .chain(arguments.iter().skip(1).map(|arg| arg.as_ptr()))
            .chain([ptr::null()])
            .collect();
        Ok(Self {
            program,
            cwd,
            _strings: strings,
            argv,
            envp,
            shell_argv,
            shell,
        })
    }

    /// The program's path.
    pub(crate) fn program(&self) -> *const c_char {
        self.program.as_ptr()
    }

    /// The working directory.
    pub(crate) fn cwd(&self) -> *const c_char {
        self.cwd.as_ptr()
    }

    /// The working directory, for messages.
    pub(crate) fn cwd_display(&self) -> String {
        Path::new(OsStr::from_bytes(self.cwd.as_bytes()))
            .display()
            .to_string()
    }

    /// The NULL-terminated argument vector.
    pub(crate) fn argv(&self) -> *const *const c_char {
        self.argv.as_ptr()
    }

    /// The NULL-terminated environment.
    pub(crate) fn envp(&self) -> *const *const c_char {
        self.envp.as_ptr()
    }

    /// The shell, for a program the kernel refused with ENOEXEC.
    pub(crate) fn shell(&self) -> *const c_char {
        self.shell.as_ptr()
    }

    /// The NULL-terminated argument vector of the shell fallback.
    pub(crate) fn shell_argv(&self) -> *const *const c_char {
        self.shell_argv.as_ptr()
    }
}

/// `NAME=value`.
fn environment_entry(name: &OsStr, value: &OsStr) -> Vec<u8> {
    let mut entry = OsString::with_capacity(name.len() + value.len() + 1);
    entry.push(name);
    entry.push("=");
    entry.push(value);
    entry.into_vec()
}

/// `bytes` as a C string. Errors: `InvalidInput` when it holds a NUL byte.
fn c_string(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "nul byte found in provided data",
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::CStr;

    use pretty_assertions::assert_eq;

    use super::*;

    /// The strings of a NULL-terminated array.
    fn strings(mut array: *const *const c_char) -> Vec<String> {
        let mut found = Vec::new();
        // SAFETY: the arrays of an `ExecImage` end with NULL and point to
        // C strings the image owns, alive for this test.
        #[allow(unsafe_code)]
        unsafe {
            while !(*array).is_null() {
                found.push(CStr::from_ptr(*array).to_string_lossy().into_owned());
                array = array.add(1);
            }
        }
        found
    }

    #[test]
    fn builds_the_vectors_execve_and_the_shell_fallback_take() {
        let env = BTreeMap::from([
            (OsString::from("A"), OsString::from("1")),
            (OsString::from("PATH"), OsString::from("/bin")),
        ]);
        let image = ExecImage::new(
            Path::new("/usr/bin/prog"),
            "shown",
            ["x", "y z"],
            &env,
            Path::new("/tmp"),
        )
        .expect("no NUL");
        assert_eq!(strings(image.argv()), ["shown", "x", "y z"]);
        assert_eq!(strings(image.envp()), ["A=1", "PATH=/bin"]);
        assert_eq!(
            strings(image.shell_argv()),
            ["/bin/sh", "/usr/bin/prog", "x", "y z"]
        );
    }

    #[test]
    fn refuses_a_nul_byte() {
        let env = BTreeMap::new();
        let error = ExecImage::new(Path::new("/bin/true"), "a\0b", [], &env, Path::new("/"))
            .err()
            .map(|error| error.kind());
        assert_eq!(error, Some(io::ErrorKind::InvalidInput));
    }
}
