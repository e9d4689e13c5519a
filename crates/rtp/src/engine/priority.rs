//! The engine threads' scheduling, a setting ([`RealtimePriority`]):
//! nothing is raised unless the operator asks for it.
//!
//! A sleeping thread still waits for a CPU when it wakes: on a saturated
//! machine (a load average of 14 on 2 cores, measured) an ordinary thread
//! waited about 15 ms per wake-up. An engine thread may therefore ask the
//! kernel for a real-time policy (`SCHED_FIFO`, as audio servers do),
//! falling back to nice -10, and keeps the normal policy when neither is
//! permitted ([`Applied`] says which applied; the thread logs it). The
//! kernel's real-time throttling keeps a share of every CPU for ordinary
//! threads whatever happens.

/// What scheduling the engine threads ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RealtimePriority {
    /// The normal policy (the default).
    #[default]
    Off,
    /// `SCHED_FIFO` at this priority (1-99; audio servers use 20-88),
    /// falling back to nice -10 when real-time is not permitted.
    Fifo(u8),
}

/// The scheduling an engine thread got from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Applied {
    /// `SCHED_FIFO` as asked.
    Realtime,
    /// The normal policy at nice -10 (real-time was not permitted).
    Nice,
    /// The normal policy (asked for, or nothing else was permitted).
    Normal,
}

/// The nice value asked for when real-time is refused.
#[cfg(target_os = "linux")]
const FALLBACK_NICE: i32 = -10;

/// Applies `want` to the calling thread as far as permitted.
pub(crate) fn apply(want: RealtimePriority) -> Applied {
    match want {
        RealtimePriority::Off => Applied::Normal,
        RealtimePriority::Fifo(p) => {
            #[cfg(target_os = "linux")]
            {
                if os::set_fifo(i32::from(p)).is_ok() {
                    return Applied::Realtime;
                }
                if os::set_nice(FALLBACK_NICE).is_ok() {
                    return Applied::Nice;
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = p;
            Applied::Normal
        }
    }
}

/// The calling thread's scheduling, through `thread-priority` (no unsafe
/// code here). Linux schedules threads, not processes, so both calls
/// change the engine thread only.
#[cfg(target_os = "linux")]
mod os {
    use thread_priority::{
        NormalThreadSchedulePolicy, RealtimeThreadSchedulePolicy, ThreadPriority,
        ThreadPriorityValue, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };

    /// Why the kernel (or the crate) refused.
    #[derive(Debug)]
    pub(super) struct Refused;

    /// `SCHED_FIFO` at `priority` (1-99) on the calling thread.
    ///
    /// The crate sets the policy with `pthread_setschedparam`, which takes
    /// no `SCHED_RESET_ON_FORK`: a child forked by this thread would keep
    /// the real-time policy. An engine thread runs only its calls and
    /// never forks, and a fork from any other thread copies that thread's
    /// own (normal) policy, so no process ever inherits it.
    pub(super) fn set_fifo(priority: i32) -> Result<(), Refused> {
        let value = u8::try_from(priority).map_err(|_| Refused)?;
        let priority = ThreadPriority::try_from(value).map_err(|_| Refused)?;
        set_thread_priority_and_policy(
            thread_native_id(),
            priority,
            ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
        )
        .map_err(|_| Refused)
    }

    /// The normal policy at nice value `nice` (-20..=19) on the calling
    /// thread.
    pub(super) fn set_nice(nice: i32) -> Result<(), Refused> {
        set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Crossplatform(crossplatform_for_nice(nice)?),
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
        )
        .map_err(|_| Refused)
    }

    /// The crate's 0..=99 scale value that it maps to `nice` on Linux
    /// (`-20 + trunc(39 * (1 - p / 99))`; e.g. 73 for -10): the crate
    /// takes a niceness for the normal policy only on that scale.
    fn crossplatform_for_nice(nice: i32) -> Result<ThreadPriorityValue, Refused> {
        (0u8..=99)
            .rev()
            .find(|&p| {
                let ratio = 1f32 - f32::from(p) / 99f32;
                // The crate's own arithmetic, truncation included.
                let mapped = i32::from((39f32 * ratio) as i8) - 20;
                mapped == nice
            })
            .and_then(|p| ThreadPriorityValue::try_from(p).ok())
            .ok_or(Refused)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// (nice, rt_priority, policy) of the calling thread from
        /// `/proc/thread-self/stat` (fields 19, 40 and 41).
        fn sched_of_this_thread() -> (i32, u32, u32) {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after_comm.split(' ').collect();
            (
                f[19 - 3].parse().unwrap(),
                f[40 - 3].parse().unwrap(),
                f[41 - 3].parse().unwrap(),
            )
        }

        #[test]
        fn nice_minus_ten_is_asked_for_as_minus_ten() {
            assert_eq!(u8::from(crossplatform_for_nice(-10).unwrap()), 73);
            assert!(crossplatform_for_nice(-21).is_err());
            let got = std::thread::spawn(|| set_nice(-10).map(|()| sched_of_this_thread()))
                .join()
                .unwrap();
            // Without CAP_SYS_NICE (or RLIMIT_NICE) the kernel refuses.
            if let Ok((nice, _, policy)) = got {
                assert_eq!((nice, policy), (-10, 0), "SCHED_OTHER at nice -10");
            }
        }

        #[test]
        fn fifo_is_sched_fifo_at_the_priority_asked_for() {
            let got = std::thread::spawn(|| set_fifo(10).map(|()| sched_of_this_thread()))
                .join()
                .unwrap();
            // Without CAP_SYS_NICE (or RLIMIT_RTPRIO) the kernel refuses.
            if let Ok((_, rt_priority, policy)) = got {
                assert_eq!((rt_priority, policy), (10, 1), "SCHED_FIFO at 10");
            }
            assert!(set_fifo(100).is_err(), "out of the 1-99 range");
        }
    }
}
