//! `GET /metrics`: the client's counters (`Client::stats`) and the agent's own, in the
//! Prometheus text exposition format (0.0.4), every name under `lwolf_`. No label or value
//! holds a token, the key or a secret.

// `/metrics` is served on the socket, which Windows does not have yet.
#![cfg_attr(windows, allow(dead_code))]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use lwolf_auth::Stats;

/// Why a request was refused, as the `reason` label says it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refused {
    Peer,
    Key,
    Host,
    Target,
    Path,
    Body,
    Busy,
    Bad,
}

const REASONS: [(Refused, &str); 8] = [
    (Refused::Peer, "peer"),
    (Refused::Key, "key"),
    (Refused::Host, "host"),
    (Refused::Target, "target"),
    (Refused::Path, "path"),
    (Refused::Body, "body"),
    (Refused::Busy, "busy"),
    (Refused::Bad, "bad_request"),
];

/// The agent's own counters.
#[derive(Default)]
pub(crate) struct Metrics {
    socket_requests: AtomicU64,
    proxy_requests: AtomicU64,
    refused: [AtomicU64; 8],
    reloads: AtomicU64,
    sink_writes: AtomicU64,
}

impl Metrics {
    pub(crate) fn served(&self, proxy: bool) {
        let counter = if proxy {
            &self.proxy_requests
        } else {
            &self.socket_requests
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, why: Refused) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reloaded(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sink_written(&self) {
        self.sink_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition: `stats` of the client, then the agent's counters.
    pub(crate) fn render(&self, stats: &Stats, connections: usize) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(
                out,
                "# HELP lwolf_{name} {help}\n# TYPE lwolf_{name} {kind}"
            );
            for (labels, value) in samples {
                let _ = writeln!(out, "lwolf_{name}{labels} {value}");
            }
        };
        let counters = [
            (
                "token_requests_total",
                stats.token_requests,
                "Requests sent to the token endpoint, retries included.",
            ),
            (
                "token_failures_total",
                stats.token_failures,
                "Token fetches that ended in an error.",
            ),
            (
                "tokens_shared_total",
                stats.tokens_shared,
                "Tokens taken from cache_dir or cache_url instead of fetched.",
            ),
            (
                "forced_renewals_total",
                stats.forced_renewals,
                "Renewals forced by an API's 401/403.",
            ),
            (
                "renewals_declined_total",
                stats.renewals_declined,
                "401/403 answers handed back without a renewal.",
            ),
            (
                "retries_total",
                stats.retries,
                "Retries of token and API requests.",
            ),
            (
                "api_requests_total",
                stats.api_requests,
                "API request attempts sent.",
            ),
            (
                "throttled_total",
                stats.throttled,
                "API calls that waited their turn.",
            ),
        ];
        for (name, value, help) in counters {
            metric(name, "counter", help, &[("", value)]);
        }
        let expires = u64::try_from(stats.token_expires_at_ms / 1000).unwrap_or(0);
        metric(
            "token_expires_at_seconds",
            "gauge",
            "When the cached token expires, in Unix seconds; 0 when there is none.",
            &[("", expires)],
        );
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        metric(
            "agent_requests_total",
            "counter",
            "Requests the agent answered, by listener.",
            &[
                ("{listener=\"socket\"}", get(&self.socket_requests)),
                ("{listener=\"proxy\"}", get(&self.proxy_requests)),
            ],
        );
        let labels: Vec<String> = REASONS
            .iter()
            .map(|(_, name)| format!("{{reason=\"{name}\"}}"))
            .collect();
        let refused: Vec<(&str, u64)> = REASONS
            .iter()
            .zip(&labels)
            .map(|((why, _), label)| (label.as_str(), get(&self.refused[*why as usize])))
            .collect();
        metric(
            "agent_refused_total",
            "counter",
            "Requests and connections the agent refused, by reason.",
            &refused,
        );
        metric(
            "agent_connections",
            "gauge",
            "Connections being served now.",
            &[("", connections as u64)],
        );
        metric(
            "agent_reloads_total",
            "counter",
            "Clients rebuilt on SIGHUP (the client's counters start again at each).",
            &[("", get(&self.reloads))],
        );
        metric(
            "agent_sink_writes_total",
            "counter",
            "Times the sink file was written.",
            &[("", get(&self.sink_writes))],
        );
        out
    }
}
