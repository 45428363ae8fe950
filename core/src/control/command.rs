//! Control-file command lines: the grammar, and parsing a written line into a [`Command`].
//!
//! A write to `/.nokv/OP` carries exactly one command line: OP's arguments separated by
//! spaces or tabs, optionally ending in one newline (`\n` or `\r\n`). Arguments are quoted
//! the way a shell user expects:
//!
//! - `"..."`: everything up to the closing quote, where `\"` and `\\` stand for `"` and `\`;
//! - `'...'`: everything up to the closing quote, literally;
//! - outside quotes, `\` takes the next character literally (`/my\ dir`).
//!
//! Rejected with `EINVAL`, before anything changes: lines over [`LINE_MAX`] bytes, bytes that
//! are not UTF-8, control characters (so a second line, or binary), unbalanced quotes, the
//! wrong number of arguments, relative paths, `..` components, and paths inside `/.nokv/`
//! (except `/.nokv/snapshots/NAME[/...]` where a tree is read: clone sources and diff sides).
//! [`quote`] is the inverse used for output, so a listed path can be pasted back.

use std::borrow::Cow;

use crate::error::{ErrorKind, FsError, Result};
use crate::workspace::SNAPSHOTS_DIR;

/// Longest command line accepted, in bytes (the newline included).
pub const LINE_MAX: usize = 4096;

/// The control files that take commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `clone SRC DST`
    Clone,
    /// `snapshot PATH [NAME]`
    Snapshot,
    /// `rollback PATH SNAPSHOT`
    Rollback,
    /// `diff A B`
    Diff,
    /// `discard PATH`
    Discard,
    /// `promote FORK`
    Promote,
    /// `gc [--dry-run]`
    Gc,
}

impl Op {
    /// Every command file, in listing order.
    pub const ALL: [Op; 7] = [
        Op::Clone,
        Op::Snapshot,
        Op::Rollback,
        Op::Diff,
        Op::Discard,
        Op::Promote,
        Op::Gc,
    ];

    /// The control file's name.
    pub fn name(self) -> &'static str {
        match self {
            Op::Clone => "clone",
            Op::Snapshot => "snapshot",
            Op::Rollback => "rollback",
            Op::Diff => "diff",
            Op::Discard => "discard",
            Op::Promote => "promote",
            Op::Gc => "gc",
        }
    }

    /// The argument synopsis, for error messages.
    pub fn usage(self) -> &'static str {
        match self {
            Op::Clone => "clone SRC DST",
            Op::Snapshot => "snapshot PATH [NAME]",
            Op::Rollback => "rollback PATH SNAPSHOT",
            Op::Diff => "diff A B",
            Op::Discard => "discard PATH",
            Op::Promote => "promote FORK",
            Op::Gc => "gc [--dry-run]",
        }
    }
}

/// A parsed, validated command. Paths are normalized volume paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Clone the tree at `src` (a workspace directory or a snapshot tree) to `dst`.
    Clone {
        /// What to clone.
        src: String,
        /// Where the new workspace appears (must not exist; its parent must).
        dst: String,
    },
    /// Snapshot the directory at `path`.
    Snapshot {
        /// The directory.
        path: String,
        /// The label (`NAME` in `BASENAME@NAME`); auto-numbered when `None`.
        label: Option<String>,
    },
    /// Roll a workspace back to a snapshot.
    Rollback {
        /// The workspace root.
        path: String,
        /// The snapshot's name.
        snapshot: String,
    },
    /// List what differs between two trees.
    Diff {
        /// The first tree.
        a: String,
        /// The second tree.
        b: String,
    },
    /// Discard a workspace.
    Discard {
        /// The workspace root.
        path: String,
    },
    /// Promote a fork over its base.
    Promote {
        /// The fork's root.
        fork: String,
    },
    /// Collect garbage.
    Gc {
        /// Only report what would be freed.
        dry_run: bool,
    },
}

/// Parses `bytes`, written to the control file of `op`, into a command.
pub fn parse(op: Op, bytes: &[u8]) -> Result<Command> {
    let args = split(bytes)?;
    let want = |lo: usize, hi: usize| {
        if args.len() < lo || args.len() > hi {
            Err(invalid(format!(
                "{}: expected `{}`, got {} argument{}",
                op.name(),
                op.usage(),
                args.len(),
                if args.len() == 1 { "" } else { "s" }
            )))
        } else {
            Ok(())
        }
    };
    Ok(match op {
        Op::Clone => {
            want(2, 2)?;
            Command::Clone {
                src: tree_path(&args[0])?,
                dst: volume_path(&args[1])?,
            }
        }
        Op::Snapshot => {
            want(1, 2)?;
            Command::Snapshot {
                path: volume_path(&args[0])?,
                label: args.get(1).cloned(),
            }
        }
        Op::Rollback => {
            want(2, 2)?;
            Command::Rollback {
                path: volume_path(&args[0])?,
                snapshot: snapshot_name(&args[1])?,
            }
        }
        Op::Diff => {
            want(2, 2)?;
            Command::Diff {
                a: tree_path(&args[0])?,
                b: tree_path(&args[1])?,
            }
        }
        Op::Discard => {
            want(1, 1)?;
            Command::Discard {
                path: volume_path(&args[0])?,
            }
        }
        Op::Promote => {
            want(1, 1)?;
            Command::Promote {
                fork: volume_path(&args[0])?,
            }
        }
        Op::Gc => {
            want(0, 1)?;
            match args.first().map(String::as_str) {
                None => Command::Gc { dry_run: false },
                Some("--dry-run") => Command::Gc { dry_run: true },
                Some(other) => {
                    return Err(invalid(format!(
                        "gc: unknown argument {}; expected `{}`",
                        quote(other),
                        op.usage()
                    )))
                }
            }
        }
    })
}

