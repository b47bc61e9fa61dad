//! The engine's pace: one bound, shared by every worker, on the engine calls
//! that change things (create, start, remove), adapted to how the engine
//! answers.
//!
//! On a small machine dockerd's throughput peaks with a few such calls in
//! flight and falls beyond (its work is largely serialized: more calls in
//! flight only make each one slower, then time out). So [`Gate`] holds the
//! calls beyond a limit in a queue, and [`Pace`] moves that limit with the
//! latency the engine shows: while calls take about what they take on an
//! idle engine and calls are queued, the limit grows; once they take much
//! longer (the engine is saturated), it shrinks.
//!
//! The queue is ordered, not first-come: by [`Lane`] (replacing a dead
//! container and removing a deleted pod go ahead of bringing new pods up),
//! then by the pod's ticket (the pod first seen goes first). A pod's calls
//! are made one after the other by its worker, so each pod keeps its own
//! order (infra before app), and with the ticket order the pods that have
//! begun finish before new ones begin: podvisor does not create hundreds of
//! containers far ahead of starting them.
//!
//! The priority of a call comes from the task that makes it: a worker runs
//! its sync inside [`with_priority`]; calls made elsewhere have
//! [`Priority::default`] (new work, after every pod's).
//!
//! The wait for a slot is not part of a call's budget (see
//! [`Bounded`](super::Bounded)): a call's budget measures the engine, not
//! the queue in front of it.

use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Which calls go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// A pod that ran before (a replacement, an update) or is being removed.
    Urgent,
    /// Bringing a pod up for the first time.
    Steady,
}

/// A call's place in the queue: by lane, then by ticket (lower first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority {
    pub lane: Lane,
    pub ticket: u64,
}

impl Default for Priority {
    /// New work, after every pod's.
    fn default() -> Self {
        Self {
            lane: Lane::Steady,
            ticket: u64::MAX,
        }
    }
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `f` with its engine calls at `priority`.
pub fn with_priority<F: Future>(priority: Priority, f: F) -> impl Future<Output = F::Output> {
    PRIORITY.scope(priority, f)
}

/// The priority of the calls made now.
pub fn current() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or_default()
}

/// The kinds of gated calls: each has its own idle latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Create,
    Start,
    Remove,
}

/// The limit's bounds and first value. Two calls in flight keep a 2-core
/// engine busy; sixteen is past where any engine measured here got faster.
pub const MIN_LIMIT: usize = 2;
pub const MAX_LIMIT: usize = 16;
pub const FIRST_LIMIT: usize = 6;
/// While calls take at most this many times what they take alone, the
/// engine has room: the limit may grow.
const ROOMY: f64 = 2.5;
/// Beyond this many times, the engine is saturated: the limit shrinks.
const SATURATED: f64 = 4.0;
/// Under a steady load no call runs alone, so what a call takes alone is
/// measured again every this many calls: the next [`PROBE_CALLS`] run one
/// at a time (as a TCP's BBR drains its queue to measure the round trip).
/// A probe stalls the queue while the calls in flight drain (seconds, on
/// a loaded engine), so it is rare: a few times in a 500-pod converge.
const PROBE_EVERY: usize = 1024;
const PROBE_CALLS: usize = 1;

/// The adaptive limit, fed with the calls' latencies (pure: the caller
/// times the calls).
#[derive(Debug, Clone)]
pub struct Pace {
    limit: usize,
    /// What a call of each kind takes alone (the lowest seen since the last
    /// call measured alone, or that one's).
    floors: HashMap<Kind, f64>,
    /// The window being measured: the sum of slowdowns, how many, and
    /// whether any call waited for a slot meanwhile.
    sum: f64,
    count: usize,
    queued: bool,
    /// Calls since the last probe, and the probe's calls left.
    since_probe: usize,
    probing: usize,
}

impl Default for Pace {
    fn default() -> Self {
        Self::new(FIRST_LIMIT)
    }
}

