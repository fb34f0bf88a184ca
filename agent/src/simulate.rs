//! `aims-agent simulate`: realistic credit-scoring traffic for the quickstart, demos and tests.
//!
//! Events follow the same generative model as the example data (`config/examples/reference.csv`):
//! log-normal income, beta debt ratio, gamma credit history, a logistic "true" model for the
//! label and a noisy view of it as the model's score. Scenarios bend that model:
//!
//! - `steady`: like the reference;
//! - `drift`: income down 30 %, debt ratios up;
//! - `bias`: the model's score for gender F is pushed down, so F's selection rate falls well
//!   below M's;
//! - `degrade`: the model's view gets much noisier, so accuracy falls;
//! - `label-delay`: events carry no label; labels are posted to `/v1/labels` later;
//! - `covariate-shift`: the applicants change, the outcome model does not (no concept drift):
//!   incomes and debt ratios cluster tightly around their medians, so more applicants sit near
//!   the decision boundary and accuracy falls. Labels are withheld: events carry none and none
//!   are posted, so only CBPE's `estimated_*` metrics can see the fall;
//! - `correlated`: income and age move together (both drawn from one normal deviate,
//!   correlation 0.95), each with exactly its steady marginal: a population with a real joint
//!   structure, to build a reference from (`--output`). A PCA fitted on the steady population's
//!   independent features keeps arbitrary directions, so what a change of correlation does to
//!   its reconstruction error depends on the sample (+0.02 over the threshold, or below it);
//!   fitted on this one, the income-against-age direction is the one it always drops;
//! - `correlated-drift`: against a `correlated` reference, the correlation reverses (−0.95):
//!   each feature keeps exactly its marginal (every univariate drift statistic stays quiet)
//!   while the joint distribution moves along the direction the PCA dropped, which only a
//!   multivariate statistic such as the PCA `reconstruction_error` sees.
//!
//! Scenarios combine (`--scenario bias,drift`), and `--switch-after` sends steady traffic first.
//! The same `--seed` gives the same events. With `--output FILE` the events are written as
//! NDJSON (the agent's event shape, labels inline) in virtual time instead of being sent: a
//! dataset for `aims-agent reference build` or `assess`.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// A traffic pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Like the reference.
    Steady,
    /// Income down, debt up.
    Drift,
    /// Selection rate for F well below M.
    Bias,
    /// Accuracy falls.
    Degrade,
    /// Labels arrive later on `/v1/labels`.
    LabelDelay,
    /// The population shifts, the outcome model holds, and no label ever arrives.
    CovariateShift,
    /// Income and age move together (correlation 0.95); both marginals as steady.
    Correlated,
    /// The income-age correlation of `Correlated` reverses; both marginals hold.
    CorrelatedDrift,
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "steady" => Ok(Self::Steady),
            "drift" => Ok(Self::Drift),
            "bias" => Ok(Self::Bias),
            "degrade" => Ok(Self::Degrade),
            "label-delay" => Ok(Self::LabelDelay),
            "covariate-shift" => Ok(Self::CovariateShift),
            "correlated" => Ok(Self::Correlated),
            "correlated-drift" => Ok(Self::CorrelatedDrift),
            other => Err(format!(
                "unknown scenario {other:?}; use steady, drift, bias, degrade, label-delay, \
                 covariate-shift, correlated or correlated-drift"
            )),
        }
    }
}

/// What to send, where and how fast.
#[derive(Debug, Clone)]
pub struct SimulateArgs {
    /// Agent base URL.
    pub target: String,
    /// Events per second.
    pub rate: f64,
    /// Scenarios in force (after `switch_after`).
    pub scenarios: Vec<Scenario>,
    /// Stop after this long; run until interrupted when absent.
    pub duration: Option<Duration>,
    /// Send steady traffic for this long first.
    pub switch_after: Option<Duration>,
    /// Delay of labels under `label-delay`.
    pub label_delay: Duration,
    /// Random seed.
    pub seed: u64,
    /// Events per request (default: a tenth of a second's worth, 1 to 1000).
    pub batch: Option<usize>,
    /// Write the events to this NDJSON file ([`write_events`]) instead of sending them.
    pub output: Option<std::path::PathBuf>,
}