/// Splits one command line into its arguments (see the module docs for the grammar).
pub fn split(bytes: &[u8]) -> Result<Vec<String>> {
    if bytes.len() > LINE_MAX {
        return Err(invalid(format!(
            "command line of {} bytes is longer than the {LINE_MAX}-byte limit",
            bytes.len()
        )));
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let line = std::str::from_utf8(body).map_err(|_| invalid("command line is not UTF-8"))?;
    if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(invalid(if c == '\n' {
            "one command per write: the line holds more than one newline".to_string()
        } else {
            format!("command line holds control character {:?}", c)
        }));
    }
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() {
            return Ok(args);
        }
        let mut arg = String::new();
        while let Some(c) = chars.next_if(|c| *c != ' ' && *c != '\t') {
            match c {
                '"' => loop {
                    match chars.next() {
                        None => return Err(invalid("unbalanced \" in command line")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => arg.push(e),
                            _ => {
                                return Err(invalid(
                                    "inside \"...\" a backslash may only escape \" or \\",
                                ))
                            }
                        },
                        Some(c) => arg.push(c),
                    }
                },
                '\'' => loop {
                    match chars.next() {
                        None => return Err(invalid("unbalanced ' in command line")),
                        Some('\'') => break,
                        Some(c) => arg.push(c),
                    }
                },
                '\\' => match chars.next() {
                    Some(e) => arg.push(e),
                    None => return Err(invalid("command line ends in a lone backslash")),
                },
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
}

/// `s` as it would be written in a command line: unchanged when it holds no blank, quote,
/// backslash or control character, else in double quotes with `"` and `\` escaped (control
/// characters, which a command line cannot hold, are shown as `\u{..}` escapes).
pub fn quote(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && !s
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '\'' || c == '\\' || c.is_control());
    if plain {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// A volume path that names a place in a workspace: absolute, no `..`, not inside `/.nokv/`.
fn volume_path(arg: &str) -> Result<String> {
    let p = normal(arg)?;
    if p == "/.nokv" || p.starts_with("/.nokv/") {
        return Err(invalid(format!(
            "{}: paths inside /.nokv/ are not allowed here",
            quote(arg)
        )));
    }
    Ok(p)
}

/// A volume path of a tree that is only read: a workspace path or a snapshot tree
/// (`/.nokv/snapshots/NAME[/...]`).
fn tree_path(arg: &str) -> Result<String> {
    let p = normal(arg)?;
    if let Some(rest) = p.strip_prefix(SNAPSHOTS_DIR) {
        if rest.len() > 1 && rest.starts_with('/') {
            return Ok(p);
        }
    }
    volume_path(arg)
}

/// A snapshot name, given bare (`base@v1`) or as its tree (`/.nokv/snapshots/base@v1`).
fn snapshot_name(arg: &str) -> Result<String> {
    let name = if arg.starts_with('/') {
        let p = normal(arg)?;
        match p
            .strip_prefix(SNAPSHOTS_DIR)
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(name) if !name.is_empty() && !name.contains('/') => name.to_string(),
            _ => {
                return Err(invalid(format!(
                    "{}: a snapshot is named `NAME` or `{SNAPSHOTS_DIR}/NAME`",
                    quote(arg)
                )))
            }
        }
    } else {
        arg.to_string()
    };
    crate::fs::check_name(name.as_bytes())
        .map_err(|_| invalid(format!("{}: not a snapshot name", quote(arg))))?;
    Ok(name)
}

/// Normalizes an absolute volume path, rejecting relative paths and `..` components.
fn normal(arg: &str) -> Result<String> {
    if !arg.starts_with('/') {
        return Err(invalid(format!(
            "{}: not a volume path (volume paths start with /)",
            quote(arg)
        )));
    }
    crate::workspace::normalize(arg).map_err(|e| invalid(format!("{}: {e}", quote(arg))))
}

fn invalid(msg: impl Into<String>) -> FsError {
    FsError::new(ErrorKind::InvalidArgument, msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(op: Op, line: &str) -> Result<Command> {
        parse(op, line.as_bytes())
    }

    #[test]
    fn every_op_parses_its_documented_form() {
        assert_eq!(
            cmd(Op::Clone, "/base /forks/agent-1\n").unwrap(),
            Command::Clone {
                src: "/base".into(),
                dst: "/forks/agent-1".into()
            }
        );
        assert_eq!(
            cmd(Op::Snapshot, "/base v1").unwrap(),
            Command::Snapshot {
                path: "/base".into(),
                label: Some("v1".into())
            }
        );
        assert_eq!(
            cmd(Op::Snapshot, "/base/\r\n").unwrap(),
            Command::Snapshot {
                path: "/base".into(),
                label: None
            }
        );
        assert_eq!(
            cmd(Op::Rollback, "/f /.nokv/snapshots/base@v1").unwrap(),
            Command::Rollback {
                path: "/f".into(),
                snapshot: "base@v1".into()
            }
        );
        assert_eq!(
            cmd(Op::Diff, "/.nokv/snapshots/base@v1/src\t/f//src").unwrap(),
            Command::Diff {
                a: "/.nokv/snapshots/base@v1/src".into(),
                b: "/f/src".into()
            }
        );
        assert_eq!(
            cmd(Op::Discard, "/f").unwrap(),
            Command::Discard { path: "/f".into() }
        );
        assert_eq!(
            cmd(Op::Promote, "/f").unwrap(),
            Command::Promote { fork: "/f".into() }
        );
        assert_eq!(cmd(Op::Gc, "\n").unwrap(), Command::Gc { dry_run: false });
        assert_eq!(cmd(Op::Gc, "").unwrap(), Command::Gc { dry_run: false });
        assert_eq!(
            cmd(Op::Gc, "--dry-run").unwrap(),
            Command::Gc { dry_run: true }
        );
    }

    #[test]
    fn quoting_rules() {
        assert_eq!(
            split(br#""/my dir" '/it''s' /a\ b "q\"\\""#).unwrap(),
            vec!["/my dir", "/its", "/a b", "q\"\\"]
        );
        assert_eq!(split(b"  a\t\tb  ").unwrap(), vec!["a", "b"]);
        assert_eq!(split(b"\"\"").unwrap(), vec![""]);
        for bad in [&b"\"open"[..], b"'open", b"a\\", br#""\n""#] {
            assert_eq!(
                split(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn malformed_lines_are_invalid() {
        let long = format!("/{} /b", "a".repeat(LINE_MAX));
        let cases: Vec<(Op, Vec<u8>)> = vec![
            (Op::Clone, b"/a".to_vec()),
            (Op::Clone, b"/a /b /c".to_vec()),
            (Op::Clone, b"a /b".to_vec()),
            (Op::Clone, b"/a ../b".to_vec()),
            (Op::Clone, b"/a /b/../../etc".to_vec()),
            (Op::Clone, b"/a /.nokv/x".to_vec()),
            (Op::Clone, b"/.nokv/clone /x".to_vec()),
            (Op::Clone, b"/.nokv/snapshots /x".to_vec()),
            (Op::Clone, b"/a\n/b\n".to_vec()),
            (Op::Clone, b"/a \x00/b".to_vec()),
            (Op::Clone, b"/a /\xff\xfe".to_vec()),
            (Op::Clone, long.into_bytes()),
            (Op::Snapshot, b"".to_vec()),
            (Op::Snapshot, b"/.nokv".to_vec()),
            (Op::Rollback, b"/a ../x".to_vec()),
            (Op::Rollback, b"/a /base".to_vec()),
            (Op::Rollback, b"/a a/b".to_vec()),
            (Op::Diff, b"/a".to_vec()),
            (Op::Discard, b"".to_vec()),
            (Op::Promote, b"relative".to_vec()),
            (Op::Gc, b"now".to_vec()),
            (Op::Gc, b"--dry-run extra".to_vec()),
        ];
        for (op, line) in cases {
            let e = parse(op, &line).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{op:?} {line:?}: {e}");
            assert!(!e.to_string().contains('\n'), "one-line message: {e}");
        }
    }

    #[test]
    fn quote_is_the_inverse_of_split() {
        for s in ["/plain", "/my dir", "/q\"uote", "/back\\slash", "/it's", ""] {
            let q = quote(s);
            assert_eq!(split(q.as_bytes()).unwrap(), vec![s.to_string()], "{q}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(op in 0usize..7, bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(Op::ALL[op], &bytes);
        }

        #[test]
        fn quoted_arguments_round_trip(args in proptest::collection::vec("[ -~]{0,20}", 0..5)) {
            let line: Vec<String> = args.iter().map(|a| quote(a).into_owned()).collect();
            let line = line.join(" ");
            prop_assert_eq!(split(line.as_bytes()).unwrap(), args);
        }
    }
}
