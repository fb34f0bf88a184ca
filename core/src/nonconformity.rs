//! The lifecycle of a nonconformity (ISO/IEC 42001 Clause 10.2), as a pure function of
//! (nonconformity, input, policy).
//!
//! A breach that fires opens a nonconformity; people react to it (acknowledge), find its cause
//! and plan corrective actions; once every action is done the measurements decide whether the
//! actions worked: the objective must meet its target for `evaluations` consecutive
//! evaluations, or without interruption for `period`, and a breach before that makes the
//! nonconformity ineffective and reopens it. Only an effective nonconformity can be closed.
//!
//! ```text
//! open -> acknowledged -> cause_found -> action_planned -> verifying -> effective -> closed
//!   ^                                                           |
//!   +------------------------ reopened  <--- breach (ineffective)+
//! ```
//!
//! Keeping this free of clocks and I/O lets it be property-tested, and lets the collector
//! replay it from its store after a restart. Every accepted input appends one step to the
//! timeline; a refused input changes nothing.

use serde::{Deserialize, Serialize};

/// Where a nonconformity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A breach fired; nobody has reacted yet.
    Open,
    /// Someone has reacted to it.
    Acknowledged,
    /// Its root cause is recorded.
    CauseFound,
    /// At least one corrective action is planned and not all are done.
    ActionPlanned,
    /// Every action is done; the measurements decide.
    Verifying,
    /// The objective met its target long enough after the actions.
    Effective,
    /// The objective breached again during verification: the actions were ineffective.
    Reopened,
    /// Closed after an effective verification.
    Closed,
}

impl Status {
    /// Every status, for counting by status.
    pub const ALL: [Status; 8] = [
        Status::Open,
        Status::Acknowledged,
        Status::CauseFound,
        Status::ActionPlanned,
        Status::Verifying,
        Status::Effective,
        Status::Reopened,
        Status::Closed,
    ];

    /// The JSON name and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::CauseFound => "cause_found",
            Status::ActionPlanned => "action_planned",
            Status::Verifying => "verifying",
            Status::Effective => "effective",
            Status::Reopened => "reopened",
            Status::Closed => "closed",
        }
    }

    /// Parses [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether repeated firings of the objective attach to this nonconformity rather than
    /// open a new one: every status but closed.
    pub fn is_active(self) -> bool {
        self != Status::Closed
    }
}

/// How effectiveness is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Consecutive passing evaluations that make the actions effective.
    pub evaluations: u64,
    /// Or: uninterrupted passing for this long, ms; `None` when only the count counts.
    pub period_ms: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            evaluations: 100,
            period_ms: None,
        }
    }
}

/// One evaluation's outcome, as far as verification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Target met (warning included: the target holds).
    Met,
    /// Target breached.
    Breached,
    /// Could not be judged (too few samples, no data): breaks a run of passes, reopens nothing.
    Unjudged,
}

/// A corrective action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Position among the nonconformity's actions, from 1.
    pub id: u32,
    /// What will be done.
    pub description: String,
    /// Who does it.
    pub owner: String,
    /// When it is due, ms since the epoch.
    pub due_ms: i64,
    /// The Annex A control it addresses, e.g. `A.6.2.6`.
    pub control: String,
    /// Who planned it.
    pub actor: String,
    /// When it was planned.
    pub planned_ms: i64,
    /// When it was marked done, and by whom.
    pub done: Option<(i64, String)>,
}

impl Action {
    /// Whether it is past due and not done at `now_ms`.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        self.done.is_none() && now_ms > self.due_ms
    }
}

/// What happens to a nonconformity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// The objective fired (again).
    Fired,
    /// An evaluation of the objective.
    Evaluated {
        /// Its outcome.
        outcome: Outcome,
    },
    /// Someone reacted.
    Acknowledge {
        /// Who.
        actor: String,
        /// What they say.
        note: String,
    },
    /// The root cause.
    Cause {
        /// Who.
        actor: String,
        /// The cause, in words.
        text: String,
        /// Its category (data, model, process, ...).
        category: String,
    },
    /// A corrective action planned.
    PlanAction {
        /// Who.
        actor: String,
        /// What will be done.
        description: String,
        /// Who does it.
        owner: String,
        /// When it is due, ms since the epoch.
        due_ms: i64,
        /// The Annex A control.
        control: String,
    },
    /// A planned action marked done.
    CompleteAction {
        /// Who.
        actor: String,
        /// The action's id.
        action: u32,
    },
    /// Closed after an effective verification.
    Close {
        /// Who.
        actor: String,
        /// Why.
        note: String,
    },
}

