//! Admission by the engine's windows, without IO: how many new calls the
//! engine takes between two of its load windows, and up to how many calls
//! in all.
//!
//! The load signals ([`load`](super::load)) say whether the engine keeps
//! its calls on time *now*, but a call's cost reaches them late: a call
//! admitted this second sets up on the runtime, its model starts talking a
//! second or more later, and the call tasks' backlog (the signal that
//! fires first on a small machine) shows it after that. Measured on
//! 1,500 INVITEs offered at once (session 15, `docs/PERFORMANCE.md`): an
//! idle engine has no window to refuse by and let in 433 calls in the
//! first quarter second; once its windows refused, every window that
//! happened to look healthy let in another 100-200 calls, and the agent
//! ended at 1,070 calls with 5,039 packets late. Two rules bound that:
//!
//! - **A budget per window** (the set-up rate): after each window that
//!   is not overloaded the engine takes at most
//!   max([`AdmissionPolicy::step`], [`AdmissionPolicy::growth`] × calls)
//!   new calls until the next window; after an overloaded one, none. An
//!   engine starts with one step and gets one again each time it becomes
//!   idle (its calls may all have been shorter than a window, and then it
//!   never measured one). Telephony gear calls this a
//!   calls-per-second limit; here it follows what the engine measured.
//! - **A ceiling learned from overload** (multiplicative decrease,
//!   additive probing): a second window over the limits in a row (one
//!   alone pauses admission but may be a moment's noise: measured, a
//!   single window with the call tasks' backlog at 9 of 8 among healthy
//!   ones) sets the ceiling to `n` × (1 − [`AdmissionPolicy::backoff`]),
//!   `n` the fewest calls of those two windows and the two before them (a
//!   call weighs on the signals a window or two after its admission; the
//!   overloaded windows after them show calls admitted before, so they do
//!   not lower it again); the engine takes no call that would bring it to
//!   the ceiling, and each healthy window whose calls reach the ceiling
//!   raises it by [`AdmissionPolicy::probe`] of itself (at least one
//!   call), so capacity that a burst's set-up work hid is found again in
//!   steady operation. The ceiling survives idle periods: it is what the
//!   engine has learned about this machine.
//!
//! [`AdmissionControl`] holds that state; the engine keeps one behind a
//! lock taken only by the tasks that admit calls (never by an engine
//! thread: they publish their windows through atomics and a count). It
//! takes the newest window into account when a call asks (windows that
//! ended while no call asked are not seen one by one), with the calls of
//! every engine thread; with more than one thread each thread's window
//! renews the budget, so the set-up rate grows with the threads.

/// How the engine paces new calls by its windows. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionPolicy {
    /// New calls taken before the first window, after an idle period, and
    /// at least this many after every healthy window.
    pub step: usize,
    /// After a healthy window, up to this fraction of the calls served
    /// may be added before the next (when more than `step`).
    pub growth: f64,
    /// Two overloaded windows in a row with `n` calls (the fewest of
    /// them and the two windows before) set the ceiling to
    /// `n` × (1 − `backoff`).
    pub backoff: f64,
    /// Each healthy window whose calls reach the ceiling raises it by this
    /// fraction of it (at least one call).
    pub probe: f64,
}

impl Default for AdmissionPolicy {
    /// Step 100 (twice the 50 calls a second of the 1,000-call target's
    /// ramp, so a ramp the engine can carry is never paced), growth 10 %,
    /// backoff 5 %, probe 1 % a window (a ceiling of 900 that the calls
    /// keep reaching is back to 950 after about six healthy seconds).
    fn default() -> Self {
        AdmissionPolicy {
            step: 100,
            growth: 0.1,
            backoff: 0.05,
            probe: 0.01,
        }
    }
}

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The engine's last window (with the calls added since) is over its
    /// [`LoadLimits`](super::LoadLimits).
    Overloaded,
    /// The calls the engine takes before its next window have been taken.
    Paced,
    /// The engine is at the ceiling learned from its last overload.
    Ceiling,
}

