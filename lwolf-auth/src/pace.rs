//! The pace of API calls (`max_in_flight`, `max_requests_per_second`): neither API publishes
//! a rate limit, so the client keeps its own. One governor per API origin, shared by every
//! handle of a client (tenants and APIs included). A caller over the limit waits its turn,
//! in the order it came, within its deadline; one whose deadline passes while it waits gets
//! [`Error::Deadline`] and nothing is sent. Without limits there is no governor at all.

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::fork::PerProcess;

/// The limits of one API origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Limits {
    /// Most requests in flight at once (0: no limit).
    pub max_in_flight: u32,
    /// Most requests begun per second (0: no limit): starts are spaced `1 s / n` apart.
    pub per_second: u32,
}

impl Limits {
    pub(crate) fn any(self) -> bool {
        self.max_in_flight > 0 || self.per_second > 0
    }
}

/// The governors of a client, by API origin. The map is a [`PerProcess`]: a thread of the
/// parent caught holding its lock at a `fork()` leaves no child waiting on it (the child
/// keeps the governors made so far; each has a queue of its own there).
pub(crate) struct Governors {
    limits: Limits,
    by_origin: PerProcess<HashMap<String, Arc<Governor>>>,
}

impl Governors {
    /// `None` without limits: then no call pays anything.
    pub(crate) fn new(limits: Limits) -> Option<Governors> {
        limits.any().then(|| Governors {
            limits,
            by_origin: PerProcess::new(HashMap::new(), crate::fork::cloned),
        })
    }

    /// The governor of `origin`.
    pub(crate) fn of(&self, origin: &str) -> Arc<Governor> {
        let mut all = self.by_origin.get().lock.lock();
        Arc::clone(
            all.entry(origin.to_owned())
                .or_insert_with(|| Arc::new(Governor::new(self.limits))),
        )
    }
}

/// The queue of one API origin.
pub(crate) struct Governor {
    limits: Limits,
    /// A child of a fork starts with its own queue, empty (what the parent's threads were
    /// waiting for is not the child's).
    state: PerProcess<Queue>,
}

#[derive(Clone, Default)]
struct Queue {
    /// The next ticket to hand out, and the one whose turn it is.
    next_ticket: u64,
    serving: u64,
    /// Tickets whose holders gave up (their deadline passed) before their turn.
    abandoned: BTreeSet<u64>,
    in_flight: u32,
    /// The earliest moment the next request may begin.
    next_start: Option<Instant>,
}

/// A request's place among those in flight; the next may go when it is dropped.
pub(crate) struct Permit {
    governor: Arc<Governor>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let level = self.governor.state.get();
        let mut queue = level.lock.lock();
        queue.in_flight = queue.in_flight.saturating_sub(1);
        drop(queue);
        level.changed.notify_all();
    }
}

impl Governor {
    fn new(limits: Limits) -> Governor {
        Governor {
            limits,
            state: PerProcess::new(Queue::default(), |_| Queue::default()),
        }
    }

    /// Waits for this caller's turn (at most until `deadline`): the permit, and whether it
    /// had to wait at all.
    pub(crate) fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<(Permit, bool), Error> {
        let level = self.state.get();
        let mut queue = level.lock.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        let mut waited = false;
        loop {
            let now = Instant::now();
            let my_turn = queue.serving == ticket;
            let room =
                self.limits.max_in_flight == 0 || queue.in_flight < self.limits.max_in_flight;
            let start_at = queue.next_start.filter(|t| *t > now);
            if my_turn && room && start_at.is_none() {
                queue.serving += 1;
                skip_abandoned(&mut queue);
                queue.in_flight += 1;
                if self.limits.per_second > 0 {
                    let gap = Duration::from_secs(1) / self.limits.per_second;
                    queue.next_start = Some(queue.next_start.map_or(now, |t| t.max(now)) + gap);
                }
                drop(queue);
                // The next in line may be free to go too (there may be room for more).
                level.changed.notify_all();
                return Ok((
                    Permit {
                        governor: Arc::clone(self),
                    },
                    waited,
                ));
            }
            waited = true;
            if now >= deadline {
                if queue.serving == ticket {
                    queue.serving += 1;
                    skip_abandoned(&mut queue);
                } else {
                    queue.abandoned.insert(ticket);
                }
                drop(queue);
                level.changed.notify_all();
                return Err(Error::deadline(
                    "the call's deadline_ms passed while it waited its turn \
                     (max_in_flight, max_requests_per_second); nothing was sent",
                ));
            }
            // Woken by a permit dropped or a turn passed on, or at the next start.
            let until = match start_at {
                Some(t) if my_turn && room => t.min(deadline),
                _ => deadline,
            };
            level.changed.wait_until(&mut queue, until);
        }
    }
}

fn skip_abandoned(queue: &mut Queue) {
    while queue.abandoned.remove(&queue.serving) {
        queue.serving += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_in_flight_and_in_order() {
        let governor = Arc::new(Governor::new(Limits {
            max_in_flight: 1,
            per_second: 0,
        }));
        let far = Instant::now() + Duration::from_secs(10);
        let (first, waited) = governor.acquire(far).unwrap();
        assert!(!waited);
        // A second caller waits; with a deadline that passes, it gives up, and the third is
        // not blocked by the abandoned ticket.
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(matches!(governor.acquire(soon), Err(Error::Deadline(_))));
        drop(first);
        let (_third, _) = governor.acquire(far).unwrap();
    }

    #[test]
    fn starts_are_spaced() {
        let governor = Arc::new(Governor::new(Limits {
            max_in_flight: 0,
            per_second: 50,
        }));
        let far = Instant::now() + Duration::from_secs(10);
        let started = Instant::now();
        for _ in 0..5 {
            drop(governor.acquire(far).unwrap());
        }
        // Four gaps of 20 ms after the first start.
        assert!(started.elapsed() >= Duration::from_millis(79));
    }
}
