//! The load's result, as printed and as JSON.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{LoadOptions, ThreadStats};
use crate::hist::Percentiles;
use crate::tls::TlsSummary;

/// Failed requests by why they failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// The TCP connect was refused or failed.
    pub connect: u64,
    /// No connection or no complete response within the timeout.
    pub timeout: u64,
    /// A response with status 400 or above.
    pub status: u64,
    /// The connection was reset or closed mid-exchange.
    pub reset: u64,
    /// A response that is not valid HTTP/1.1.
    pub protocol: u64,
    /// The TLS handshake failed: a certificate not trusted, an alert, or
    /// the connection closed before it ended.
    #[serde(default)]
    pub handshake: u64,
    /// HTTP/2: the stream was reset (RST_STREAM) before its response
    /// ended.
    #[serde(default)]
    pub rst_stream: u64,
    /// HTTP/2: the stream failed because the connection got a GOAWAY.
    #[serde(default)]
    pub goaway: u64,
    /// gRPC: a call answered with a non-zero `grpc-status`.
    #[serde(default)]
    pub grpc: u64,
}

impl ErrorCounts {
    pub fn add(&mut self, o: &ErrorCounts) {
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.status += o.status;
        self.reset += o.reset;
        self.protocol += o.protocol;
        self.handshake += o.handshake;
        self.rst_stream += o.rst_stream;
        self.goaway += o.goaway;
        self.grpc += o.grpc;
    }

