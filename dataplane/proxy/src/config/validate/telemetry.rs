//! `tracing` and a listener's `access_log` and `direction`.

use std::sync::Arc;

use serde_saphyr::Spanned;

use super::Validator;
use crate::config::model::{AccessLog, Direction, Tracing};
use crate::config::raw::{RawAccessLog, RawTracing};
use crate::telemetry::access_log::Format;
use crate::telemetry::otlp::Collector;
use crate::telemetry::writer::LogFile;
use crate::tls::mesh::Svid;

/// The OTLP/gRPC port, when `collector` names none.
const OTLP_PORT: u16 = 4317;

impl Validator {
    pub(super) fn tracing(
        &mut self,
        t: &Spanned<RawTracing>,
        svid: Option<&Svid>,
    ) -> Option<Tracing> {
        let raw = &t.value;
        let per_million = self.optional_percent(&raw.sampling_percent, "tracing.sampling_percent");
        let endpoint = match &raw.collector {
            None => {
                self.err(
                    &t.referenced,
                    "tracing.collector",
                    "missing: the OTLP/gRPC collector, e.g. 127.0.0.1:4317",
                );
                None
            }
            Some(c) => match collector_endpoint(&c.value) {
                Ok(e) => Some(e),
                Err(msg) => {
                    self.err(&c.referenced, "tracing.collector", msg);
                    None
                }
            },
        };
        let service_name = match &raw.service_name {
            Some(n) if n.value.trim().is_empty() => {
                self.err(&n.referenced, "tracing.service_name", "must not be empty");
                None
            }
            Some(n) => Some(n.value.clone()),
            None => Some(default_service(svid)),
        };
        Some(Tracing {
            collector: Arc::new(Collector {
                endpoint: endpoint?,
                service_name: service_name?,
            }),
            per_million: per_million?,
        })
    }

    pub(super) fn access_log(
        &mut self,
        a: &Spanned<RawAccessLog>,
        path: &str,
    ) -> Option<AccessLog> {
        let raw = &a.value;
        let file = match &raw.path {
            None => {
                self.err(
                    &a.referenced,
                    format!("{path}.path"),
                    "missing: a file to append to, or `-` for stdout",
                );
                None
            }
            Some(p) if p.value == "-" => Some(LogFile { path: "-".into() }),
            Some(p) if p.value.trim().is_empty() => {
                self.err(&p.referenced, format!("{path}.path"), "must not be empty");
                None
            }
            Some(p) => {
                let file = self.resolve(&p.value);
                let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
                match dir {
                    Some(d) if !d.is_dir() => {
                        self.err(
                            &p.referenced,
                            format!("{path}.path"),
                            format!("directory `{}` does not exist", d.display()),
                        );
                        None
                    }
                    _ if file.is_dir() => {
                        self.err(
                            &p.referenced,
                            format!("{path}.path"),
                            format!("`{}` is a directory", file.display()),
                        );
                        None
                    }
                    _ => Some(LogFile { path: file }),
                }
            }
        };
        let format = match &raw.format {
            None => Some(Format::Json),
            Some(f) => match Format::parse(&f.value) {
                Ok(format) => Some(format),
                Err(msg) => {
                    self.err(&f.referenced, format!("{path}.format"), msg);
                    None
                }
            },
        };
        let min_status = match &raw.min_status {
            None => Some(0),
            Some(s) if (100..=599).contains(&s.value) => Some(s.value as u16),
            Some(s) => {
                self.err(
                    &s.referenced,
                    format!("{path}.min_status"),
                    format!("`{}` is not a status code (100 to 599)", s.value),
                );
                None
            }
        };
        let per_million =
            self.optional_percent(&raw.sample_percent, &format!("{path}.sample_percent"));
        Some(AccessLog {
            file: Arc::new(file?),
            format: format?,
            min_status: min_status?,
            per_million: per_million?,
        })
    }

    pub(super) fn direction(&mut self, d: &Option<Spanned<String>>, path: &str) -> Direction {
        match d.as_ref().map(|s| (s.value.as_str(), s)) {
            None | Some(("inbound", _)) => Direction::Inbound,
            Some(("outbound", _)) => Direction::Outbound,
            Some((other, s)) => {
                self.err(
                    &s.referenced,
                    path,
                    format!("unknown direction `{other}`: use inbound or outbound"),
                );
                Direction::Inbound
            }
        }
    }

    /// A percentage that defaults to 100, in parts per million.
    fn optional_percent(&mut self, p: &Option<Spanned<f64>>, path: &str) -> Option<u32> {
        match p {
            Some(p) => self.percent_value(p, path),
            None => Some(1_000_000),
        }
    }
}

/// `host:port` or `http://host[:port]` as the URI tonic connects to.
fn collector_endpoint(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with("https://") {
        return Err(
            "collectors over TLS are not supported yet: run the collector (or an agent) on the node and use http://"
                .into(),
        );
    }
    let rest = text.strip_prefix("http://").unwrap_or(text);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(format!(
            "`{text}` is not a collector address: use host:port or http://host:port"
        ));
    }
    let uri = if has_port(rest) {
        format!("http://{rest}")
    } else {
        format!("http://{rest}:{OTLP_PORT}")
    };
    match uri.parse::<http::Uri>() {
        Ok(u) if u.host().is_some() => Ok(uri),
        _ => Err(format!(
            "`{text}` is not a collector address: use host:port or http://host:port"
        )),
    }
}

fn has_port(authority: &str) -> bool {
    match authority.rfind(':') {
        // `[::1]` has colons but no port.
        Some(i) => !authority[i..].contains(']') && authority[i + 1..].parse::<u16>().is_ok(),
        None => false,
    }
}

/// `service.name` when the config names none: the workload's service
/// account in its SPIFFE ID (`.../sa/web` -> `web`), else the proxy.
fn default_service(svid: Option<&Svid>) -> String {
    svid.and_then(|s| {
        s.spiffe_id
            .rsplit_once("/sa/")
            .map(|(_, sa)| sa.to_string())
    })
    .filter(|sa| !sa.is_empty() && !sa.contains('/'))
    .unwrap_or_else(|| "ringmesh-proxy".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_addresses() {
        assert_eq!(
            collector_endpoint("127.0.0.1:4317").unwrap(),
            "http://127.0.0.1:4317"
        );
        assert_eq!(
            collector_endpoint("http://otel:4318/").unwrap(),
            "http://otel:4318"
        );
        assert_eq!(collector_endpoint("otel").unwrap(), "http://otel:4317");
        assert_eq!(collector_endpoint("[::1]").unwrap(), "http://[::1]:4317");
        assert_eq!(collector_endpoint("[::1]:9").unwrap(), "http://[::1]:9");
        assert!(collector_endpoint("https://otel:4317")
            .unwrap_err()
            .contains("TLS"));
        assert!(collector_endpoint("http://otel:4317/v1/traces").is_err());
        assert!(collector_endpoint("").is_err());
    }

    #[test]
    fn the_default_service_is_the_service_account() {
        assert_eq!(default_service(None), "ringmesh-proxy");
    }
}
