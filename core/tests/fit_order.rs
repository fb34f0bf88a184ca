//! The reference fits that were rewritten for speed give the same models, to the bit, as the
//! straightforward versions they replaced: the profile builder's column store (blocks merged,
//! categories coded per block) against the PCA fit on whole rows, and CBPE's one sort by score
//! against a fresh stable sort for every fit (the former code, kept here as the oracle).

use aims_core::cbpe::{CalibrationMap, CbpeProfile};
use aims_core::event::{Event, FeatureValue, Prediction, Target};
use aims_core::pca::{ErrorMoments, ReconstructionModel, REFERENCE_CHUNKS};
use aims_core::profile::ProfileBuilder;
use aims_core::schema::{FeatureKind, FeatureSpec, ModelSchema, Task};
use proptest::prelude::*;

fn schema() -> ModelSchema {
    let f = |name: &str, kind| FeatureSpec {
        name: name.into(),
        kind,
    };
    ModelSchema {
        intersections: Vec::new(),
        name: "m".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features: vec![
            f("x", FeatureKind::Numeric),
            f("c", FeatureKind::Categorical),
            f("y", FeatureKind::Numeric),
            f("d", FeatureKind::Categorical),
        ],
        attributes: vec![],
    }
    .validated()
    .expect("valid schema")
}

