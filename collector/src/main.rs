//! The `aims-collector` binary: parses the command line into a typed command and runs it with
//! the [`aims_collector`] library. Everything else lives in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use aims_collector::commands::{self, Period};
use aims_collector::config::{Config, LogFormat};
use aims_collector::services::report::Format;
use aims_collector::tree_commands;
use anyhow::Context;
use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: ingest allocates and frees buffers of a few kB (bodies,
/// count arrays, statement parameters) on every thread, where glibc's arenas spent about a sixth
/// of the collector's CPU (BENCHMARKS.md, issue 14, round 11).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "aims-collector", version, about = "AIMS Monitor collector")]
enum Command {
    /// Run the collector.
    Run {
        /// Configuration file (TOML); defaults and AIMS_COLLECTOR__* variables apply without it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate objectives files; every error with file:line and field, exit status 1.
    Check {
        /// Objectives files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Collector configuration: also check that every receiver named in `notify:` exists.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A model's reference profile (JSON, repeatable): also check the feature, attribute,
        /// group and class names its objectives select against that model's schema.
        #[arg(long = "reference", value_name = "PROFILE")]
        references: Vec<PathBuf>,
    },
    /// Write the Clause 9 performance-evaluation report for a period.
    Report {
        #[command(flatten)]
        period: PeriodArgs,
        /// Only this model's objectives.
        #[arg(long)]
        model: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "html")]
        format: Format,
        /// Output file (standard output without it).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Configuration file locating the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Evidence log commands.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
    /// Act on nonconformities (Clause 10.2) through the running collector's API, with the
    /// corrective-action token from --token-file or AIMS_CORRECTIVE_TOKEN.
    Nonconformity {
        #[command(flatten)]
        target: NcTarget,
        #[command(subcommand)]
        command: NcCommand,
    },
}

/// Where the collector is and how to prove the role.
#[derive(Debug, clap::Args)]
struct NcTarget {
    /// The collector's base URL (else AIMS_COLLECTOR_URL, else http://127.0.0.1:9470).
    #[arg(long, global = true)]
    url: Option<String>,
    /// A file holding the bearer token (else AIMS_CORRECTIVE_TOKEN; AIMS_READ_TOKEN for list).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum NcCommand {
    /// List nonconformities (a read token, if the collector requires one).
    List {
        /// Only this status (open, acknowledged, cause_found, action_planned, verifying,
        /// effective, reopened, closed).
        #[arg(long)]
        status: Option<String>,
        /// Only this objective.
        #[arg(long)]
        objective: Option<String>,
        /// Only those with an action past due.
        #[arg(long)]
        overdue: bool,
    },
    /// Record that you react to a nonconformity.
    Acknowledge {
        /// The nonconformity's id.
        id: u64,
        /// Who acts (recorded in the evidence).
        #[arg(long)]
        actor: String,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Record its root cause.
    Cause {
        /// The nonconformity's id.
        id: u64,
        /// Who acts.
        #[arg(long)]
        actor: String,
        /// The root cause, in words.
        #[arg(long)]
        cause: String,
        /// Its category (data, model, process, ...).
        #[arg(long)]
        category: String,
    },
    /// Plan a corrective action.
    Action {
        /// The nonconformity's id.
        id: u64,
        /// Who plans it.
        #[arg(long)]
        actor: String,
        /// What will be done.
        #[arg(long)]
        description: String,
        /// Who does it.
        #[arg(long)]
        owner: String,
        /// When it is due: YYYY-MM-DD (end of that day, UTC), RFC 3339 or ms since the epoch.
        #[arg(long)]
        due: String,
        /// The Annex A control it addresses, e.g. A.6.2.6.
        #[arg(long)]
        control: String,
    },
    /// Mark a corrective action done; when all are, verification starts.
    Done {
        /// The nonconformity's id.
        id: u64,
        /// The action's id (from 1).
        action: u32,
        /// Who acts.
        #[arg(long)]
        actor: String,
    },
    /// Close a nonconformity verified effective.
    Close {
        /// The nonconformity's id.
        id: u64,
        /// Who acts.
        #[arg(long)]
        actor: String,
        /// Why.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// Runs `nonconformity ...`.
async fn nonconformity(target: NcTarget, command: NcCommand) -> anyhow::Result<ExitCode> {
    use aims_collector::corrective_commands::{self as cc, Act};
    use aims_collector::http::nonconformities::{Acknowledge, Actor, Cause, Plan};
    let url = cc::base_url(target.url);
    let file = target.token_file.as_deref();
    let act = match command {
        NcCommand::List {
            status,
            objective,
            overdue,
        } => {
            let mut query = Vec::new();
            query.extend(status.map(|s| ("status", s)));
            query.extend(objective.map(|o| ("objective", o)));
            if overdue {
                query.push(("overdue", "true".to_owned()));
            }
            return cc::list(&url, cc::token(file, "AIMS_READ_TOKEN")?, &query).await;
        }
        NcCommand::Acknowledge { id, actor, note } => {
            Act::Acknowledge(id, Acknowledge { actor, note })
        }
        NcCommand::Cause {
            id,
            actor,
            cause,
            category,
        } => Act::Cause(
            id,
            Cause {
                actor,
                cause,
                category,
            },
        ),
        NcCommand::Action {
            id,
            actor,
            description,
            owner,
            due,
            control,
        } => Act::Action(
            id,
            Plan {
                actor,
                description,
                owner,
                due,
                control,
            },
        ),
        NcCommand::Done { id, action, actor } => Act::Done(
            id,
            action,
            Actor {
                actor,
                note: String::new(),
            },
        ),
        NcCommand::Close { id, actor, note } => Act::Close(id, Actor { actor, note }),
    };
    cc::act(&url, cc::token(file, cc::TOKEN_ENV)?, act).await
}

/// A reporting period.
#[derive(Debug, clap::Args)]
struct PeriodArgs {
    /// Period start: YYYY-MM-DD (UTC), an RFC 3339 time or milliseconds since the epoch.
    #[arg(long)]
    from: String,
    /// Period end (a bare date includes that whole day).
    #[arg(long)]
    to: String,
}

impl From<PeriodArgs> for Period {
    fn from(p: PeriodArgs) -> Self {
        Period {
            from: p.from,
            to: p.to,
        }
    }
}

#[derive(Debug, Subcommand)]
enum EvidenceCommand {
    /// Recompute the hash chain; names the first broken record (exit status 1). With
    /// `--pack`, checks an exported pack offline instead of the database.
    #[command(group = clap::ArgGroup::new("checked").args(["since", "pack"]))]
    Verify {
        /// Configuration file locating the data directory.
        #[arg(long, conflicts_with = "pack")]
        config: Option<PathBuf>,
        /// An evidence pack written by `evidence export`.
        #[arg(long)]
        pack: Option<PathBuf>,
        /// An earlier signed checkpoint: also prove the log only grew since (consistency proof).
        #[arg(long, requires = "key", conflicts_with = "pack")]
        since: Option<PathBuf>,
        /// The collector's public key (as printed by `evidence key`), to check `--since`, or a
        /// pack's signed checkpoints and proofs.
        #[arg(long, requires = "checked")]
        key: Option<PathBuf>,
    },
    /// Write a new Ed25519 signing key for checkpoints; prints its public key.
    Keygen {
        /// The key file to create (never overwritten).
        #[arg(short, long)]
        output: PathBuf,
        /// Configuration file naming the log (`evidence.origin`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the public key of `evidence.key_file`, to give to auditors.
    Key {
        /// Configuration file naming the key.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Verify the chain and print a signed checkpoint of the whole log.
    Checkpoint {
        /// Configuration file naming the key and the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the inclusion proof of one record against a checkpoint, as JSON.
    Prove {
        /// The record's sequence number.
        #[arg(long)]
        seq: u64,
        /// The tree size to prove against (default: the whole log).
        #[arg(long)]
        size: Option<u64>,
        /// Configuration file locating the data directory (and the key).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write a period's report and evidence records, with its checkpoints, to a tar file.
    Export {
        #[command(flatten)]
        period: PeriodArgs,
        /// The tar file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Configuration file locating the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Command::parse() {
        Command::Check {
            files,
            config,
            references,
        } => commands::check(&files, config.as_deref(), &references),
        Command::Evidence {
            command:
                EvidenceCommand::Verify {
                    pack: Some(pack),
                    key,
                    ..
                },
        } => commands::verify_pack(&pack, key.as_deref()),
        Command::Evidence {
            command:
                EvidenceCommand::Verify {
                    config,
                    pack: None,
                    since: Some(since),
                    key: Some(key),
                },
        } => block_on(tree_commands::verify_since(&since, &key, config.as_deref())),
        Command::Evidence {
            command: EvidenceCommand::Verify {
                config, pack: None, ..
            },
        } => block_on(commands::verify(config.as_deref())),
        Command::Evidence {
            command: EvidenceCommand::Keygen { output, config },
        } => edge(tree_commands::keygen(&output, config.as_deref())),
        Command::Evidence {
            command: EvidenceCommand::Key { config },
        } => edge(tree_commands::key(config.as_deref())),
        Command::Evidence {
            command: EvidenceCommand::Checkpoint { config },
        } => block_on(tree_commands::checkpoint(config.as_deref())),
        Command::Evidence {
            command: EvidenceCommand::Prove { seq, size, config },
        } => block_on(tree_commands::prove(seq, size, config.as_deref())),
        Command::Evidence {
            command:
                EvidenceCommand::Export {
                    period,
                    output,
                    config,
                },
        } => block_on(commands::export(&period.into(), &output, config.as_deref())),
        Command::Report {
            period,
            model,
            format,
            output,
            config,
        } => block_on(commands::write_report(
            &period.into(),
            model,
            format,
            output.as_deref(),
            config.as_deref(),
        )),
        Command::Run { config } => block_on(run(config)),
        Command::Nonconformity { target, command } => block_on(nonconformity(target, command)),
    }
}

/// Loads the configuration, binds its address and serves until SIGINT or SIGTERM.
async fn run(config_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path.as_deref())?;
    aims_runtime::logging::init(config.logging.format == LogFormat::Json);
    let listener = std::net::TcpListener::bind(config.server.listen)
        .with_context(|| format!("binding {}", config.server.listen))?;
    aims_collector::server::run(config, listener, aims_runtime::shutdown::signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a command on a multi-threaded runtime and turns an error into exit status 1.
/// The exit status of a synchronous command, its error printed.
fn edge(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", aims_runtime::error::describe(e.as_ref()));
        ExitCode::FAILURE
    })
}

fn block_on(command: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(command));
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", aims_runtime::error::describe(e.as_ref()));
        ExitCode::FAILURE
    })
}
