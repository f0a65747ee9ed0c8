//! Project automation: `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! xtask orchestrates; it is not the only way to build. `cargo build -p dns-xdp`
//! works on its own once the toolchain is in place (`cargo xtask setup`).

mod bench;
mod build;
mod install;
mod run;
mod setup;
mod test;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "dns-xdp project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing need (rust-src, bpf-linker, Debian
    /// tools) and mount bpffs. Idempotent; quick when everything is present.
    Setup,
    /// Build the daemon (and, through its build.rs, the eBPF object).
    Build {
        /// Build the dev profile instead of release.
        #[arg(long)]
        debug: bool,
    },
    /// Build and run the daemon; arguments after `--` replace the default
    /// loopback demo arguments of `dns-xdp run`.
    Run {
        /// Run the dev-profile build instead of release.
        #[arg(long)]
        debug: bool,
        /// Arguments for `dns-xdp run`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Host unit tests, then the privileged end-to-end tests (root).
    Test {
        /// Give the privileged tests a release-profile daemon.
        #[arg(long)]
        release: bool,
        /// Run only the guest stage on this kernel (`debian-6.1`: Debian
        /// 12's stock kernel in a VM; `host`: the same tests here).
        #[arg(long, value_name = "KERNEL")]
        kernel: Option<String>,
        /// Leave out the guest stage of the full run (it boots a VM).
        #[arg(long, conflicts_with = "kernel")]
        skip_vm: bool,
        /// Extra arguments for both test binaries' harness (e.g. a filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Install the release binary, the systemd unit, the service user's
    /// sysusers entry, a sample configuration and the README (as root for
    /// the default prefix). Existing configuration is kept.
    Install {
        /// Installation prefix: PREFIX/bin, PREFIX/lib/systemd/system,
        /// PREFIX/etc (/etc for /usr).
        #[arg(long, default_value = "/usr/local", value_name = "PREFIX")]
        prefix: std::path::PathBuf,
        /// Stage the files under this root instead (for packaging); they
        /// still name their final paths.
        #[arg(long, value_name = "DIR")]
        destdir: Option<std::path::PathBuf>,
        /// Configuration directory [default: PREFIX/etc, or /etc for /usr].
        #[arg(long, value_name = "DIR")]
        sysconfdir: Option<std::path::PathBuf>,
        /// Install this dns-xdp binary instead of building the release one.
        #[arg(long, value_name = "FILE")]
        bin: Option<std::path::PathBuf>,
    },
    /// Benchmark against Knot DNS and NSD in network namespaces (root);
    /// writes target/bench/ and, with --write-md, BENCHMARKS.md. Flags go to
    /// dns-xdp-bench unchanged (`cargo xtask bench --help` lists them).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Print the context chain on one line; a returned anyhow error would add
    // a backtrace whenever RUST_BACKTRACE is set, burying the message.
    match run_command(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Setup => {
            setup::ensure(setup::Needs::ALL)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build { debug } => {
            setup::ensure(setup::Needs::BUILD)?;
            let bin = build::build_daemon(build::Profile::from_debug(debug), build::Features::Product)?;
            println!("built {}", util::display_path(&bin));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { debug, args } => run::run(build::Profile::from_debug(debug), args),
        Command::Test { release, kernel, skip_vm, args } => match kernel {
            Some(kernel) => test::vm_only(release, &kernel),
            None => test::test(release, !skip_vm, &args),
        },
        Command::Install { prefix, destdir, sysconfdir, bin } => {
            install::install(&install::Options { prefix, destdir, sysconfdir, bin })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { args } => bench::bench(&args),
    }
}
