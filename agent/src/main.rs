//! The `aims-agent` command line: run the sidecar, build a reference profile, assess a dataset,
//! or simulate model traffic.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// AIMS Monitor agent.
#[derive(Debug, Parser)]
#[command(name = "aims-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build or inspect reference profiles.
    Reference {
        #[command(subcommand)]
        command: ReferenceCommand,
    },
    /// Compute every metric for a current dataset against a reference dataset, and judge
    /// objectives (exit 1 when one is breached, 2 on bad input).
    Assess {
        /// Agent configuration (model schema and column mapping).
        #[arg(long)]
        config: PathBuf,
        /// Reference dataset (CSV or NDJSON), or a profile JSON.
        #[arg(long)]
        reference: PathBuf,
        /// Current dataset (CSV or NDJSON).
        #[arg(long)]
        current: PathBuf,
        /// Objectives file to judge.
        #[arg(long)]
        objectives: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
enum ReferenceCommand {
    /// Build a reference profile from a training or validation dataset.
    Build {
        /// Agent configuration (model schema and column mapping).
        #[arg(long)]
        config: PathBuf,
        /// Dataset (CSV or NDJSON).
        #[arg(long)]
        data: PathBuf,
        /// Where to write the profile JSON.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Output format of `assess`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON document.
    Json,
    /// A readable summary.
    Text,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    aims_agent::logging::init(false);
    let result = match cli.command {
        Command::Reference {
            command:
                ReferenceCommand::Build {
                    config,
                    data,
                    output,
                },
        } => {
            aims_agent::assess::build_reference(&config, &data, &output).map(|()| ExitCode::SUCCESS)
        }
        Command::Assess {
            config,
            reference,
            current,
            objectives,
            format,
        } => aims_agent::assess::run(&aims_agent::assess::AssessArgs {
            config,
            reference,
            current,
            objectives,
            json: matches!(format, Format::Json),
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
