//! The runner: boots the guest kernel in our KVM VMM or in QEMU and exits with the guest's
//! status. Only the guest console goes to stdout; the runner's own messages go to stderr.

mod affinity;
mod apf;
mod cli;
mod compare;
mod console;
mod guest_arch;
mod guest_build;
mod guest_cmdline;
mod inject;
mod insns;
mod lazy;
mod migrate;
mod netns;
mod outcome;
mod qemu;
mod run;
mod serve;
mod snapshot;
mod units;
mod vmm;

use std::error::Error;
use std::process::ExitCode;

use cli::Command;
use outcome::EXIT_RUNNER_ERROR;

fn main() -> ExitCode {
    match cli::parse().command {
        Command::Run(args) => match run::run(args) {
            Ok(report) => report.outcome.into_exit_code(),
            Err(error) => fail(&error),
        },
        Command::BuildGuest(args) => match guest_build::build(args.arch) {
            Ok(elf) => {
                println!("{}", elf.display());
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Command::Compare(args) => match compare::compare(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
        Command::Migrate(args) => match migrate::migrate(args) {
            Ok(report) => report.run.outcome.into_exit_code(),
            Err(error) => fail(&error),
        },
        Command::Snapshot(args) => match run::snapshot(args) {
            Ok(report) => report.outcome.into_exit_code(),
            Err(error) => fail(&error),
        },
        Command::ServeBench(args) => match serve::serve_bench(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
        Command::Insns(args) => match insns::insns(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
    }
}

fn fail(error: &dyn Error) -> ExitCode {
    eprintln!("runner: {}", chain(error));
    ExitCode::from(EXIT_RUNNER_ERROR)
}

/// `error` and its sources, outermost first, joined with ": ".
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open kernel /k")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_sources() {
        let error = Outer(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(chain(&error), "cannot open kernel /k: entity not found");
    }
}