    pub fn total(&self) -> u64 {
        self.connect
            + self.timeout
            + self.status
            + self.reset
            + self.protocol
            + self.handshake
            + self.rst_stream
            + self.goaway
            + self.grpc
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub target: String,
    /// "closed" or "rate".
    pub mode: String,
    pub connections: usize,
    pub threads: usize,
    pub pipeline: usize,
    pub new_connection: bool,
    pub request_body_bytes: usize,
    /// Requests/s asked for (open loop).
    pub rate_target: Option<f64>,
    pub driver: String,
    pub warmup_s: f64,
    /// Length of the measured window (shorter when interrupted).
    pub duration_s: f64,
    /// Responses to requests started (or due) in the window.
    pub requests: u64,
    /// Of those, status below 400.
    pub ok: u64,
    pub rps: f64,
    pub response_body_bytes: u64,
    pub latency: Percentiles,
    pub statuses: Statuses,
    pub errors: ErrorCounts,
    /// CPU seconds the generator used per second of the window (1.0 = one
    /// core busy).
    pub generator_cpu: f64,
    pub interrupted: bool,
    /// Over TLS: what was negotiated and how many handshakes (None: plain).
    #[serde(default)]
    pub tls: Option<TlsSummary>,
    /// `http/1.1` or `h2`.
    #[serde(default = "http1")]
    pub protocol: String,
    /// HTTP/2: concurrent streams per connection (1 for HTTP/1.1).
    #[serde(default = "one")]
    pub streams: usize,
    /// gRPC Echo.Unary calls: the payload bytes of each (None: plain
    /// requests).
    #[serde(default)]
    pub grpc_payload_bytes: Option<usize>,
}

fn http1() -> String {
    "http/1.1".into()
}
fn one() -> usize {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statuses {
    #[serde(rename = "1xx")]
    pub s1xx: u64,
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
}

impl LoadReport {
    pub(super) fn new(
        o: &LoadOptions,
        threads: usize,
        uring: bool,
        window: Duration,
        interrupted: bool,
        cpu_s: f64,
        s: &ThreadStats,
    ) -> LoadReport {
        let secs = window.as_secs_f64();
        let per_s = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        LoadReport {
            target: o.addr.to_string(),
            mode: if o.rate.is_some() { "rate" } else { "closed" }.into(),
            connections: o.connections,
            threads,
            pipeline: o.pipeline,
            new_connection: o.new_connection,
            request_body_bytes: o.request.body_size,
            rate_target: o.rate,
            driver: if uring { "io_uring" } else { "epoll" }.into(),
            warmup_s: o.warmup.as_secs_f64(),
            duration_s: secs,
            requests: s.requests,
            ok: s.ok,
            rps: per_s(s.requests as f64),
            response_body_bytes: s.bytes_read,
            latency: s.latency.summary(),
            statuses: Statuses {
                s1xx: s.statuses[1],
                s2xx: s.statuses[2],
                s3xx: s.statuses[3],
                s4xx: s.statuses[4],
                s5xx: s.statuses[5],
            },
            errors: s.errors,
            generator_cpu: per_s(cpu_s),
            interrupted,
            tls: s.tls.clone(),
            protocol: if o.h2.is_some() { "h2" } else { "http/1.1" }.into(),
            streams: o.h2.as_ref().map_or(1, |h| h.streams),
            grpc_payload_bytes: o.h2.as_ref().and_then(|h| h.grpc),
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.rate_target {
            Some(r) => format!("open loop at {r:.0} req/s"),
            None if self.pipeline > 1 => format!("closed loop, {} pipelined", self.pipeline),
            None => "closed loop".into(),
        };
        let conn = if self.new_connection {
            ", new connection per request"
        } else {
            ""
        };
        let tls = if self.tls.is_some() { ", TLS" } else { "" };
        let h2 = match (self.protocol.as_str(), self.grpc_payload_bytes) {
            ("h2", Some(p)) => format!(
                ", HTTP/2 × {} streams, gRPC Echo.Unary ({p} B payload)",
                self.streams
            ),
            ("h2", None) => format!(", HTTP/2 × {} streams", self.streams),
            _ => String::new(),
        };
        writeln!(
            f,
            "{} — {mode}, {} connections{h2}{conn}{tls}, {} threads ({})",
            self.target, self.connections, self.threads, self.driver
        )?;
        if self.interrupted {
            writeln!(f, "  interrupted: partial report")?;
        }
        writeln!(
            f,
            "  {:.2}s measured after {:.1}s warm-up: {} responses, {:.0} req/s, {:.1} MiB of bodies",
            self.duration_s,
            self.warmup_s,
            self.requests,
            self.rps,
            self.response_body_bytes as f64 / 1048576.0
        )?;
        let l = &self.latency;
        let ms = |us: f64| format!("{:.3}ms", us / 1000.0);
        writeln!(
            f,
            "  latency  p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.p9999_us),
            ms(l.max_us)
        )?;
        let s = &self.statuses;
        writeln!(
            f,
            "  status   2xx {}  3xx {}  4xx {}  5xx {}",
            s.s2xx, s.s3xx, s.s4xx, s.s5xx
        )?;
        let e = &self.errors;
        write!(
            f,
            "  errors   connect {}  timeout {}  status {}  reset {}  protocol {}  handshake {}",
            e.connect, e.timeout, e.status, e.reset, e.protocol, e.handshake
        )?;
        if self.protocol == "h2" {
            write!(f, "  rst_stream {}  goaway {}", e.rst_stream, e.goaway)?;
            if self.grpc_payload_bytes.is_some() {
                write!(f, "  grpc-status≠0 {}", e.grpc)?;
            }
        }
        writeln!(f)?;
        if let Some(t) = &self.tls {
            let per_s = |n: u64| {
                if self.duration_s > 0.0 {
                    n as f64 / self.duration_s
                } else {
                    0.0
                }
            };
            writeln!(
                f,
                "  tls      {} {} {}: {} full handshakes ({:.0}/s), {} resumed",
                t.version,
                t.cipher_suite,
                t.key_exchange,
                t.full_handshakes,
                per_s(t.full_handshakes),
                t.resumed_handshakes
            )?;
        }
        write!(f, "  generator CPU {:.2} cores", self.generator_cpu)?;
        if let Some(rate) = self
            .rate_target
            .filter(|r| self.rps < r * 0.95 && !self.interrupted)
        {
            write!(
                f,
                "\n  note: {:.0} req/s asked, {:.0} served: the connections could not keep up (more --connections), or the server is saturated",
                rate, self.rps
            )?;
        }
        Ok(())
    }
}