impl Pace {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.clamp(MIN_LIMIT, MAX_LIMIT),
            floors: HashMap::new(),
            sum: 0.0,
            count: 0,
            queued: false,
            since_probe: 0,
            probing: 0,
        }
    }

    /// How many gated calls may be in flight now (one while probing).
    pub fn limit(&self) -> usize {
        match self.probing {
            0 => self.limit,
            _ => 1,
        }
    }

    /// A call waited for a slot (there is demand beyond the limit).
    pub fn queued(&mut self) {
        self.queued = true;
    }

    /// A call of `kind` was answered after `took` (from its slot);
    /// `alone` when no other gated call was in flight meanwhile. Every
    /// `limit` calls, the limit moves by their mean slowdown.
    pub fn done(&mut self, kind: Kind, took: Duration, alone: bool) {
        let took = took.as_secs_f64().max(1e-6);
        let floor = self.floors.entry(kind).or_insert(took);
        *floor = match alone {
            true => took,
            false => floor.min(took),
        };
        if self.probing > 0 {
            // The calls in flight when the probe began drain first; only
            // those that ran alone count.
            self.probing -= usize::from(alone);
            return;
        }
        self.sum += took / *floor;
        self.count += 1;
        self.since_probe += 1;
        if self.count >= self.limit {
            let slowdown = self.sum / self.count as f64;
            if slowdown > SATURATED {
                self.limit = (self.limit - 1).max(MIN_LIMIT);
            } else if slowdown <= ROOMY && self.queued {
                self.limit = (self.limit + 1).min(MAX_LIMIT);
            }
            (self.sum, self.count, self.queued) = (0.0, 0, false);
        }
        if self.since_probe >= PROBE_EVERY {
            self.since_probe = 0;
            self.probing = PROBE_CALLS;
        }
    }
}

/// The bound itself: who holds a slot, who waits, in what order.
#[derive(Default)]
pub struct Gate {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    pace: Pace,
    in_flight: usize,
    /// Waiters by (priority, arrival), the smallest first.
    queue: BinaryHeap<std::cmp::Reverse<(Priority, u64)>>,
    senders: HashMap<u64, oneshot::Sender<Slot>>,
    arrivals: u64,
    /// Slots handed out so far (a slot that saw none handed out while it
    /// was the only one held ran alone).
    grants: u64,
    /// Set by [`Gate::observe`]: told the limit and what is in flight.
    watch: Option<Arc<dyn Fn(usize, usize) + Send + Sync>>,
}

impl State {
    fn report(&self) {
        if let Some(w) = &self.watch {
            w(self.pace.limit(), self.in_flight);
        }
    }
}

/// A slot: held while a call is in flight, given back when dropped.
pub struct Slot {
    /// `None` once handed back.
    state: Option<Arc<Mutex<State>>>,
    granted: Instant,
    done: Option<Kind>,
    /// Whether it was the only slot held when granted, and the grant count
    /// then.
    alone: bool,
    grant: u64,
}

impl Slot {
    /// The call it held was answered (its latency then feeds the pace).
    pub fn answered(mut self, kind: Kind) {
        self.done = Some(kind);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let took = self.granted.elapsed();
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kind) = self.done {
            let alone = self.alone && s.grants == self.grant;
            s.pace.done(kind, took, alone);
        }
        s.in_flight -= 1;
        hand_out(&state, &mut s);
        s.report();
    }
}

/// Takes a slot for a call.
fn grant(state: &Arc<Mutex<State>>, s: &mut State, at: Instant) -> Slot {
    s.in_flight += 1;
    s.grants += 1;
    Slot {
        state: Some(state.clone()),
        granted: at,
        done: None,
        alone: s.in_flight == 1,
        grant: s.grants,
    }
}

