//! Steps of the wall clock, told from the steady clock: the relay stamps messages with the wall
//! clock as it is, and says so in its log when that clock jumps.
//!
//! Message times are the wall clock's (the room's order is the seq's alone), so a step is not
//! an error; but a time in the log that jumps ten years, or goes back an hour, should have an
//! explanation beside it in the relay's own log.

use std::time::{Duration, Instant};

use crate::proto::message::Millis;

/// How far the wall clock may drift from the steady clock between two looks before it counts
/// as a step (NTP slews far more slowly than this; a machine suspended and resumed shows as a
/// step, since the steady clock stands still meanwhile).
pub const STEP: Duration = Duration::from_secs(2);

/// The last look at both clocks.
#[derive(Debug, Default)]
pub struct ClockWatch {
    /// The steady and wall clocks at the last look.
    last: Option<(Instant, Millis)>,
}

/// A step of the wall clock against the steady one, in milliseconds: forward when positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step(pub i64);

impl ClockWatch {
    /// Looks at both clocks: the wall clock's step since the last look, if it stepped.
    pub fn look(&mut self, now: Instant, wall: Millis) -> Option<Step> {
        let last = self.last.replace((now, wall));
        let (then, then_wall) = last?;
        let steady =
            i64::try_from(now.saturating_duration_since(then).as_millis()).unwrap_or(i64::MAX);
        let step = wall.0.saturating_sub(then_wall.0).saturating_sub(steady);
        (step.unsigned_abs() > STEP.as_millis() as u64).then_some(Step(step))
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (way, ms) = if self.0 >= 0 {
            ("forward", self.0.unsigned_abs())
        } else {
            ("back", self.0.unsigned_abs())
        };
        let secs = ms / 1000;
        let (n, unit) = match secs {
            s if s >= 2 * 86_400 => (s / 86_400, "days"),
            s if s >= 2 * 3600 => (s / 3600, "hours"),
            s if s >= 2 * 60 => (s / 60, "minutes"),
            s => (s, "seconds"),
        };
        write!(f, "{way} by {n} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_told_from_time_passing_and_slow_drift() {
        let t0 = Instant::now();
        let w0 = Millis(1_795_593_600_000);
        let mut watch = ClockWatch::default();
        assert_eq!(
            watch.look(t0, w0),
            None,
            "the first look has nothing to compare"
        );
        // A second passes on both clocks, then a little drift: no step.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(watch.look(t1, Millis(w0.0 + 1000)), None);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(watch.look(t2, Millis(w0.0 + 2000 + 1500)), None);
        // Ten years forward, then back.
        let decade = 10 * 365 * 86_400_000;
        let t3 = t2 + Duration::from_secs(1);
        let step = watch.look(t3, Millis(w0.0 + 4500 + decade)).unwrap();
        assert_eq!(step, Step(decade));
        assert_eq!(step.to_string(), "forward by 3650 days");
        let t4 = t3 + Duration::from_secs(1);
        let back = watch.look(t4, Millis(w0.0 + 5500)).unwrap();
        assert_eq!(back, Step(-decade));
        assert_eq!(back.to_string(), "back by 3650 days");
        assert_eq!(Step(-3_000).to_string(), "back by 3 seconds");
        assert_eq!(Step(7_200_000).to_string(), "forward by 2 hours");
        // A pause of the whole process (SIGSTOP) moves both clocks alike: no step.
        let t5 = t4 + Duration::from_secs(40);
        assert_eq!(watch.look(t5, Millis(w0.0 + 45_500)), None);
    }
}