impl Input {
    /// Its JSON name.
    pub fn name(&self) -> &'static str {
        match self {
            Input::Fired => "fired",
            Input::Evaluated { .. } => "evaluated",
            Input::Acknowledge { .. } => "acknowledge",
            Input::Cause { .. } => "cause",
            Input::PlanAction { .. } => "plan_action",
            Input::CompleteAction { .. } => "complete_action",
            Input::Close { .. } => "close",
        }
    }

    /// Whether a person gave it (and so it names an actor).
    pub fn is_human(&self) -> bool {
        !matches!(self, Input::Fired | Input::Evaluated { .. })
    }
}

/// Why an input was refused; the nonconformity is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The input does not apply in this status.
    #[error("cannot {input} a nonconformity that is {status}")]
    Status {
        /// The input's name.
        input: &'static str,
        /// The status it met.
        status: &'static str,
    },
    /// A field is empty or out of range.
    #[error("{field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: &'static str,
    },
    /// No such action.
    #[error("action {0} does not exist")]
    NoAction(u32),
    /// The action is already done.
    #[error("action {0} is already done")]
    AlreadyDone(u32),
}

/// One step of the timeline: what was accepted, when, and the status after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The input's name.
    pub input: String,
    /// Who, for human inputs.
    pub actor: Option<String>,
    /// Status before.
    pub from: Status,
    /// Status after.
    pub to: Status,
}

/// Verification in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// When verification started.
    pub since_ms: i64,
    /// Consecutive passing evaluations so far.
    pub streak: u64,
    /// When the current run of passes began.
    pub streak_since_ms: Option<i64>,
}

/// A nonconformity of one objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nonconformity {
    /// Its id.
    pub id: u64,
    /// The objective that breached.
    pub objective: String,
    /// The objective's version when it fired.
    pub version: String,
    /// The objective's severity.
    pub severity: String,
    /// Where it stands.
    pub status: Status,
    /// When it opened.
    pub opened_ms: i64,
    /// Every firing attached to it, ms since the epoch (the first opened it).
    pub firings: Vec<i64>,
    /// Who acknowledged it first, when, and their note.
    pub acknowledged: Option<(i64, String, String)>,
    /// Root cause: text and category.
    pub cause: Option<(String, String)>,
    /// Corrective actions.
    pub actions: Vec<Action>,
    /// Verification in progress.
    pub verification: Option<Verification>,
    /// When it became effective.
    pub effective_ms: Option<i64>,
    /// How many verifications ended ineffective.
    pub ineffective: u32,
    /// Every accepted step.
    pub timeline: Vec<Step>,
}

impl Nonconformity {
    /// A nonconformity opened by a firing at `at_ms`.
    pub fn open(id: u64, objective: &str, version: &str, severity: &str, at_ms: i64) -> Self {
        Self {
            id,
            objective: objective.to_owned(),
            version: version.to_owned(),
            severity: severity.to_owned(),
            status: Status::Open,
            opened_ms: at_ms,
            firings: vec![at_ms],
            acknowledged: None,
            cause: None,
            actions: Vec::new(),
            verification: None,
            effective_ms: None,
            ineffective: 0,
            timeline: vec![Step {
                at_ms,
                input: "fired".to_owned(),
                actor: None,
                from: Status::Open,
                to: Status::Open,
            }],
        }
    }