/// Gives free slots to the first waiters.
fn hand_out(state: &Arc<Mutex<State>>, s: &mut State) {
    while s.in_flight < s.pace.limit() {
        let Some(std::cmp::Reverse((_, arrival))) = s.queue.pop() else {
            return;
        };
        let Some(tx) = s.senders.remove(&arrival) else {
            continue; // it stopped waiting
        };
        let slot = grant(state, s, Instant::now());
        if let Err(mut slot) = tx.send(slot) {
            // It stopped waiting just now: the slot goes to the next one
            // (disarmed: its drop would take the lock again).
            slot.state = None;
            s.in_flight -= 1;
        }
    }
}

impl Gate {
    pub fn new(limit: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                pace: Pace::new(limit),
                ..State::default()
            })),
        }
    }

    /// Calls `watch(limit, in_flight)` whenever either changes.
    pub fn observe(&self, watch: Arc<dyn Fn(usize, usize) + Send + Sync>) {
        let mut s = self.lock();
        s.watch = Some(watch);
        s.report();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot, at the priority of the calling task; returns it
    /// and how long it waited.
    pub async fn slot(&self) -> (Slot, Duration) {
        let asked = Instant::now();
        let priority = current();
        let rx = {
            let mut s = self.lock();
            if s.queue.is_empty() && s.in_flight < s.pace.limit() {
                let slot = grant(&self.state, &mut s, asked);
                s.report();
                return (slot, Duration::ZERO);
            }
            s.pace.queued();
            let (tx, rx) = oneshot::channel();
            let arrival = s.arrivals;
            s.arrivals += 1;
            s.queue.push(std::cmp::Reverse((priority, arrival)));
            s.senders.insert(arrival, tx);
            rx
        };
        // The sender lives in the queue until a slot is handed to it, and
        // the gate outlives every waiter (it is borrowed).
        let slot = rx.await.expect("the gate hands out every queued slot");
        (slot, asked.elapsed())
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.lock().pace.limit()
    }

    /// How many calls hold a slot now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine that does `parallel` calls at once: a call in flight with
    /// `n` others takes `base × max(1, n / parallel)`.
    fn latency(base: f64, in_flight: usize, parallel: f64) -> Duration {
        Duration::from_secs_f64(base * (in_flight as f64 / parallel).max(1.0))
    }

    /// Runs the pace against that engine, always with demand, for `calls`
    /// (never a call alone but while the pace probes).
    fn settle(pace: &mut Pace, parallel: f64, calls: usize) {
        for i in 0..calls {
            pace.queued();
            let kind = [Kind::Create, Kind::Start][i % 2];
            let base = if kind == Kind::Create { 0.02 } else { 0.08 };
            let alone = pace.limit() == 1;
            pace.done(kind, latency(base, pace.limit(), parallel), alone);
        }
    }

    #[test]
    fn the_limit_settles_a_little_past_what_the_engine_does_at_once() {
        for (parallel, first) in [(1.0, MAX_LIMIT), (2.0, MIN_LIMIT), (3.0, FIRST_LIMIT)] {
            let mut pace = Pace::new(first);
            settle(&mut pace, parallel, 5 * PROBE_EVERY);
            let limit = pace.limit() as f64;
            // Enough to keep the engine busy, not so many that each call
            // waits inside the engine for long.
            assert!(
                limit >= parallel * 2.0 && limit <= parallel * SATURATED + 1.0,
                "parallel {parallel}: limit {limit}"
            );
        }
    }

    #[test]
    fn a_saturated_engine_brings_the_limit_down() {
        let mut pace = Pace::new(MAX_LIMIT);
        pace.done(Kind::Start, Duration::from_millis(80), true);
        let mut limits = Vec::new();
        for _ in 0..PROBE_EVERY - 1 {
            // Every call now takes ten times what it takes alone.
            pace.done(Kind::Start, Duration::from_millis(800), false);
            limits.push(pace.limit());
        }
        assert_eq!(pace.limit, MIN_LIMIT, "{limits:?}");
    }

    #[test]
    fn without_demand_the_limit_does_not_grow() {
        let mut pace = Pace::new(4);
        for _ in 0..100 {
            pace.done(Kind::Create, Duration::from_millis(20), false);
        }
        assert_eq!(pace.limit(), 4);
    }

    #[test]
    fn the_limit_stays_within_its_bounds() {
        let mut pace = Pace::new(100);
        assert_eq!(pace.limit(), MAX_LIMIT);
        for _ in 0..PROBE_EVERY - 1 {
            pace.queued();
            pace.done(Kind::Remove, Duration::from_millis(5), false);
        }
        assert_eq!(pace.limit(), MAX_LIMIT);
        let mut pace = Pace::new(0);
        assert_eq!(pace.limit(), MIN_LIMIT);
        pace.done(Kind::Remove, Duration::from_millis(1), true);
        for _ in 0..1000 {
            // Alone while the pace probes (as the gate has it).
            let alone = pace.limit() == 1;
            pace.done(Kind::Remove, Duration::from_secs(1), alone);
            assert!(pace.limit == MIN_LIMIT);
        }
    }

    #[tokio::test]
    async fn waiters_get_slots_by_lane_then_ticket_not_by_arrival() {
        let gate = Arc::new(Gate::new(MIN_LIMIT));
        let held: Vec<Slot> = vec![gate.slot().await.0, gate.slot().await.0];
        assert_eq!(gate.in_flight(), 2);
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiters = [
            (Lane::Steady, 3),
            (Lane::Steady, 1),
            (Lane::Urgent, 9),
            (Lane::Steady, 2),
        ];
        let mut tasks = Vec::new();
        for (lane, ticket) in waiters {
            let (gate, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(with_priority(
                Priority { lane, ticket },
                async move {
                    let (slot, _) = gate.slot().await;
                    order.lock().unwrap().push(ticket);
                    drop(slot);
                },
            )));
            tokio::task::yield_now().await;
        }
        // Every waiter is queued before a slot frees.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(order.lock().unwrap().is_empty());
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![9, 1, 2, 3]);
        assert_eq!(gate.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_no_slot_taken() {
        let gate = Arc::new(Gate::new(MIN_LIMIT));
        let held = vec![gate.slot().await.0, gate.slot().await.0];
        let g = gate.clone();
        let gave_up = tokio::spawn(async move { g.slot().await });
        tokio::task::yield_now().await;
        gave_up.abort();
        let _ = gave_up.await;
        drop(held);
        assert_eq!(gate.in_flight(), 0);
        // Both slots are free again.
        let (a, b) = (gate.slot().await, gate.slot().await);
        assert_eq!((a.1, b.1), (Duration::ZERO, Duration::ZERO));
        assert_eq!(gate.in_flight(), 2);
    }

    #[tokio::test]
    async fn no_more_calls_than_the_limit_hold_slots() {
        let gate = Arc::new(Gate::new(3));
        let peak = Arc::new(Mutex::new(0usize));
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let (gate, peak) = (gate.clone(), peak.clone());
                tokio::spawn(with_priority(
                    Priority {
                        lane: Lane::Steady,
                        ticket: i,
                    },
                    async move {
                        let (slot, _) = gate.slot().await;
                        {
                            let mut p = peak.lock().unwrap();
                            *p = (*p).max(gate.in_flight());
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        slot.answered(Kind::Create);
                    },
                ))
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(*peak.lock().unwrap() <= gate.limit().max(3));
        assert!(*peak.lock().unwrap() >= 2);
        assert_eq!(gate.in_flight(), 0);
    }

    #[test]
    fn a_probe_ends_only_after_calls_that_ran_alone() {
        let mut pace = Pace::new(8);
        for _ in 0..PROBE_EVERY {
            pace.done(Kind::Create, Duration::from_millis(20), false);
        }
        assert_eq!(pace.limit(), 1, "probing");
        // The calls still in flight drain: the probe goes on.
        for _ in 0..7 {
            pace.done(Kind::Create, Duration::from_millis(60), false);
        }
        assert_eq!(pace.limit(), 1);
        for _ in 0..PROBE_CALLS {
            pace.done(Kind::Create, Duration::from_millis(10), true);
        }
        assert!(pace.limit() > 1);
    }
}
