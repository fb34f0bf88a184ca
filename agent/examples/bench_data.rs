//! Writes the `assess` benchmark's inputs: a 20-feature agent config and two CSV datasets
//! (reference and drifted current) of N rows each.
//!
//! `cargo run --release -p aims-agent --example bench_data -- DIR [ROWS]` (ROWS defaults to
//! 1,000,000); see BENCHMARKS.md.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use aims_testkit::fixtures::Rng;

const NUMERIC: usize = 15;
const CATEGORICAL: usize = 5;

fn write_csv(path: &PathBuf, rows: usize, shift: f64, seed: u64) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let mut header: Vec<String> = vec!["id".into(), "ts".into()];
    header.extend((0..NUMERIC).map(|i| format!("n{i}")));
    header.extend((0..CATEGORICAL).map(|i| format!("c{i}")));
    header.extend(
        [
            "gender",
            "band",
            "prediction",
            "score",
            "label",
            "latency_ms",
        ]
        .map(String::from),
    );
    writeln!(out, "{}", header.join(","))?;
    let mut rng = Rng::from_state(seed);
    let categories = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    for i in 0..rows {
        write!(
            out,
            "r{i},2026-11-29T{:02}:{:02}:{:02}.000Z",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60
        )?;
        for k in 0..NUMERIC {
            let x = (rng.unit() + rng.unit() + rng.unit()) * (k as f64 + 1.0) + shift;
            write!(out, ",{x:.4}")?;
        }
        for _ in 0..CATEGORICAL {
            write!(out, ",{}", categories[(rng.next_u64() % 6) as usize])?;
        }
        let score = rng.unit();
        let gender = ["F", "M", "X"][(rng.next_u64() % 3) as usize];
        writeln!(
            out,
            ",{gender},b{},{},{score:.4},{},{:.2}",
            rng.next_u64() % 5,
            u8::from(score >= 0.5),
            rng.next_u64() % 2,
            rng.unit() * 40.0
        )?;
    }
    out.flush()
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/bench-data".into()));
    let rows: usize = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    std::fs::create_dir_all(&dir)?;
    let mut features: Vec<String> = (0..NUMERIC)
        .map(|i| format!("{{ name = \"n{i}\", kind = \"numeric\" }}"))
        .collect();
    features
        .extend((0..CATEGORICAL).map(|i| format!("{{ name = \"c{i}\", kind = \"categorical\" }}")));
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "[model]\nname = \"bench\"\ntask = \"binary\"\nfeatures = [{}]\nattributes = [\n  {{ name = \"gender\", groups = [\"F\", \"M\"], reference_group = \"M\" }},\n  {{ name = \"band\", groups = [\"b0\", \"b1\", \"b2\", \"b3\", \"b4\"] }},\n]\n",
            features.join(", ")
        ),
    )?;
    write_csv(&dir.join("reference.csv"), rows, 0.0, 7)?;
    write_csv(&dir.join("current.csv"), rows, 0.3, 11)?;
    Ok(())
}