/// The admission state. See the module docs.
///
/// ```
/// use callbridge_rtp::engine::{AdmissionControl, AdmissionPolicy, Refusal};
///
/// let mut a = AdmissionControl::new(AdmissionPolicy { step: 2, ..AdmissionPolicy::default() });
/// // An idle engine takes one step of calls, then waits for a window.
/// assert_eq!(a.admit(0, false), Ok(()));
/// assert_eq!(a.admit(1, false), Ok(()));
/// assert_eq!(a.admit(2, false), Err(Refusal::Paced));
/// // A healthy window with 2 calls: one more step.
/// a.window(2, false);
/// assert_eq!(a.admit(2, false), Ok(()));
///
/// // An engine overloaded with 100 calls for two windows: nothing until a
/// // healthy window, and then no more than the ceiling learned (95,
/// // probed 1 % higher when the calls reach it).
/// let mut b = AdmissionControl::new(AdmissionPolicy::default());
/// b.window(100, true);
/// assert_eq!(b.ceiling(), None, "one overloaded window only pauses");
/// b.window(100, true);
/// assert_eq!(b.admit(50, false), Err(Refusal::Paced));
/// b.window(94, false);
/// assert_eq!(b.ceiling(), Some(96));
/// assert_eq!(b.admit(96, false), Err(Refusal::Ceiling));
/// assert_eq!(b.admit(90, false), Ok(()));
/// ```
#[derive(Debug, Clone)]
pub struct AdmissionControl {
    policy: AdmissionPolicy,
    /// Calls that may still be taken before the next window.
    budget: usize,
    ceiling: Option<usize>,
    /// Overloaded windows in a row, up to the last.
    streak: u32,
    /// The calls served at the windows before the last, newest first.
    recent: [usize; REMEMBERED],
}

/// Overloaded windows in a row that set the ceiling.
const CONFIRM: u32 = 2;

/// Windows whose calls an overload may reflect (besides the one that
/// confirms it): the first overloaded one, and the two before it, since a
/// call's load reaches the signals a window or two after its admission.
/// The calls that overloaded the engine are the fewest of these.
const REMEMBERED: usize = 3;

impl AdmissionControl {
    /// An engine that has measured nothing: one step of budget, no ceiling.
    #[must_use]
    pub fn new(policy: AdmissionPolicy) -> AdmissionControl {
        AdmissionControl {
            policy,
            budget: policy.step,
            ceiling: None,
            streak: 0,
            recent: [usize::MAX; REMEMBERED],
        }
    }

    /// A window ended with `calls` calls served, `overloaded` or not (an
    /// idle engine's window has 0 calls and is not overloaded: one step
    /// of budget).
    pub fn window(&mut self, calls: usize, overloaded: bool) {
        let fewest = self.recent.iter().copied().fold(calls, usize::min);
        self.recent.rotate_right(1);
        self.recent[0] = calls;
        if overloaded {
            self.budget = 0;
            self.streak = self.streak.saturating_add(1);
            // One decrease per overload: the windows after the one that
            // confirms it show calls admitted before, and would ratchet
            // the ceiling down by the calls that end meanwhile.
            if self.streak == CONFIRM {
                self.ceiling = Some(scale(fewest, 1.0 - self.policy.backoff));
            }
            return;
        }
        self.streak = 0;
        self.budget = self.policy.step.max(scale(calls, self.policy.growth));
        // Probing only while the ceiling binds: a ceiling raised while the
        // calls stay far below it has not been tried.
        if let Some(c) = self.ceiling {
            let up = scale(c, self.policy.probe).max(1);
            if calls.saturating_add(up) >= c {
                self.ceiling = Some(c.saturating_add(up));
            }
        }
    }

    /// One more call, with `calls` calls served now (those handed to the
    /// engine included) and the engine `overloaded` by its last window
    /// scaled by the calls added since. Takes one from the budget when
    /// admitted.
    ///
    /// # Errors
    /// The [`Refusal`] when the call must not be admitted.
    pub fn admit(&mut self, calls: usize, overloaded: bool) -> Result<(), Refusal> {
        if overloaded {
            return Err(Refusal::Overloaded);
        }
        if self.ceiling.is_some_and(|c| calls >= c) {
            return Err(Refusal::Ceiling);
        }
        if self.budget == 0 {
            return Err(Refusal::Paced);
        }
        self.budget -= 1;
        Ok(())
    }

    /// The ceiling learned from the last overload, if any.
    #[must_use]
    pub fn ceiling(&self) -> Option<usize> {
        self.ceiling
    }

    /// Calls that may still be taken before the next window.
    #[must_use]
    pub fn budget(&self) -> usize {
        self.budget
    }
}

/// `n` × `f`, rounded down, for a fraction between 0 and 1.
fn scale(n: usize, f: f64) -> usize {
    let f = f.clamp(0.0, 1.0);
    // Exact for call counts: far below 2^52.
    (n as f64 * f).floor() as usize
}

#[cfg(test)]
mod tests;
