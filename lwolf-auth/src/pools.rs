//! ureq agents with a connection pool each, and which one a request takes.
//!
//! ureq's pool is one lock, held while it probes the connection it hands out (three system
//! calls). With one pool, 16 threads through the agent's proxy waited on that lock about
//! three times a request, and the proxy served 0.6x what nginx does.
//!
//! Each thread has a home pool and keeps it while no other request is in flight there. A
//! thread that finds its home busy moves to the next pool with none (else the least busy)
//! and stays. Concurrent threads so settle one to a pool, each on its own connections: the
//! same thread and connection, request after request, cost the server a third of what
//! connections passed between threads did. A thread whose last request ended [`SETTLE`] ago
//! or more, or a new one, takes the first free pool: requests made one at a time, from any
//! thread, share the first pool's connections, and a burst's spread does not outlast it.
//! Agents are made when first taken.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use once_cell::sync::OnceCell;
use ureq::Agent;

/// How many pools a set of agents has: a request in flight in each before two share one.
/// The proxy of `lwolf agent` is driven by 16 connections in its benchmark.
pub(crate) const POOL_COUNT: usize = 16;

/// How long a thread keeps its home without a request.
const SETTLE: Duration = Duration::from_secs(1);

/// Tells one [`Pools`] from another in a thread's [`Home`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where this thread's last request went.
#[derive(Clone, Copy)]
struct Home {
    /// The [`Pools`] it went through (0: none yet).
    pools: u64,
    index: usize,
    /// When that request started, then when it ended.
    at: Option<Instant>,
}

thread_local! {
    static HOME: Cell<Home> = const {
        Cell::new(Home {
            pools: 0,
            index: 0,
            at: None,
        })
    };
}

/// One counter on a cache line of its own: the counters change on every request, from
/// every thread.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicUsize);

/// [`POOL_COUNT`] ureq agents of one configuration, each with its own pool.
pub(crate) struct Pools {
    id: u64,
    agents: Box<[OnceCell<Agent>]>,
    in_flight: Box<[Counter]>,
    make: Box<dyn Fn() -> Agent + Send + Sync>,
}

/// An agent taken for one exchange: its pool counts the exchange until this is dropped.
pub(crate) struct Taken<'a> {
    pub(crate) agent: &'a Agent,
    _claim: Claim<'a>,
}

/// One request counted in a pool: counted out, and the thread's home told when it ended,
/// when this is dropped (a panic included).
struct Claim<'a> {
    pools: &'a Pools,
    index: usize,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.pools.in_flight[self.index]
            .0
            .fetch_sub(1, Ordering::Relaxed);
        // Not at all while the thread's locals are being destroyed.
        let _ = HOME.try_with(|h| {
            let home = h.get();
            if home.pools == self.pools.id && home.index == self.index {
                h.set(Home {
                    at: Some(Instant::now()),
                    ..home
                });
            }
        });
    }
}

impl Pools {
    /// `count` pools (at least one), whose agents `make` makes when each is first taken.
    pub(crate) fn new(count: usize, make: impl Fn() -> Agent + Send + Sync + 'static) -> Pools {
        let count = count.max(1);
        Pools {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            agents: (0..count).map(|_| OnceCell::new()).collect(),
            in_flight: (0..count).map(|_| Counter::default()).collect(),
            make: Box::new(make),
        }
    }