/// Rows from a seed: correlated numerics, categories whose first appearance differs between
/// blocks, missing values in every column, coarse scores (many ties).
fn rows(n: usize, seed: u64) -> Vec<Event> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|i| {
            let r = next();
            let x = (r % 1000) as f64 / 100.0;
            let num = |v: f64, k: u64| {
                if r >> k & 15 == 0 {
                    FeatureValue::Missing
                } else {
                    FeatureValue::Numeric(v)
                }
            };
            let cat = |names: &[&str], k: u64| {
                let v = (r >> k) as usize % (names.len() + 1);
                names.get(v).map_or(FeatureValue::Missing, |c| {
                    FeatureValue::Categorical((*c).into())
                })
            };
            let score = ((r >> 40) % 21) as f64 / 20.0;
            Event {
                id: None,
                ts_ms: 0,
                features: vec![
                    num(x, 8),
                    cat(&["q", "p", "r", "s"][(i / 7) % 2..], 16),
                    num(2.0 * x + ((r >> 24) % 7) as f64, 12),
                    cat(&["b", "a"], 20),
                ],
                groups: vec![],
                prediction: Prediction::Class {
                    class: u32::from(score >= 0.5),
                    score: Some(score),
                },
                label: Some(Target::Class(u32::from(
                    (r >> 50) % 100 < (score * 80.0) as u64 + 10,
                ))),
                latency_ms: None,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_builder_fits_the_model_the_rows_give(seed in 1u64.., n in 2usize..400, block in 1usize..60) {
        let schema = schema();
        let events = rows(n, seed);
        let mut builder = ProfileBuilder::new(&schema);
        for chunk in events.chunks(block) {
            let mut part = ProfileBuilder::new(&schema);
            chunk.iter().for_each(|e| part.add(e));
            builder.merge(part);
        }
        let profile = builder.finish();
        let whole: Vec<Vec<FeatureValue>> = events.iter().map(|e| e.features.clone()).collect();
        let expected = ReconstructionModel::fit(&whole).ok();
        // Bit-identical: compared through their JSON, which prints every f64 exactly.
        prop_assert_eq!(
            serde_json::to_string(&profile.reconstruction).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
    }

    #[test]
    fn standardisation_and_thresholds_are_computed_as_first_written(seed in 1u64.., n in 2usize..3000) {
        // The fit's threshold pass against the per-row `error` (one dot product after
        // another), chunk by chunk as NannyML cuts the reference.
        let events = rows(n, seed);
        let whole: Vec<Vec<FeatureValue>> = events.iter().map(|e| e.features.clone()).collect();
        let Ok(model) = ReconstructionModel::fit(&whole) else {
            return Ok(());
        };
        // The standardisation, pass by pass over each encoded column, as first written.
        for j in 0..model.encodings.len() {
            let x: Vec<f64> = whole
                .iter()
                .map(|row| match &row[j] {
                    FeatureValue::Numeric(v) => model.encode_number(j, Some(*v)),
                    FeatureValue::Categorical(c) => model.encode_category(j, Some(c)),
                    FeatureValue::Missing => model.encode_category(j, None),
                })
                .collect();
            let nf = n as f64;
            let mean = x.iter().sum::<f64>() / nf;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / nf;
            let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
            let center = x.iter().map(|v| (v - mean) / scale).sum::<f64>() / nf;
            prop_assert_eq!(model.mean[j].to_bits(), mean.to_bits());
            prop_assert_eq!(model.scale[j].to_bits(), scale.to_bits());
            prop_assert_eq!(model.center[j].to_bits(), center.to_bits());
        }
        let chunk = (n / REFERENCE_CHUNKS).max(1);
        let means: Vec<f64> = whole
            .chunks(chunk)
            .map(|rows| {
                let mut m = ErrorMoments::default();
                rows.iter().for_each(|r| m.record(model.error(r)));
                m.mean().unwrap_or(0.0)
            })
            .collect();
        let k = means.len() as f64;
        let mean = means.iter().sum::<f64>() / k;
        let std = (means.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / k).sqrt();
        prop_assert_eq!(model.lower_threshold.to_bits(), (mean - 3.0 * std).max(0.0).to_bits());
        prop_assert_eq!(model.upper_threshold.to_bits(), (mean + 3.0 * std).to_bits());
    }

    #[test]
    fn cbpe_fits_as_with_a_sort_per_fit(seed in 1u64.., n in 20usize..3000) {
        let events = rows(n, seed);
        let (mut scores, mut predicted, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for e in &events {
            if let (Prediction::Class { class, score: Some(s) }, Some(Target::Class(l))) = (e.prediction, e.label) {
                scores.push(s);
                predicted.push(class == 1);
                labels.push(l == 1);
            }
        }
        prop_assume!(labels.iter().any(|&l| l) && labels.iter().any(|&l| !l));
        let fitted = CbpeProfile::fit(&scores, &predicted, &labels);
        let calibrated = oracle::needs_calibration(&scores, &labels);
        prop_assert_eq!(fitted.calibrated, calibrated);
        let map = oracle::fit_isotonic(&scores, &labels);
        prop_assert_eq!(&CalibrationMap::fit_isotonic(&scores, &labels), &map);
        if calibrated {
            prop_assert_eq!(&fitted.map, &map);
        }
        prop_assert_eq!(
            fitted.sampling.roc_auc.std.to_bits(),
            oracle::auroc_std(&scores, &labels).to_bits()
        );
    }
}

/// The former fits, each sorting its rows afresh.
mod oracle {
    use aims_core::cbpe::CalibrationMap;

    pub fn fit_isotonic(scores: &[f64], labels: &[bool]) -> CalibrationMap {
        let mut rows: Vec<(f64, f64)> = scores
            .iter()
            .zip(labels)
            .map(|(&s, &l)| (s, f64::from(u8::from(l))))
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut xs, mut ys, mut ws): (Vec<f64>, Vec<f64>, Vec<f64>) = Default::default();
        for (s, l) in rows {
            if xs.last() == Some(&s) {
                let i = xs.len() - 1;
                ys[i] += l;
                ws[i] += 1.0;
            } else {
                xs.push(s);
                ys.push(l);
                ws.push(1.0);
            }
        }
        for (y, w) in ys.iter_mut().zip(&ws) {
            *y /= w;
        }
        let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
        for (&y, &w) in ys.iter().zip(&ws) {
            blocks.push((y, w, 1));
            while blocks.len() > 1 {
                let n = blocks.len();
                if blocks[n - 2].0 <= blocks[n - 1].0 {
                    break;
                }
                let (b, a) = (blocks[n - 1], blocks[n - 2]);
                let w = a.1 + b.1;
                blocks[n - 2] = ((a.0 * a.1 + b.0 * b.1) / w, w, a.2 + b.2);
                blocks.pop();
            }
        }
        let fitted: Vec<f64> = blocks
            .iter()
            .flat_map(|&(v, _, len)| std::iter::repeat_n(v, len))
            .collect();
        let n = xs.len();
        let mut map = CalibrationMap::default();
        for i in 0..n {
            if i == 0 || i == n - 1 || fitted[i - 1] != fitted[i] || fitted[i] != fitted[i + 1] {
                map.x.push(xs[i]);
                map.y.push(fitted[i]);
            }
        }
        map
    }

    fn exact_roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
        let mut rows: Vec<(f64, bool)> =
            scores.iter().copied().zip(labels.iter().copied()).collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut below, mut wins, mut i) = (0.0f64, 0.0f64, 0);
        while i < rows.len() {
            let mut j = i;
            let (mut p, mut n) = (0.0, 0.0);
            while j < rows.len() && rows[j].0 == rows[i].0 {
                if rows[j].1 {
                    p += 1.0;
                } else {
                    n += 1.0;
                }
                j += 1;
            }
            wins += p * (below + 0.5 * n);
            below += n;
            i = j;
        }
        let np = rows.iter().filter(|r| r.1).count() as f64;
        wins / (np * below)
    }

    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn ece_bin_edges(n: usize, bin_count: usize) -> Vec<(usize, usize)> {
        let bin_count = if n <= 2 * bin_count { n / 2 } else { bin_count };
        if bin_count < 2 {
            return Vec::new();
        }
        let width = n / bin_count;
        let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
        if let Some(last) = edges.last_mut() {
            *last = n;
        }
        edges.windows(2).map(|w| (w[0], w[1])).collect()
    }

    fn ece(rows: &mut [(f64, f64)], edges: &[(usize, usize)]) -> f64 {
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = rows.len() as f64;
        edges
            .iter()
            .map(|&(l, r)| {
                let bin = &rows[l..r];
                let len = bin.len() as f64;
                let p = bin.iter().map(|x| x.0).sum::<f64>() / len;
                let t = bin.iter().map(|x| x.1).sum::<f64>() / len;
                len / n * (p - t).abs()
            })
            .sum()
    }

    pub fn needs_calibration(scores: &[f64], labels: &[bool]) -> bool {
        let positives: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
        let negatives: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
        if positives.is_empty() || negatives.is_empty() || exact_roc_auc(scores, labels) > 0.999 {
            return false;
        }
        let n = labels.len();
        let n_test = n.div_ceil(10);
        let test_pos = ((n_test as f64) * positives.len() as f64 / n as f64).round() as usize;
        let test_neg = n_test.saturating_sub(test_pos).min(negatives.len());
        let mut state = 42u64;
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            let mut test = vec![false; n];
            for (class, take) in [(&positives, test_pos), (&negatives, test_neg)] {
                let mut idx = class.clone();
                for i in 0..take.min(idx.len()) {
                    let j = i + (splitmix(&mut state) % (idx.len() - i) as u64) as usize;
                    idx.swap(i, j);
                    test[idx[i]] = true;
                }
            }
            let (mut tr_s, mut tr_l) = (Vec::new(), Vec::new());
            for i in (0..n).filter(|&i| !test[i]) {
                tr_s.push(scores[i]);
                tr_l.push(labels[i]);
            }
            let map = fit_isotonic(&tr_s, &tr_l);
            for i in (0..n).filter(|&i| test[i]) {
                let t = f64::from(u8::from(labels[i]));
                before.push((scores[i], t));
                after.push((map.apply(scores[i]), t));
            }
        }
        let edges = ece_bin_edges(before.len(), 10);
        if edges.is_empty() {
            return false;
        }
        ece(&mut before, &edges) > ece(&mut after, &edges)
    }

    pub fn auroc_std(scores: &[f64], labels: &[bool]) -> f64 {
        let n = labels.len();
        let flip = labels.iter().filter(|&&l| l).count() * 2 > n;
        let mut rows: Vec<(f64, bool)> = scores
            .iter()
            .zip(labels)
            .map(|(&s, &l)| if flip { (1.0 - s, !l) } else { (s, l) })
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n_neg = rows.iter().filter(|r| !r.1).count();
        let ser: Vec<f64> = rows
            .iter()
            .enumerate()
            .filter(|&(rank, r)| r.1 && rank > 0)
            .enumerate()
            .map(|(i, (rank, _))| (rank - i) as f64 / n_neg as f64)
            .collect();
        let m = ser.len() as f64;
        if ser.is_empty() {
            return f64::NAN;
        }
        let mean = ser.iter().sum::<f64>() / m;
        (ser.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m).sqrt()
    }
}
