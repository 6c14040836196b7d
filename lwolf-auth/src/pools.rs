//! ureq agents with a connection pool each, and which one a request takes.
//!
//! ureq's pool is one lock, held while it probes the connection it hands out (three system
//! calls). With one pool, 16 threads through the agent's proxy waited on that lock about
//! three times a request, and the proxy served 0.6x what nginx does.
//!
//! Each thread has a home pool, the first at the start, and keeps it while no other request
//! is in flight there. A thread that finds its home busy moves to the next pool with none
//! (else the least busy) and stays. So requests made one at a time, from any thread, keep
//! using the first pool and its connections; concurrent threads settle one to a pool, each
//! on its own connections (the same thread and connection, request after request, cost the
//! server a third of what connections passed between threads did).

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use ureq::Agent;

/// How many pools a set of agents has: a request in flight in each before two share one.
pub(crate) const POOLS: usize = 16;

thread_local! {
    /// This thread's home pool: an index into any [`Pools`] it uses.
    static HOME: Cell<usize> = const { Cell::new(0) };
}

/// One counter on a cache line of its own: the counters change on every request, from
/// every thread.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicUsize);

/// [`POOLS`] ureq agents of one configuration, each with its own pool.
pub(crate) struct Pools {
    agents: Box<[Agent]>,
    in_flight: Box<[Counter]>,
}

/// An agent taken for one exchange: its pool counts the exchange until this is dropped.
pub(crate) struct Taken<'a> {
    pub(crate) agent: &'a Agent,
    in_flight: &'a AtomicUsize,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pools {
    /// `count` agents made by `make` (at least one).
    pub(crate) fn new(count: usize, make: impl Fn() -> Agent) -> Pools {
        let count = count.max(1);
        Pools {
            agents: (0..count).map(|_| make()).collect(),
            in_flight: (0..count).map(|_| Counter::default()).collect(),
        }
    }

    /// The agent for an exchange about to start: this thread's home, or where it moves to
    /// when another request is in flight there. Held until the response has been read, when
    /// ureq has put the connection back in that agent's pool.
    pub(crate) fn take(&self) -> Taken<'_> {
        let count = self.agents.len();
        let home = HOME.with(Cell::get) % count;
        let chosen = if self.busy(home) == 0 {
            home
        } else {
            // The next one with nothing in flight, else the least busy, from after home:
            // threads that move at once spread out.
            let mut best = home;
            let mut fewest = usize::MAX;
            for i in (1..count).map(|step| (home + step) % count) {
                let n = self.busy(i);
                if n < fewest {
                    best = i;
                    fewest = n;
                    if n == 0 {
                        break;
                    }
                }
            }
            HOME.with(|h| h.set(best));
            best
        };
        let in_flight = &self.in_flight[chosen].0;
        in_flight.fetch_add(1, Ordering::Relaxed);
        Taken {
            agent: &self.agents[chosen],
            in_flight,
        }
    }

    fn busy(&self, index: usize) -> usize {
        self.in_flight[index].0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(pools: &Pools, taken: &Taken<'_>) -> usize {
        pools
            .agents
            .iter()
            .position(|a| std::ptr::eq(a, taken.agent))
            .expect("an agent of these pools")
    }

    #[test]
    fn a_thread_keeps_its_pool_until_another_request_is_in_flight_there() {
        HOME.with(|h| h.set(0));
        let pools = Pools::new(3, Agent::new_with_defaults);
        for _ in 0..3 {
            assert_eq!(index(&pools, &pools.take()), 0, "one at a time");
        }
        let a = pools.take();
        let b = pools.take();
        assert_eq!([index(&pools, &a), index(&pools, &b)], [0, 1], "moved");
        drop((a, b));
        assert_eq!(index(&pools, &pools.take()), 1, "stays where it moved");
        let c = pools.take();
        let d = pools.take();
        let e = pools.take();
        assert_eq!(
            [index(&pools, &c), index(&pools, &d), index(&pools, &e)],
            [1, 2, 0],
            "the next free one, wrapping round"
        );
        let f = pools.take();
        assert_eq!(index(&pools, &f), 1, "none free: the least busy after home");
        drop((c, d, e, f));
        assert!(pools
            .in_flight
            .iter()
            .all(|c| c.0.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn new_threads_one_after_another_take_the_first() {
        let pools = Pools::new(4, Agent::new_with_defaults);
        for _ in 0..5 {
            std::thread::scope(|s| {
                s.spawn(|| assert_eq!(index(&pools, &pools.take()), 0));
            });
        }
    }

    #[test]
    fn at_least_one_agent() {
        let pools = Pools::new(0, Agent::new_with_defaults);
        assert_eq!(pools.agents.len(), 1);
        assert_eq!(index(&pools, &pools.take()), 0);
    }
}
