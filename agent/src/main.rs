//! The `aims-agent` command line: run the sidecar, build a reference profile, assess a dataset,
//! or simulate model traffic.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aims_agent::config::AgentConfig;
use aims_agent::simulate::SimulateArgs;
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

/// AIMS Monitor agent.
#[derive(Debug, Parser)]
#[command(name = "aims-agent", version, about)]
enum Command {
    /// Run the sidecar: HTTP ingest, windows, spool and shipping, until Ctrl-C or SIGTERM.
    Run {
        /// Agent configuration (TOML; `AIMS_AGENT__SECTION__KEY` overrides).
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a configuration (model schema and CloudEvents mapping) without running.
    Check {
        /// Agent configuration (TOML; `AIMS_AGENT__SECTION__KEY` overrides).
        #[arg(long)]
        config: PathBuf,
    },
    /// Send simulated credit-scoring traffic to an agent.
    Simulate {
        /// Agent base URL.
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        target: String,
        /// Events per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Traffic pattern(s), comma-separated: steady, drift, bias, degrade, label-delay,
        /// covariate-shift, correlated, correlated-drift.
        #[arg(long, value_delimiter = ',', default_value = "steady")]
        scenario: Vec<aims_agent::simulate::Scenario>,
        /// Stop after this long (e.g. `90s`, `5m`); runs until Ctrl-C when absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Send steady traffic for this long before the scenario starts.
        #[arg(long, value_parser = humantime::parse_duration)]
        switch_after: Option<std::time::Duration>,
        /// How much later labels follow their predictions under `label-delay`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
        label_delay: std::time::Duration,
        /// Random seed; the same seed sends the same events.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Events per request (default: a tenth of a second's worth, at most 1000).
        #[arg(long)]
        batch: Option<usize>,
        /// An agent configuration whose model schema the events are checked against first.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the events to this NDJSON file instead of sending them: rate × duration
        /// events in virtual time (one every 1/rate s from now), as fast as they are made.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Build a reference profile from a training or validation dataset.
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let cfg = AgentConfig::load(config)?;
    aims_agent::logging::init(cfg.log.json);
    runtime()?.block_on(aims_agent::server::run(cfg))?;
    Ok(ExitCode::SUCCESS)
}

fn check(config: &Path) -> anyhow::Result<ExitCode> {
    let cfg = AgentConfig::load(config)?;
    println!(
        "{}: ok (model {} {}, {} features, {} attributes{})",
        config.display(),
        cfg.model.name,
        cfg.model.version,
        cfg.model.features.len(),
        cfg.model.attributes.len(),
        match &cfg.cloudevents {
            Some(ce) => format!(", CloudEvents on {}", ce.path),
            None => String::new(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn simulate(args: SimulateArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(path) = config {
        let cfg = AgentConfig::load(path)?;
        let mut generator = aims_agent::simulate::Generator::new(args.seed);
        let sample = generator.event(&args.scenarios, std::time::SystemTime::now());
        let raw: aims_core::RawEvent = serde_json::from_value(sample.event)?;
        cfg.model.validate(raw, 0).with_context(|| {
            format!(
                "{}: the simulated events do not fit this model schema",
                path.display()
            )
        })?;
    }
    if let Some(path) = &args.output {
        let write = || -> std::io::Result<u64> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
            aims_agent::simulate::write_events(&args, std::time::SystemTime::now(), &mut out)
        };
        let written = write().with_context(|| format!("{}: cannot write", path.display()))?;
        println!("wrote {written} events to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    // The signal handlers are installed inside the runtime (they need its reactor).
    let report = runtime()?.block_on(async {
        aims_agent::simulate::run(&args, aims_agent::server::shutdown_signal()).await
    })?;
    println!(
        "sent {} events and {} labels; {} requests failed",
        report.events_sent, report.labels_sent, report.failed_requests
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let command = Command::parse();
    if !matches!(command, Command::Run { .. }) {
        aims_agent::logging::init(false);
    }
    let result = match command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Simulate {
            target,
            rate,
            scenario,
            duration,
            switch_after,
            label_delay,
            seed,
            batch,
            config,
            output,
        } => simulate(
            SimulateArgs {
                target,
                rate,
                scenarios: scenario,
                duration,
                switch_after,
                label_delay,
                seed,
                batch,
                output,
            },
            config.as_deref(),
        ),
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
            eprintln!("error: {}", aims_runtime::error::describe(e.as_ref()));
            ExitCode::from(2)
        }
    }
}
