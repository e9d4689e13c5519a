use proptest::prelude::*;

use super::*;

/// A machine that carries `capacity` calls on time and whose windows
/// show a call's load only `lag` windows after it was admitted (set-up
/// on the runtime, then the model's first replies): the shape measured
/// on 1,500 INVITEs offered at once. `offered` INVITEs arrive in each
/// window (each tried once); calls never end. Returns the calls served
/// after each window and the INVITEs refused.
fn simulate(
    policy: AdmissionPolicy,
    capacity: usize,
    lag: usize,
    offered: impl Fn(usize) -> usize,
    windows: usize,
) -> (Vec<usize>, usize) {
    let mut a = AdmissionControl::new(policy);
    let mut calls = 0;
    let mut history = Vec::new();
    let mut refused = 0;
    for w in 0..windows {
        for _ in 0..offered(w) {
            if a.admit(calls, false).is_ok() {
                calls += 1;
            } else {
                refused += 1;
            }
        }
        history.push(calls);
        let seen = w.checked_sub(lag).map_or(0, |i| history[i]);
        a.window(calls, seen > capacity);
    }
    (history, refused)
}

#[test]
fn a_burst_at_an_idle_engine_gets_one_step_before_the_first_window() {
    let mut a = AdmissionControl::new(AdmissionPolicy::default());
    let admitted = (0..1500)
        .filter(|&n| a.admit(n.min(100), false).is_ok())
        .count();
    assert_eq!(admitted, 100);
    assert_eq!(a.admit(100, false), Err(Refusal::Paced));
    assert_eq!(a.ceiling(), None);
}

#[test]
fn the_1000_call_ramp_is_never_paced_on_a_machine_that_carries_it() {
    // 50 calls a second for 20 s, as the load tool's target run offers
    // them, and a burst of 99 at once in the middle.
    let (calls, refused) = simulate(
        AdmissionPolicy::default(),
        1200,
        3,
        |w| {
            if w == 10 {
                99
            } else if w < 20 {
                50
            } else {
                0
            }
        },
        30,
    );
    assert_eq!(refused, 0);
    assert_eq!(calls.last(), Some(&1049));
}

#[test]
fn offered_more_than_it_carries_it_settles_at_its_capacity_not_above() {
    // 300 INVITEs a second for five minutes at a machine that carries 950
    // and shows a call's load three windows late.
    let (calls, refused) = simulate(AdmissionPolicy::default(), 950, 3, |_| 300, 300);
    let peak = calls.iter().copied().max().unwrap_or(0);
    // Before the first overload is seen the steps overshoot by at most
    // the lag's worth of budget: (capacity + step) x (1 + growth)^lag...
    assert!(peak <= 1050 * 1331 / 1000, "peak {peak}");
    assert!(
        peak > 950,
        "peak {peak}: the test must overload the machine"
    );
    // ...and after it the calls never grow: calls never end here, so the
    // machine stays over capacity and the ceiling stays under the calls.
    let first_over = calls.iter().position(|&c| c > 950).unwrap_or(0);
    assert!(
        calls[first_over + 4..].iter().all(|&c| c == peak),
        "{calls:?}"
    );
    assert!(refused > 0);
}

#[test]
fn with_calls_ending_the_engine_rides_at_its_capacity() {
    // Calls that last 30 windows, 60 offered a window, capacity 950, lag
    // 3. After the first minute the calls served stay within the lag's
    // probing above capacity (3 windows x 1 %, plus the first
    // overload's), and on average within 15 % below it (the calls of one
    // climb end together in this model, while the lagged overload still
    // refuses).
    let policy = AdmissionPolicy::default();
    let mut a = AdmissionControl::new(policy);
    let mut ends: Vec<usize> = Vec::new();
    let mut history: Vec<usize> = Vec::new();
    for w in 0..600 {
        ends.retain(|&e| e > w);
        for _ in 0..60 {
            if a.admit(ends.len(), false).is_ok() {
                ends.push(w + 30);
            }
        }
        history.push(ends.len());
        let seen = w.checked_sub(3).map_or(0, |i| history[i]);
        a.window(ends.len(), seen > 950);
    }
    let late = &history[60..];
    let hi = late.iter().copied().max().unwrap_or(0);
    let mean = late.iter().sum::<usize>() / late.len();
    assert!(hi <= 950 * 105 / 100, "max {hi}");
    assert!(mean >= 950 * 85 / 100, "mean {mean}");
}

#[test]
fn two_overloaded_windows_set_the_ceiling_once_per_overload() {
    let mut a = AdmissionControl::new(AdmissionPolicy::default());
    a.window(1000, true);
    assert_eq!(a.budget(), 0, "an overloaded window pauses admission");
    assert_eq!(a.ceiling(), None, "one window alone is not an overload yet");
    a.window(1000, false);
    assert_eq!(a.budget(), 100);
    a.window(1000, true);
    a.window(1000, true);
    assert_eq!(a.ceiling(), Some(950), "two in a row are");
    a.window(900, true);
    assert_eq!(a.ceiling(), Some(950), "one decrease per overload");
    a.window(945, false);
    assert_eq!(a.ceiling(), Some(959), "probing: 1 % a healthy window");
    assert_eq!(a.budget(), 100);
    a.window(800, true);
    a.window(800, true);
    assert_eq!(a.ceiling(), Some(760), "the next overload sets it anew");
    a.window(700, false);
    assert_eq!(a.ceiling(), Some(760), "no probing far below the ceiling");
    a.window(753, false);
    assert_eq!(a.ceiling(), Some(767), "probing when the calls reach it");
    // The fewest calls of the two windows and the two before them: the
    // load seen may be that of calls admitted earlier.
    let mut b = AdmissionControl::new(AdmissionPolicy::default());
    for calls in [600, 700, 800, 900] {
        b.window(calls, false);
    }
    b.window(1000, true);
    b.window(1100, true);
    assert_eq!(b.ceiling(), Some(760));
    // A tiny ceiling still rises by one call a window.
    let mut c = AdmissionControl::new(AdmissionPolicy::default());
    c.window(3, true);
    c.window(3, true);
    c.window(2, false);
    assert_eq!(c.ceiling(), Some(3));
}

#[test]
fn the_scaled_load_refuses_before_the_budget_is_spent() {
    let mut a = AdmissionControl::new(AdmissionPolicy::default());
    assert_eq!(a.admit(0, true), Err(Refusal::Overloaded));
    assert_eq!(a.budget(), 100, "a refusal takes nothing from the budget");
}

proptest! {
    /// Between two windows the engine takes no more than its budget, and
    /// never a call that reaches the ceiling.
    #[test]
    fn admission_keeps_to_its_budget_and_its_ceiling(
        events in proptest::collection::vec((0usize..3000, any::<bool>(), 0usize..400), 1..60),
        step in 1usize..200,
        growth in 0.0f64..1.0,
        backoff in 0.0f64..0.5,
        probe in 0.0f64..0.1,
    ) {
        let mut a = AdmissionControl::new(AdmissionPolicy { step, growth, backoff, probe });
        let mut calls = 0usize;
        let mut allowed = step;
        for (window_calls, overloaded, offered) in events {
            let mut taken = 0;
            for _ in 0..offered {
                if a.admit(calls, false).is_ok() {
                    prop_assert!(a.ceiling().is_none_or(|c| calls < c));
                    calls += 1;
                    taken += 1;
                }
            }
            prop_assert!(taken <= allowed);
            calls = window_calls;
            a.window(calls, overloaded);
            allowed = if overloaded {
                0
            } else {
                step.max((calls as f64 * growth) as usize)
            };
        }
    }
}