/// What the simulator did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulateReport {
    /// Events sent in requests the agent accepted.
    pub events_sent: u64,
    /// Labels sent in requests the agent accepted.
    pub labels_sent: u64,
    /// Requests that failed (connection error or non-2xx).
    pub failed_requests: u64,
}

/// A simulator failure.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// Bad arguments.
    #[error("{0}")]
    Args(String),
    /// The HTTP client cannot be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Gamma with an integer shape: a sum of exponentials.
fn gamma_int(rng: &mut StdRng, shape: u32, scale: f64) -> f64 {
    (0..shape)
        .map(|_| -rng.gen_range(f64::EPSILON..1.0f64).ln())
        .sum::<f64>()
        * scale
}

fn beta_int(rng: &mut StdRng, a: u32, b: u32) -> f64 {
    let x = gamma_int(rng, a, 1.0);
    let y = gamma_int(rng, b, 1.0);
    x / (x + y)
}

fn poisson(rng: &mut StdRng, lambda: f64) -> u32 {
    let limit = (-lambda).exp();
    let mut k = 0;
    let mut p: f64 = rng.gen();
    while p > limit {
        k += 1;
        p *= rng.gen::<f64>();
    }
    k
}

fn pick<'a>(rng: &mut StdRng, items: &[(&'a str, f64)]) -> &'a str {
    let mut x: f64 = rng.gen();
    for (name, p) in items {
        if x < *p {
            return name;
        }
        x -= p;
    }
    items[items.len() - 1].0
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Correlation of the income and age deviates under `correlated` (and, reversed, under
/// `correlated-drift`).
pub const CORRELATION: f64 = 0.95;

/// One generated prediction: the event JSON and its true label.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The event as sent.
    pub event: serde_json::Value,
    /// Its id.
    pub id: String,
    /// Its true label.
    pub label: u8,
}

/// Deterministic generator of credit-scoring events.
pub struct Generator {
    rng: StdRng,
    next_id: u64,
    run: String,
}

