//! The child's environment under a `process/start` `envPolicy`, built the way
//! Codex's exec-server builds it (its `child_env` over the shell-environment
//! policy of `codex-rs/config/src/shell_environment.rs`), so that a Codex
//! client gets the same variables from this server as from its own.
//!
//! The steps, in Codex's order: start from `inherit` (all of the server's
//! variables, the core ones, or none); unless `ignoreDefaultExcludes`, drop
//! names matching `*KEY*`, `*SECRET*` or `*TOKEN*`; drop names matching
//! `exclude`; insert `set`; when `includeOnly` is not empty, keep only names
//! matching it. The caller then applies the request's `env` over the result.
//! Patterns are case-insensitive globs over the whole name. Pure: the
//! server's variables come in as an argument, so every rule is unit-tested.

use std::collections::BTreeMap;
use std::ffi::OsString;

use exec_protocol::{EnvInherit, EnvPolicy};

/// The variables `inherit: "core"` keeps on Unix, matched exactly (Codex's
/// common and Unix core lists together).
const CORE_VARIABLES: &[&str] = &[
    "PATH", "SHELL", "TMPDIR", "TEMP", "TMP", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME",
    "USER",
];

/// The patterns dropped unless `ignoreDefaultExcludes`: names that usually
/// hold credentials.
const DEFAULT_EXCLUDES: &[&str] = &["*KEY*", "*SECRET*", "*TOKEN*"];

/// The environment `policy` builds from the server's `variables`, before the
/// request's `env` is applied. A name that is not UTF-8 is matched in its
/// lossy form (Codex's server would refuse to run with one at all).
pub(crate) fn build(
    variables: impl IntoIterator<Item = (OsString, OsString)>,
    policy: &EnvPolicy,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = match policy.inherit {
        EnvInherit::All => variables.into_iter().collect(),
        EnvInherit::None => BTreeMap::new(),
        EnvInherit::Core => variables
            .into_iter()
            .filter(|(name, _)| CORE_VARIABLES.iter().any(|core| name == core))
            .collect(),
    };
    if !policy.ignore_default_excludes {
        env.retain(|name, _| !matches_any(name, DEFAULT_EXCLUDES));
    }
    if !policy.exclude.is_empty() {
        env.retain(|name, _| !matches_any(name, &policy.exclude));
    }
    env.extend(
        policy
            .set
            .iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value))),
    );
    if !policy.include_only.is_empty() {
        env.retain(|name, _| matches_any(name, &policy.include_only));
    }
    env
}

/// Whether `name` matches one of `patterns`.
fn matches_any(name: &OsString, patterns: &[impl AsRef<str>]) -> bool {
    let name = name.to_string_lossy();
    patterns
        .iter()
        .any(|pattern| glob_matches(pattern.as_ref(), &name))
}

/// Whether the whole of `name` matches `pattern`, ignoring ASCII case: `*`
/// matches any run of characters (also none), `?` exactly one, and every
/// other character itself. Iterative, with one backtrack point for the last
/// `*`, so a hostile pattern costs at most `pattern × name` steps.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name position it was last resumed at.
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&expected) if expected == '?' || expected.eq_ignore_ascii_case(&name[n]) => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, resumed)) => {
                    p = star + 1;
                    n = resumed + 1;
                    backtrack = Some((star, resumed + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&rest| rest == '*')
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn server_variables() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LANG", "C.UTF-8"),
            ("API_KEY", "k"),
            ("github_token", "t"),
            ("MY_SECRET_THING", "s"),
            ("AWS_REGION", "eu"),
            ("AWS_PROFILE", "p"),
            ("EDITOR", "vi"),
        ]
        .into_iter()
        .map(|(name, value)| (OsString::from(name), OsString::from(value)))
        .collect()
    }

    fn policy(inherit: EnvInherit) -> EnvPolicy {
        EnvPolicy {
            inherit,
            ignore_default_excludes: false,
            exclude: Vec::new(),
            set: Default::default(),
            include_only: Vec::new(),
        }
    }

    fn names(env: &BTreeMap<OsString, OsString>) -> Vec<&str> {
        env.keys().filter_map(|name| name.to_str()).collect()
    }

    #[test]
    fn inherit_all_drops_the_default_excludes_case_insensitively() {
        let env = build(server_variables(), &policy(EnvInherit::All));
        assert_eq!(
            names(&env),
            [
                "AWS_PROFILE",
                "AWS_REGION",
                "EDITOR",
                "HOME",
                "LANG",
                "PATH"
            ]
        );
    }

    #[test]
    fn ignore_default_excludes_keeps_credentials() {
        let mut policy = policy(EnvInherit::All);
        policy.ignore_default_excludes = true;
        assert_eq!(build(server_variables(), &policy).len(), 9);
    }

    #[test]
    fn inherit_core_keeps_only_the_core_names() {
        let env = build(server_variables(), &policy(EnvInherit::Core));
        assert_eq!(names(&env), ["HOME", "LANG", "PATH"]);
    }

    #[test]
    fn inherit_none_starts_empty_and_set_adds() {
        let mut policy = policy(EnvInherit::None);
        policy.set.insert(String::from("CI"), String::from("1"));
        // `set` comes after the excludes, so it may set an excluded name.
        policy
            .set
            .insert(String::from("MY_TOKEN"), String::from("x"));
        let env = build(server_variables(), &policy);
        assert_eq!(names(&env), ["CI", "MY_TOKEN"]);
    }

    #[test]
    fn exclude_then_set_then_include_only() {
        let mut policy = policy(EnvInherit::All);
        policy.exclude = vec![String::from("aws_*")];
        policy
            .set
            .insert(String::from("AWS_REGION"), String::from("us"));
        policy
            .set
            .insert(String::from("DROPPED"), String::from("1"));
        policy.include_only = vec![String::from("aws_*"), String::from("PAT?")];
        let env = build(server_variables(), &policy);
        assert_eq!(names(&env), ["AWS_REGION", "PATH"]);
        assert_eq!(
            env.get(&OsString::from("AWS_REGION")),
            Some(&OsString::from("us"))
        );
    }

    #[test]
    fn globs_match_the_whole_name() {
        assert!(glob_matches("*KEY*", "api_key"));
        assert!(glob_matches("*KEY*", "KEY"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(glob_matches("a*b", "abab"));
        assert!(glob_matches("?", "x"));
        assert!(glob_matches("", ""));
        assert!(glob_matches("**", ""));
        assert!(!glob_matches("PATH", "PATHEXT"));
        assert!(!glob_matches("?", ""));
        assert!(!glob_matches("a*b", "abc"));
        assert!(!glob_matches("", "x"));
    }
}
