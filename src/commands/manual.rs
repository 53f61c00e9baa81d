//! `switchboard completions SHELL` and `switchboard man`: shell completions and man pages,
//! generated from the clap definitions that `main.rs` hands in, so that they never drift
//! from the flags. Knows nothing of the flags itself.

use std::path::Path;

use clap_complete::Shell;

use super::Output;

/// The completion script for `shell`, for the program named `bin`.
pub fn completions(mut command: clap::Command, shell: Shell) -> Output {
    let bin = command.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, bin, &mut script);
    Output {
        stdout: String::from_utf8_lossy(&script).into_owned(),
        ..Output::default()
    }
}

/// The man page of the whole command (roff, section 1), or, with `out`, one page per
/// subcommand beside it (`switchboard.1`, `switchboard-serve.1`, …) written into that
/// folder, since only those list each subcommand's flags.
pub fn man(command: clap::Command, out: Option<&Path>) -> Output {
    let fail = |what: String, e: std::io::Error| Output {
        stderr: format!("error: cannot write {what}: {e}\n"),
        code: 1,
        ..Output::default()
    };
    let Some(dir) = out else {
        let mut page = Vec::new();
        // As `generate_to` does: `help` has no page of its own to point to.
        let command = command.disable_help_subcommand(true);
        if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
            return fail("the man page".into(), e);
        }
        return Output {
            stdout: String::from_utf8_lossy(&page).into_owned(),
            ..Output::default()
        };
    };
    if let Err(e) =
        std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir))
    {
        return fail(format!("man pages into {}", dir.display()), e);
    }
    Output {
        stdout: format!("wrote man pages into {}\n", dir.display()),
        ..Output::default()
    }
}
