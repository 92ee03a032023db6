//! Running `nft` and `conntrack`: by absolute path (never a `PATH` lookup), with an argument
//! vector (never a shell), a deadline after which the child is killed, bounded output, and the
//! child always reaped, also when it timed out.
//!
//! Why by hand: `std::process` has no deadline, and a process crate for one `try_wait` loop would
//! be a dependency in root code for a dozen lines.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How much of a child's stdout is kept: `nft -j list table` of the largest allowed table (its
/// element counters included) is well below this.
const MAX_STDOUT_BYTES: u64 = 16 * 1024 * 1024;
/// How much of a child's error text is kept and reported (journal, answers, logs).
pub const MAX_ERROR_CHARS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {secs} s and was killed")]
    TimedOut { program: PathBuf, secs: u64 },
}

/// A child that finished in time.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Its error text, at most [`MAX_ERROR_CHARS`] characters.
    pub stderr: String,
}

/// The system binary `name` from the standard system directories, in that order; the first
/// candidate when none exists yet (running it then fails with a clear "cannot run" error).
pub fn system_binary(name: &str) -> PathBuf {
    let candidates =
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(|dir| Path::new(dir).join(name));
    candidates
        .iter()
        .find(|path| path.is_file())
        .unwrap_or(&candidates[0])
        .clone()
}

/// `text` cut to [`MAX_ERROR_CHARS`] characters (on a character boundary), marked when cut.
pub fn truncate_error(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… (cut)", &text[..cut]),
    }
}

/// What becomes of a child's standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// Read (up to a bound) and returned.
    Keep,
    /// Sent to /dev/null (`conntrack -D` prints every entry it deletes).
    Discard,
}

/// Runs `program` with `args`, feeding it `stdin`, and waits at most `timeout`.
pub fn run(
    program: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
    stdout: Stdout,
    timeout: Duration,
) -> Result<Finished, ChildError> {
    let spawn_error = |source| ChildError::Spawn {
        program: program.to_owned(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(match stdout {
            Stdout::Keep => Stdio::piped(),
            Stdout::Discard => Stdio::null(),
        })
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let deadline = Instant::now() + timeout;
    let result = thread::scope(|scope| {
        // Pipes are fed and drained on their own threads, so a child that writes a lot before
        // reading (or the other way round) cannot deadlock against us.
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            scope.spawn(move || {
                let _ = pipe.write_all(input);
            });
        }
        let out = scope.spawn(move || read_bounded(stdout, MAX_STDOUT_BYTES));
        let err = scope.spawn(move || read_bounded(stderr, 64 * 1024));
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait(); // reaped: no zombie is left behind
                    break Err(ChildError::TimedOut {
                        program: program.to_owned(),
                        secs: timeout.as_secs().max(1),
                    });
                }
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(source) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(spawn_error(source));
                }
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        status.map(|status| (status, stdout, stderr))
    });
    let (status, stdout, stderr) = result?;
    Ok(Finished {
        status,
        stdout,
        stderr: truncate_error(&String::from_utf8_lossy(&stderr)),
    })
}

fn read_bounded(pipe: Option<impl Read>, limit: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let mut pipe = pipe.take(limit);
        let _ = pipe.read_to_end(&mut bytes);
        // Whatever is past the limit is read and dropped, so the child is never blocked on a
        // full pipe.
        let _ = std::io::copy(&mut pipe.into_inner(), &mut std::io::sink());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_past_its_deadline_is_killed_and_reaped() {
        let started = Instant::now();
        let error = run(
            Path::new("/bin/sleep"),
            &["30"],
            None,
            Stdout::Keep,
            Duration::from_millis(200),
        )
        .expect_err("timed out");
        assert!(matches!(error, ChildError::TimedOut { .. }), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "it did not wait for sleep"
        );
        // No zombie: the killed sleep has been waited for (other tests' children are not ours
        // to judge, so only a `sleep` counts).
        let zombies = std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|pids| {
                pids.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|stat| stat.contains("(sleep) Z "))
            })
            .count();
        assert_eq!(zombies, 0);
    }

    #[test]
    fn stdin_is_fed_output_read_and_error_text_cut() {
        let finished = run(
            Path::new("/bin/sh"),
            &[
                "-c",
                "/bin/cat; /usr/bin/head -c 5000 /dev/zero | /usr/bin/tr '\\0' x >&2; exit 3",
            ],
            Some(b"script"),
            Stdout::Keep,
            Duration::from_secs(10),
        )
        .expect("runs");
        assert_eq!(finished.status.code(), Some(3));
        assert_eq!(finished.stdout, b"script");
        assert!(finished.stderr.ends_with("… (cut)"), "{}", finished.stderr);
        assert_eq!(
            finished.stderr.chars().filter(|c| *c == 'x').count(),
            MAX_ERROR_CHARS
        );
    }

    #[test]
    fn the_environment_and_path_are_not_inherited() {
        // LD_PRELOAD, PATH and the like never reach the child.
        let finished = run(
            Path::new("/usr/bin/env"),
            &[],
            None,
            Stdout::Keep,
            Duration::from_secs(10),
        )
        .expect("runs");
        assert!(finished.status.success());
        assert_eq!(
            String::from_utf8_lossy(&finished.stdout),
            "",
            "the child saw an environment"
        );
    }

    #[test]
    fn a_missing_program_is_a_spawn_error_and_binaries_resolve_absolutely() {
        assert!(matches!(
            run(
                Path::new("/nonexistent/nft"),
                &[],
                None,
                Stdout::Keep,
                Duration::from_secs(1)
            ),
            Err(ChildError::Spawn { .. })
        ));
        assert!(system_binary("sh").is_absolute());
        assert!(truncate_error(&"é".repeat(600)).starts_with(&"é".repeat(MAX_ERROR_CHARS)));
    }
}
