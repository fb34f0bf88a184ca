//! The evaluation lifecycle of an objective, as a pure function of (state, input, time).
//!
//! The semantics follow Prometheus alerting rules so that operators recognise them: a breach
//! first makes the objective `pending`; it becomes `firing` only once the breach has held for
//! the objective's `for` duration; a pending breach that clears goes back to `ok` without ever
//! firing; a firing objective whose breach clears is `resolved` (kept for `resolved_hold`, as
//! Prometheus keeps resolved alerts, then `ok`). Two states say the objective could not be
//! judged, because an auditor must tell silence from health: `insufficient_data` (too few
//! samples, or the metric is undefined for the data) and `no_data` (no summary for longer than
//! `stale_after`).
//!
//! Keeping this free of clocks and I/O lets it be property-tested with a fake clock, and lets
//! the collector persist the state and resume it after a restart.

use serde::{Deserialize, Serialize};

use crate::objective::Verdict;

/// Where an objective stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Evaluated and within target.
    Ok,
    /// Breached, but not yet for `for`.
    Pending,
    /// Breached for at least `for`: the alert is active.
    Firing,
    /// Was firing, now within target again.
    Resolved,
    /// Too few samples (or an undefined metric) to judge.
    InsufficientData,
    /// No summary arrived for longer than `stale_after`.
    NoData,
}

impl State {
    /// Every state, for exporting one 0/1 gauge per state.
    pub const ALL: [State; 6] = [
        State::Ok,
        State::Pending,
        State::Firing,
        State::Resolved,
        State::InsufficientData,
        State::NoData,
    ];

    /// The label value and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
            State::InsufficientData => "insufficient_data",
            State::NoData => "no_data",
        }
    }

    /// Pending and firing are the "alerts" of the read API.
    pub fn is_alert(self) -> bool {
        matches!(self, State::Pending | State::Firing)
    }
}

/// The persisted lifecycle of one objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Current state.
    pub state: State,
    /// When the current state was entered, ms since the epoch.
    pub since_ms: i64,
    /// When the current uninterrupted breach began (pending or firing), if any.
    pub active_since_ms: Option<i64>,
}

impl Lifecycle {
    /// The state of an objective never evaluated: `insufficient_data` since `now_ms`, because
    /// nothing is known yet and that must not read as health.
    pub fn initial(now_ms: i64) -> Self {
        Self {
            state: State::InsufficientData,
            since_ms: now_ms,
            active_since_ms: None,
        }
    }
}

/// What one evaluation observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// The objective was judged.
    Judged(Verdict),
    /// No summary arrived for longer than `stale_after`.
    Stale,
}

/// Durations the lifecycle depends on, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a breach must hold before it fires (`for`).
    pub for_ms: u64,
    /// How long a resolved objective stays `resolved` before reading `ok`.
    pub resolved_hold_ms: u64,
}

/// One change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// State left.
    pub from: State,
    /// State entered.
    pub to: State,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// Advances the lifecycle by one evaluation at `now_ms`, returning the new lifecycle and the