impl Generator {
    /// A generator; ids are `sim-{seed}-{n}`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            next_id: 0,
            run: format!("sim-{seed}"),
        }
    }

    /// The next event at time `ts` under `scenarios`.
    pub fn event(&mut self, scenarios: &[Scenario], ts: SystemTime) -> Generated {
        let has = |s| scenarios.contains(&s);
        let rng = &mut self.rng;
        let shift = has(Scenario::CovariateShift);
        let income_scale = if has(Scenario::Drift) { 0.7 } else { 1.0 };
        let income_z = normal(rng);
        let (income_median, income_sd) = if shift {
            (50000.0, 0.15)
        } else {
            (52000.0, 0.45)
        };
        let income = round(
            (f64::ln(income_median) + income_sd * income_z).exp() * income_scale,
            2,
        );
        let mut age_z = normal(rng);
        let rho = if has(Scenario::CorrelatedDrift) {
            -CORRELATION
        } else if has(Scenario::Correlated) {
            CORRELATION
        } else {
            0.0
        };
        if rho != 0.0 {
            // Still a standard normal, so age's marginal is unchanged; corr(z, income_z) = rho.
            age_z = rho * income_z + (1.0 - rho * rho).sqrt() * age_z;
        }
        let age = (42.0 + 13.0 * age_z).round().clamp(18.0, 90.0);
        let debt_ratio = round(
            if has(Scenario::Drift) {
                beta_int(rng, 3, 4)
            } else if shift {
                beta_int(rng, 10, 25)
            } else {
                beta_int(rng, 2, 5)
            },
            4,
        );
        let history = gamma_int(rng, 3, 30.0).round().max(1.0);
        let accounts = poisson(rng, 4.0) + 1;
        let region = pick(
            rng,
            &[
                ("north", 0.3),
                ("south", 0.25),
                ("east", 0.25),
                ("west", 0.2),
            ],
        );
        let employment = pick(
            rng,
            &[
                ("employed", 0.6),
                ("self-employed", 0.15),
                ("unemployed", 0.1),
                ("retired", 0.15),
            ],
        );
        let gender = pick(rng, &[("F", 0.49), ("M", 0.49), ("X", 0.02)]);
        let age_band = match age as u32 {
            0..=29 => "18-29",
            30..=39 => "30-39",
            40..=49 => "40-49",
            50..=64 => "50-64",
            _ => "65+",
        };
        let employment_effect = match employment {
            "employed" => 0.4,
            "self-employed" => 0.1,
            "unemployed" => -1.0,
            _ => 0.0,
        };
        let truth = 0.2 + 0.9 * ((income / income_scale).ln() - 52000f64.ln()) / 0.45
            - 1.1 * (debt_ratio - 0.2857) / 0.16
            + 0.4 * (history - 90.0) / 52.0
            + 0.15 * (age - 42.0) / 13.0
            + employment_effect;
        let label = u8::from(rng.gen::<f64>() < sigmoid(truth));
        let noise = if has(Scenario::Degrade) { 3.0 } else { 0.6 };
        let mut model = truth + noise * normal(rng);
        if has(Scenario::Bias) && gender == "F" {
            model -= 1.8;
        }
        let score = round(sigmoid(model).clamp(0.001, 0.999), 6);
        let prediction = u8::from(score >= 0.5);
        let latency = round((12f64.ln() + 0.5 * normal(rng)).exp(), 3);
        self.next_id += 1;
        let id = format!("{}-{}", self.run, self.next_id);
        let mut event = json!({
            "id": id,
            "ts": humantime::format_rfc3339_millis(ts).to_string(),
            "features": {
                "income": income, "age": age, "debt_ratio": debt_ratio,
                "credit_history_months": history, "num_accounts": accounts,
                "region": region, "employment": employment,
            },
            "attributes": {"gender": gender, "age_band": age_band},
            "prediction": {"label": prediction, "score": score},
            "latency_ms": latency,
        });
        if !has(Scenario::LabelDelay) && !shift {
            event["label"] = json!(label);
        }
        Generated { event, id, label }
    }
}

fn ndjson<'a>(items: impl Iterator<Item = &'a serde_json::Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for v in items {
        if serde_json::to_writer(&mut out, v).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> bool {
    match client
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            tracing::warn!(%status, body = %text.chars().take(300).collect::<String>(), "agent refused a batch");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not reach the agent");
            false
        }
    }
}

/// Writes `rate × duration` events to `out` as NDJSON instead of sending them, in virtual
/// time: the first is stamped `start`, the next 1/rate s later, and so on, and `switch_after`
/// counts in that time too; nothing waits. Labels are inline, as the scenarios send them
/// (none under `label-delay` or `covariate-shift`). Returns the number of events written.
pub fn write_events(
    args: &SimulateArgs,
    start: SystemTime,
    out: &mut impl std::io::Write,
) -> Result<u64, std::io::Error> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_owned());
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(invalid("--rate must be a positive number"));
    }
    let duration = args
        .duration
        .ok_or_else(|| invalid("--output needs --duration (rate × duration events)"))?;
    let count = (duration.as_secs_f64() * args.rate).round() as u64;
    let mut generator = Generator::new(args.seed);
    for i in 0..count {
        let offset = Duration::from_secs_f64(i as f64 / args.rate);
        let steady = args.switch_after.is_some_and(|d| offset < d);
        let scenarios: &[Scenario] = if steady {
            &[Scenario::Steady]
        } else {
            &args.scenarios
        };
        let g = generator.event(scenarios, start + offset);
        serde_json::to_writer(&mut *out, &g.event)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(count)
}

