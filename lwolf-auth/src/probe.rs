//! One liveness probe per reuse of a pooled connection, where ureq makes two.
//!
//! ureq probes a connection (a non-blocking read: three system calls on TCP) when it goes
//! back to the pool, and again when it is taken out, the second under the pool's lock. The
//! second finds all the first would have (bytes the server sent past its answer, a close),
//! and more (what came while it sat idle), so the first is skipped: a connection just used
//! goes back to the pool unprobed and is probed when it is taken. A connection with
//! unread bytes in its buffer is still refused at once, by ureq, before any probe.

use std::fmt;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};
use ureq::Error;

/// The connector that wraps each transport of the chain before it in a [`ProbedOnce`].
#[derive(Debug, Default)]
pub(crate) struct ProbeWhenTaken;

impl<In: Transport> Connector<In> for ProbeWhenTaken {
    type Out = ProbedOnce<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(|inner| ProbedOnce {
            inner,
            probe_skipped: false,
        }))
    }
}

/// A transport whose first liveness probe after each use is answered "open" unasked; the
/// next one asks the transport.
pub(crate) struct ProbedOnce<T> {
    inner: T,
    /// Whether a probe was skipped since the transport was last used.
    probe_skipped: bool,
}

impl<T: Transport> Transport for ProbedOnce<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.probe_skipped = false;
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.probe_skipped = false;
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.probe_skipped = false;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        if !self.probe_skipped {
            self.probe_skipped = true;
            return true;
        }
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

impl<T: fmt::Debug> fmt::Debug for ProbedOnce<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