    /// The agent for an exchange about to start: this thread's home, or where it moves to
    /// when another request is in flight there. Held until the response has been read, when
    /// ureq has put the connection back in that agent's pool.
    pub(crate) fn take(&self) -> Taken<'_> {
        let now = Instant::now();
        let home = HOME.with(Cell::get);
        let settled = home.pools == self.id
            && home
                .at
                .is_some_and(|at| now.saturating_duration_since(at) < SETTLE);
        // A home of these pools is one of their indices.
        let start = if settled { home.index } else { 0 };
        let claim = self.claim_from(start);
        HOME.with(|h| {
            h.set(Home {
                pools: self.id,
                index: claim.index,
                at: Some(now),
            })
        });
        // Made after the claim: were it to panic, the claim is given back.
        let agent = self.agents[claim.index].get_or_init(&self.make);
        Taken {
            agent,
            _claim: claim,
        }
    }

    /// Counts a request in `start` if nothing is in flight there, else in the next pool
    /// after it with nothing in flight (threads that move at once spread out), else in the
    /// least busy. A free pool is claimed atomically: two threads never both take it as free.
    fn claim_from(&self, start: usize) -> Claim<'_> {
        let count = self.agents.len();
        let claim = |index: usize| Claim { pools: self, index };
        let order = (0..count).map(|step| (start + step) % count);
        for i in order.clone() {
            let free = self.in_flight[i]
                .0
                .compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
            if free {
                return claim(i);
            }
        }
        // The first of the least busy, from `start`: a thread stays home among equals.
        let least_busy = order.min_by_key(|&i| self.in_flight(i)).unwrap_or(start);
        self.in_flight[least_busy].0.fetch_add(1, Ordering::Relaxed);
        claim(least_busy)
    }

    fn in_flight(&self, index: usize) -> usize {
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
            .position(|a| a.get().is_some_and(|a| std::ptr::eq(a, taken.agent)))
            .expect("an agent of these pools")
    }

    fn made(pools: &Pools) -> usize {
        pools.agents.iter().filter(|a| a.get().is_some()).count()
    }

    #[test]
    fn a_thread_keeps_its_pool_until_another_request_is_in_flight_there() {
        let pools = Pools::new(3, Agent::new_with_defaults);
        for _ in 0..3 {
            assert_eq!(index(&pools, &pools.take()), 0, "one at a time");
        }
        assert_eq!(made(&pools), 1, "agents are made when first taken");
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
        assert_eq!(index(&pools, &f), 0, "none free, all as busy: home");
        let g = pools.take();
        assert_eq!(
            index(&pools, &g),
            1,
            "none free: the least busy, after home"
        );
        drop((c, d, e, f, g));
        assert!(pools
            .in_flight
            .iter()
            .all(|c| c.0.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn an_idle_thread_or_another_client_starts_again_from_the_first() {
        let pools = Pools::new(3, Agent::new_with_defaults);
        let other = Pools::new(3, Agent::new_with_defaults);
        let a = pools.take();
        let b = pools.take();
        assert_eq!(index(&pools, &b), 1);
        drop((a, b));
        assert_eq!(index(&other, &other.take()), 0, "another client's home");
        assert_eq!(
            index(&pools, &pools.take()),
            0,
            "this one's, after the other's"
        );
        let a = pools.take();
        let b = pools.take();
        drop((a, b));
        std::thread::sleep(SETTLE + Duration::from_millis(100));
        assert_eq!(index(&pools, &pools.take()), 0, "idle: the first free one");
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
    fn a_request_that_panics_is_not_counted_in_flight_after() {
        let pools = Pools::new(2, Agent::new_with_defaults);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _taken = pools.take();
            panic!("a writer's callback panicked");
        }));
        assert!(unwound.is_err());
        assert_eq!(pools.in_flight(0), 0);
        let a = pools.take();
        assert_eq!(index(&pools, &a), 0, "the first pool is free again");
    }

    #[test]
    fn an_agent_that_cannot_be_made_is_not_counted_in_flight() {
        let pools = Pools::new(2, || panic!("no agent"));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _taken = pools.take();
        }));
        assert!(unwound.is_err());
        assert_eq!([pools.in_flight(0), pools.in_flight(1)], [0, 0]);
    }

    #[test]
    fn at_least_one_agent() {
        let pools = Pools::new(0, Agent::new_with_defaults);
        assert_eq!(pools.agents.len(), 1);
        assert_eq!(index(&pools, &pools.take()), 0);
    }
}