    /// The actions past due and not done at `now_ms`.
    pub fn overdue(&self, now_ms: i64) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(move |a| a.is_overdue(now_ms))
    }

    /// The owner to show: the first open action's owner, else the last action's.
    pub fn owner(&self) -> Option<&str> {
        self.actions
            .iter()
            .find(|a| a.done.is_none())
            .or(self.actions.last())
            .map(|a| a.owner.as_str())
    }

    /// Applies `input` at `now_ms`. `Ok(None)` when the input is accepted but changes nothing
    /// worth a step (an evaluation outside verification); a refusal leaves `self` unchanged.
    pub fn apply(
        &mut self,
        input: &Input,
        now_ms: i64,
        policy: Policy,
    ) -> Result<Option<Step>, Refusal> {
        let mut next = self.clone();
        let step = next.apply_to(input, now_ms, policy)?;
        if let Some(s) = &step {
            next.timeline.push(s.clone());
        }
        *self = next;
        Ok(step)
    }

    fn apply_to(
        &mut self,
        input: &Input,
        now_ms: i64,
        policy: Policy,
    ) -> Result<Option<Step>, Refusal> {
        use Status::*;
        let from = self.status;
        let refuse = || Refusal::Status {
            input: input.name(),
            status: from.as_str(),
        };
        let nonempty = |field: &'static str, v: &str| {
            if v.trim().is_empty() {
                Err(Refusal::Field {
                    field,
                    message: "must not be empty",
                })
            } else {
                Ok(())
            }
        };
        let mut actor = None;
        match input {
            Input::Fired => match from {
                Closed => return Err(refuse()),
                Verifying => self.reopen(),
                _ => {}
            },
            Input::Evaluated { outcome } => {
                if from != Verifying {
                    return Ok(None);
                }
                let Some(v) = self.verification.as_mut() else {
                    return Ok(None);
                };
                match outcome {
                    Outcome::Breached => self.reopen(),
                    Outcome::Unjudged => {
                        v.streak = 0;
                        v.streak_since_ms = None;
                        return Ok(None);
                    }
                    Outcome::Met => {
                        v.streak += 1;
                        let since = *v.streak_since_ms.get_or_insert(now_ms);
                        let by_count = v.streak >= policy.evaluations.max(1);
                        let by_period = policy
                            .period_ms
                            .is_some_and(|p| (now_ms - since).max(0) as u64 >= p);
                        if !(by_count || by_period) {
                            return Ok(None);
                        }
                        self.status = Effective;
                        self.effective_ms = Some(now_ms);
                    }
                }
            }
            Input::Acknowledge { actor: a, note } => {
                nonempty("actor", a)?;
                if !matches!(from, Open | Reopened) {
                    return Err(refuse());
                }
                if self.acknowledged.is_none() {
                    self.acknowledged = Some((now_ms, a.clone(), note.clone()));
                }
                self.status = if self.cause.is_some() && from == Reopened {
                    CauseFound
                } else {
                    Acknowledged
                };
                actor = Some(a.clone());
            }
            Input::Cause {
                actor: a,
                text,
                category,
            } => {
                nonempty("actor", a)?;
                nonempty("cause", text)?;
                nonempty("category", category)?;
                if !matches!(from, Acknowledged | CauseFound | ActionPlanned) {
                    return Err(refuse());
                }
                self.cause = Some((text.clone(), category.clone()));
                if from == Acknowledged {
                    self.status = CauseFound;
                }
                actor = Some(a.clone());
            }
            Input::PlanAction {
                actor: a,
                description,
                owner,
                due_ms,
                control,
            } => {
                nonempty("actor", a)?;
                nonempty("description", description)?;
                nonempty("owner", owner)?;
                nonempty("control", control)?;
                if !matches!(from, CauseFound | ActionPlanned) {
                    return Err(refuse());
                }
                self.actions.push(Action {
                    id: self.actions.len() as u32 + 1,
                    description: description.clone(),
                    owner: owner.clone(),
                    due_ms: *due_ms,
                    control: control.clone(),
                    actor: a.clone(),
                    planned_ms: now_ms,
                    done: None,
                });
                self.status = ActionPlanned;
                actor = Some(a.clone());
            }
            Input::CompleteAction { actor: a, action } => {
                nonempty("actor", a)?;
                if from != ActionPlanned {
                    return Err(refuse());
                }
                let act = self
                    .actions
                    .iter_mut()
                    .find(|x| x.id == *action)
                    .ok_or(Refusal::NoAction(*action))?;
                if act.done.is_some() {
                    return Err(Refusal::AlreadyDone(*action));
                }
                act.done = Some((now_ms, a.clone()));
                if self.actions.iter().all(|x| x.done.is_some()) {
                    self.status = Verifying;
                    self.verification = Some(Verification {
                        since_ms: now_ms,
                        streak: 0,
                        streak_since_ms: None,
                    });
                }
                actor = Some(a.clone());
            }
            Input::Close { actor: a, .. } => {
                nonempty("actor", a)?;
                if from != Effective {
                    return Err(refuse());
                }
                self.status = Closed;
                actor = Some(a.clone());
            }
        }
        if matches!(input, Input::Fired) {
            self.firings.push(now_ms);
        }
        Ok(Some(Step {
            at_ms: now_ms,
            input: input.name().to_owned(),
            actor,
            from,
            to: self.status,
        }))
    }

    fn reopen(&mut self) {
        self.status = Status::Reopened;
        self.verification = None;
        self.ineffective += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: Policy = Policy {
        evaluations: 3,
        period_ms: None,
    };

    fn ack() -> Input {
        Input::Acknowledge {
            actor: "ana".into(),
            note: "looking".into(),
        }
    }
    fn cause() -> Input {
        Input::Cause {
            actor: "ana".into(),
            text: "stale features".into(),
            category: "data".into(),
        }
    }
    fn plan() -> Input {
        Input::PlanAction {
            actor: "ana".into(),
            description: "retrain".into(),
            owner: "ml-team".into(),
            due_ms: 5_000,
            control: "A.6.2.6".into(),
        }
    }
    fn done(action: u32) -> Input {
        Input::CompleteAction {
            actor: "bo".into(),
            action,
        }
    }
    const MET: Input = Input::Evaluated {
        outcome: Outcome::Met,
    };
    const BREACH: Input = Input::Evaluated {
        outcome: Outcome::Breached,
    };

    fn drive(nc: &mut Nonconformity, inputs: &[Input], policy: Policy) {
        for (i, input) in inputs.iter().enumerate() {
            nc.apply(input, 1_000 + i as i64, policy).unwrap();
        }
    }

    #[test]
    fn the_effective_path() {
        let mut nc = Nonconformity::open(1, "o", "v", "critical", 0);
        drive(&mut nc, &[ack(), cause(), plan(), done(1)], P);
        assert_eq!(nc.status, Status::Verifying);
        drive(&mut nc, &[MET, MET], P);
        assert_eq!(nc.status, Status::Verifying);
        nc.apply(&MET, 2_000, P).unwrap();
        assert_eq!(nc.status, Status::Effective);
        assert_eq!(nc.effective_ms, Some(2_000));
        nc.apply(
            &Input::Close {
                actor: "ana".into(),
                note: "done".into(),
            },
            2_001,
            P,
        )
        .unwrap();
        assert_eq!(nc.status, Status::Closed);
        let path: Vec<_> = nc.timeline.iter().map(|s| s.to.as_str()).collect();
        assert_eq!(
            path,
            [
                "open",
                "acknowledged",
                "cause_found",
                "action_planned",
                "verifying",
                "effective",
                "closed"
            ]
        );
    }

    #[test]
    fn a_breach_during_verification_reopens() {
        let mut nc = Nonconformity::open(1, "o", "v", "critical", 0);
        drive(&mut nc, &[ack(), cause(), plan(), done(1), MET, BREACH], P);
        assert_eq!(nc.status, Status::Reopened);
        assert_eq!(nc.ineffective, 1);
        // Reacting again keeps the cause; a new action is needed.
        drive(&mut nc, &[ack()], P);
        assert_eq!(nc.status, Status::CauseFound);
        drive(&mut nc, &[plan(), done(2), MET, MET, MET], P);
        assert_eq!(nc.status, Status::Effective);
    }

    #[test]
    fn the_period_makes_it_effective_before_the_count() {
        let policy = Policy {
            evaluations: 1000,
            period_ms: Some(60_000),
        };
        let mut nc = Nonconformity::open(1, "o", "v", "critical", 0);
        drive(&mut nc, &[ack(), cause(), plan(), done(1)], policy);
        nc.apply(&MET, 10_000, policy).unwrap();
        nc.apply(&MET, 69_999, policy).unwrap();
        assert_eq!(nc.status, Status::Verifying);
        nc.apply(&MET, 70_000, policy).unwrap();
        assert_eq!(nc.status, Status::Effective);
    }

    #[test]
    fn refusals_name_the_problem() {
        let mut nc = Nonconformity::open(1, "o", "v", "critical", 0);
        assert_eq!(
            nc.apply(&cause(), 1, P).unwrap_err().to_string(),
            "cannot cause a nonconformity that is open"
        );
        let empty = Input::Acknowledge {
            actor: " ".into(),
            note: String::new(),
        };
        assert_eq!(
            nc.apply(&empty, 1, P).unwrap_err().to_string(),
            "actor: must not be empty"
        );
        drive(&mut nc, &[ack(), cause(), plan()], P);
        assert_eq!(nc.apply(&done(7), 1, P), Err(Refusal::NoAction(7)));
        assert!(nc.overdue(5_001).count() == 1 && nc.overdue(5_000).count() == 0);
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            Just(Input::Fired),
            Just(MET),
            Just(MET),
            Just(MET),
            Just(BREACH),
            Just(Input::Evaluated {
                outcome: Outcome::Unjudged
            }),
            Just(ack()),
            Just(cause()),
            Just(plan()),
            (1u32..4).prop_map(done),
            Just(Input::Close {
                actor: "ana".into(),
                note: String::new()
            }),
        ]
    }

    proptest! {
        /// A refused input changes nothing; an accepted one appends exactly the step it returns.
        #[test]
        fn refusals_change_nothing(inputs in prop::collection::vec(input(), 0..80)) {
            let mut nc = Nonconformity::open(1, "o", "v", "critical", 0);
            for (i, input) in inputs.iter().enumerate() {
                let before = nc.clone();
                match nc.apply(input, i as i64 + 1, P) {
                    Err(_) => prop_assert_eq!(&nc, &before),
                    Ok(None) => prop_assert_eq!(&nc.timeline, &before.timeline),
                    Ok(Some(step)) => {
                        prop_assert_eq!(nc.timeline.len(), before.timeline.len() + 1);
                        prop_assert_eq!(nc.timeline.last(), Some(&step));
                        prop_assert_eq!(step.from, before.status);
                        prop_assert_eq!(step.to, nc.status);
                        prop_assert_eq!(step.actor.is_some(), input.is_human());
                    }
                }
            }
        }

        /// Effective only after every action is done and `evaluations` consecutive passes
        /// since the last one was done; closed only from effective, and closed is final.
        #[test]
        fn effectiveness_is_earned(inputs in prop::collection::vec(input(), 0..120)) {
            let mut nc = Nonconformity::open(1, "o", "v", "critical", 0);
            let mut passes = 0u64;
            for (i, input) in inputs.iter().enumerate() {
                let before = nc.status;
                let accepted = nc.apply(input, i as i64 + 1, P).is_ok();
                if before == Status::Verifying && accepted {
                    passes = if *input == MET { passes + 1 } else { 0 };
                }
                if before != Status::Effective && nc.status == Status::Effective {
                    prop_assert!(!nc.actions.is_empty());
                    prop_assert!(nc.actions.iter().all(|a| a.done.is_some()));
                    prop_assert_eq!(passes, P.evaluations);
                    prop_assert!(nc.cause.is_some() && nc.acknowledged.is_some());
                }
                if before == Status::Verifying && (*input == BREACH || *input == Input::Fired) {
                    prop_assert_eq!(nc.status, Status::Reopened);
                }
                if nc.status == Status::Closed && before != Status::Closed {
                    prop_assert_eq!(before, Status::Effective);
                }
                if before == Status::Closed {
                    prop_assert_eq!(nc.status, Status::Closed);
                }
                if nc.status != Status::Verifying {
                    passes = 0;
                }
            }
        }

        /// Every firing while active attaches: the count of firings is one more than the
        /// accepted `Fired` inputs.
        #[test]
        fn firings_attach(inputs in prop::collection::vec(input(), 0..80)) {
            let mut nc = Nonconformity::open(1, "o", "v", "critical", 0);
            let mut fired = 1;
            for (i, input) in inputs.iter().enumerate() {
                if nc.apply(input, i as i64 + 1, P).is_ok() && *input == Input::Fired {
                    fired += 1;
                }
            }
            prop_assert_eq!(nc.firings.len(), fired);
        }
    }
}