/// Sends traffic until the duration passes or `stop` resolves.
pub async fn run(
    args: &SimulateArgs,
    stop: impl std::future::Future<Output = ()>,
) -> Result<SimulateReport, SimulateError> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(SimulateError::Args(
            "--rate must be a positive number".into(),
        ));
    }
    let batch = args
        .batch
        .unwrap_or_else(|| ((args.rate / 10.0).round() as usize).clamp(1, 1000))
        .max(1);
    let period = Duration::from_secs_f64(batch as f64 / args.rate);
    let base = args.target.trim_end_matches('/');
    let (events_url, labels_url) = (format!("{base}/v1/events"), format!("{base}/v1/labels"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut generator = Generator::new(args.seed);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = SimulateReport::default();
    let mut delayed: VecDeque<(Instant, serde_json::Value)> = VecDeque::new();
    tokio::pin!(stop);
    tracing::info!(target = %base, rate = args.rate, batch, scenarios = ?args.scenarios, "simulating");
    loop {
        tokio::select! {
            _ = ticker.tick() => {},
            () = &mut stop => break,
        }
        let elapsed = started.elapsed();
        if args.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        let steady = args.switch_after.is_some_and(|d| elapsed < d);
        let scenarios: &[Scenario] = if steady {
            &[Scenario::Steady]
        } else {
            &args.scenarios
        };
        let now = SystemTime::now();
        let generated: Vec<Generated> = (0..batch)
            .map(|_| generator.event(scenarios, now))
            .collect();
        if scenarios.contains(&Scenario::LabelDelay) {
            let due = Instant::now() + args.label_delay;
            delayed.extend(
                generated
                    .iter()
                    .map(|g| (due, json!({"id": g.id, "label": g.label}))),
            );
        }
        if post(
            &client,
            &events_url,
            ndjson(generated.iter().map(|g| &g.event)),
        )
        .await
        {
            report.events_sent += generated.len() as u64;
        } else {
            report.failed_requests += 1;
        }
        let now = Instant::now();
        let ready = delayed.iter().take_while(|(due, _)| *due <= now).count();
        if ready > 0 {
            let labels: Vec<serde_json::Value> = delayed.drain(..ready).map(|(_, l)| l).collect();
            if post(&client, &labels_url, ndjson(labels.iter())).await {
                report.labels_sent += labels.len() as u64;
            } else {
                report.failed_requests += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(scenarios: &[Scenario], gender: &str) -> f64 {
        let mut g = Generator::new(1);
        let (mut n, mut pos) = (0, 0);
        for _ in 0..20_000 {
            let e = g.event(scenarios, SystemTime::UNIX_EPOCH).event;
            if e["attributes"]["gender"] == gender {
                n += 1;
                pos += e["prediction"]["label"].as_u64().unwrap();
            }
        }
        pos as f64 / n as f64
    }

    #[test]
    fn same_seed_same_events() {
        let a = Generator::new(9)
            .event(&[Scenario::Steady], SystemTime::UNIX_EPOCH)
            .event;
        let b = Generator::new(9)
            .event(&[Scenario::Steady], SystemTime::UNIX_EPOCH)
            .event;
        assert_eq!(a, b);
    }

    #[test]
    fn steady_looks_like_the_reference_and_bias_hits_f() {
        let (f, m) = (
            selection(&[Scenario::Steady], "F"),
            selection(&[Scenario::Steady], "M"),
        );
        assert!((f - m).abs() < 0.05, "steady parity {f} vs {m}");
        assert!(
            (0.5..0.7).contains(&m),
            "reference selection rate is about 0.6, got {m}"
        );
        let (f, m) = (
            selection(&[Scenario::Bias], "F"),
            selection(&[Scenario::Bias], "M"),
        );
        assert!(f / m < 0.7, "bias parity ratio {}", f / m);
    }

    #[test]
    fn scenarios_parse() {
        assert_eq!("label-delay".parse::<Scenario>(), Ok(Scenario::LabelDelay));
        assert_eq!(
            "covariate-shift".parse::<Scenario>(),
            Ok(Scenario::CovariateShift)
        );
        assert_eq!("correlated".parse::<Scenario>(), Ok(Scenario::Correlated));
        assert_eq!(
            "correlated-drift".parse::<Scenario>(),
            Ok(Scenario::CorrelatedDrift)
        );
        assert!("chaos".parse::<Scenario>().is_err());
    }
}