/// transitions taken (usually none or one; two when a breach with `for: 0` fires at once,
/// passing through pending as Prometheus does).
pub fn step(
    current: Lifecycle,
    input: Input,
    now_ms: i64,
    timing: Timing,
) -> (Lifecycle, Vec<Transition>) {
    let mut next = current;
    let mut transitions = Vec::new();
    let mut go = |next: &mut Lifecycle, to: State| {
        if next.state != to {
            transitions.push(Transition {
                from: next.state,
                to,
                at_ms: now_ms,
            });
            next.state = to;
            next.since_ms = now_ms;
        }
    };
    match input {
        Input::Stale => {
            next.active_since_ms = None;
            go(&mut next, State::NoData);
        }
        Input::Judged(Verdict::InsufficientData | Verdict::NotMeasurable) => {
            next.active_since_ms = None;
            go(&mut next, State::InsufficientData);
        }
        Input::Judged(Verdict::Breached) => {
            let began = *next.active_since_ms.get_or_insert(now_ms);
            if next.state != State::Firing {
                go(&mut next, State::Pending);
                let held = now_ms.saturating_sub(began);
                if held >= 0 && held as u64 >= timing.for_ms {
                    go(&mut next, State::Firing);
                }
            }
        }
        Input::Judged(Verdict::Met | Verdict::AtRisk) => {
            next.active_since_ms = None;
            match next.state {
                State::Firing => go(&mut next, State::Resolved),
                State::Resolved => {
                    let held = now_ms.saturating_sub(next.since_ms);
                    if held >= 0 && held as u64 >= timing.resolved_hold_ms {
                        go(&mut next, State::Ok);
                    }
                }
                _ => go(&mut next, State::Ok),
            }
        }
    }
    (next, transitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Timing = Timing {
        for_ms: 60_000,
        resolved_hold_ms: 300_000,
    };

    fn run(
        inputs: &[(u64, Input)],
        timing: Timing,
    ) -> Vec<(i64, Input, Lifecycle, Vec<Transition>)> {
        let mut now = 1_000_000_i64;
        let mut life = Lifecycle::initial(now);
        let mut out = Vec::new();
        for &(dt, input) in inputs {
            now += dt as i64;
            let (next, tr) = step(life, input, now, timing);
            out.push((now, input, next, tr.clone()));
            life = next;
        }
        out
    }

    const BREACH: Input = Input::Judged(Verdict::Breached);
    const MET: Input = Input::Judged(Verdict::Met);

    #[test]
    fn a_breach_fires_only_after_for() {
        let steps = run(
            &[
                (0, BREACH),
                (30_000, BREACH),
                (30_000, BREACH),
                (10_000, MET),
            ],
            T,
        );
        let states: Vec<State> = steps.iter().map(|s| s.2.state).collect();
        assert_eq!(
            states,
            [
                State::Pending,
                State::Pending,
                State::Firing,
                State::Resolved
            ]
        );
    }

    #[test]
    fn for_zero_fires_at_once_through_pending() {
        let timing = Timing { for_ms: 0, ..T };
        let steps = run(&[(0, BREACH)], timing);
        let tos: Vec<State> = steps[0].3.iter().map(|t| t.to).collect();
        assert_eq!(tos, [State::Pending, State::Firing]);
    }

    #[test]
    fn resolved_turns_ok_after_the_hold() {
        let timing = Timing { for_ms: 0, ..T };
        let steps = run(
            &[(0, BREACH), (1_000, MET), (299_000, MET), (1_000, MET)],
            timing,
        );
        let states: Vec<State> = steps.iter().map(|s| s.2.state).collect();
        assert_eq!(
            states,
            [State::Firing, State::Resolved, State::Resolved, State::Ok]
        );
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            4 => Just(BREACH),
            3 => Just(MET),
            1 => Just(Input::Judged(Verdict::AtRisk)),
            1 => Just(Input::Judged(Verdict::InsufficientData)),
            1 => Just(Input::Judged(Verdict::NotMeasurable)),
            1 => Just(Input::Stale),
        ]
    }

    fn script() -> impl Strategy<Value = (Vec<(u64, Input)>, u64)> {
        (
            prop::collection::vec((0u64..120_000, input()), 1..60),
            0u64..300_000,
        )
    }

    proptest! {
        /// Firing at time t means every evaluation in [t - for, t] was a breach, and there was
        /// a breach at or before t - for.
        #[test]
        fn firing_needs_a_breach_held_for_for((inputs, for_ms) in script()) {
            let timing = Timing { for_ms, ..T };
            let steps = run(&inputs, timing);
            for (i, (now, _, _, tr)) in steps.iter().enumerate() {
                if tr.iter().any(|t| t.to == State::Firing) {
                    let mut j = i;
                    while j > 0 && steps[j - 1].1 == BREACH {
                        j -= 1;
                    }
                    prop_assert!(steps[j..=i].iter().all(|s| s.1 == BREACH));
                    prop_assert!(now - steps[j].0 >= for_ms as i64);
                }
            }
        }

        /// A pending breach that clears before `for` never fires.
        #[test]
        fn a_cleared_pending_breach_never_fires((inputs, for_ms) in script()) {
            let timing = Timing { for_ms, ..T };
            let steps = run(&inputs, timing);
            for (i, (_, input, life, tr)) in steps.iter().enumerate() {
                if *input != BREACH && i > 0 && steps[i - 1].2.state == State::Pending {
                    prop_assert!(life.state != State::Firing);
                    prop_assert!(tr.iter().all(|t| t.to != State::Firing && t.to != State::Resolved));
                }
            }
        }

        /// Transitions chain: each starts where the previous state was, changes state, and the
        /// state after a step is where its last transition leads.
        #[test]
        fn transitions_chain((inputs, for_ms) in script()) {
            let timing = Timing { for_ms, ..T };
            let steps = run(&inputs, timing);
            let mut state = State::InsufficientData;
            for (now, input, life, tr) in &steps {
                for t in tr {
                    prop_assert_eq!(t.from, state);
                    prop_assert_ne!(t.from, t.to);
                    prop_assert_eq!(t.at_ms, *now);
                    state = t.to;
                }
                prop_assert_eq!(life.state, state);
                match input {
                    Input::Stale => prop_assert_eq!(life.state, State::NoData),
                    Input::Judged(Verdict::InsufficientData | Verdict::NotMeasurable) => {
                        prop_assert_eq!(life.state, State::InsufficientData)
                    }
                    Input::Judged(Verdict::Breached) => {
                        prop_assert!(life.state.is_alert())
                    }
                    Input::Judged(_) => prop_assert!(matches!(life.state, State::Ok | State::Resolved)),
                }
            }
        }

        /// Resolved is only ever entered from firing.
        #[test]
        fn resolved_only_after_firing((inputs, for_ms) in script()) {
            let timing = Timing { for_ms, ..T };
            for (_, _, _, tr) in run(&inputs, timing) {
                for t in tr {
                    if t.to == State::Resolved {
                        prop_assert_eq!(t.from, State::Firing);
                    }
                }
            }
        }
    }
}
