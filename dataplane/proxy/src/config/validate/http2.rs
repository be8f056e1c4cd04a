//! A listener's `http2` settings and a cluster's `protocol`.
//!
//! Every HTTP/2 limit has a default safe at the edge (`defaults::H2_*`);
//! the ranges checked here are RFC 9113's (a window above 2^31-1 or a
//! frame size outside 16 KiB..16 MiB is a protocol error the proxy would
//! otherwise send to every client).

use serde_saphyr::Spanned;

use super::Validator;
use crate::config::model::{defaults, Http2, UpstreamProtocol};
use crate::config::raw::RawHttp2;

/// RFC 9113 section 6.9.1: windows are at most 2^31-1.
const MAX_WINDOW: u64 = (1 << 31) - 1;
/// RFC 9113 section 4.2: SETTINGS_MAX_FRAME_SIZE is 2^14..2^24-1.
const FRAME_SIZES: std::ops::RangeInclusive<u64> = (1 << 14)..=((1 << 24) - 1);

impl Validator {
    /// `None` when HTTP/2 is turned off; the defaults when the section is
    /// absent. `max_header_bytes` is the listener's HTTP/1.1 head limit,
    /// the default header list size.
    pub(super) fn http2(
        &mut self,
        raw: &Option<Spanned<RawHttp2>>,
        max_header_bytes: usize,
        path: &str,
    ) -> Option<Http2> {
        let empty = RawHttp2::default();
        let h = raw.as_ref().map_or(&empty, |r| &r.value);
        let mut setting = |v: &Option<Spanned<u64>>, field: &str, default: u64, range| {
            self.setting(v, &format!("{path}.{field}"), default, range)
        };
        let settings = Http2 {
            max_concurrent_streams: setting(
                &h.max_concurrent_streams,
                "max_concurrent_streams",
                defaults::H2_MAX_CONCURRENT_STREAMS.into(),
                1..=u64::from(u32::MAX),
            ) as u32,
            initial_stream_window: setting(
                &h.initial_stream_window,
                "initial_stream_window",
                defaults::H2_STREAM_WINDOW.into(),
                1..=MAX_WINDOW,
            ) as u32,
            initial_connection_window: setting(
                &h.initial_connection_window,
                "initial_connection_window",
                defaults::H2_CONNECTION_WINDOW.into(),
                // Below the default 65535 the proxy could not announce it:
                // a connection window only grows by WINDOW_UPDATE.
                65_535..=MAX_WINDOW,
            ) as u32,
            max_header_list_size: setting(
                &h.max_header_list_size,
                "max_header_list_size",
                max_header_bytes as u64,
                256..=u64::from(u32::MAX),
            ) as u32,
            max_frame_size: setting(
                &h.max_frame_size,
                "max_frame_size",
                defaults::H2_MAX_FRAME_SIZE.into(),
                FRAME_SIZES,
            ) as u32,
            max_pending_accept_reset_streams: setting(
                &h.max_pending_accept_reset_streams,
                "max_pending_accept_reset_streams",
                defaults::H2_MAX_PENDING_ACCEPT_RESET as u64,
                1..=u64::from(u32::MAX),
            ) as usize,
            max_local_error_reset_streams: setting(
                &h.max_local_error_reset_streams,
                "max_local_error_reset_streams",
                defaults::H2_MAX_LOCAL_ERROR_RESET as u64,
                1..=u64::from(u32::MAX),
            ) as usize,
        };
        let enabled = h.enabled.as_ref().is_none_or(|e| e.value);
        enabled.then_some(settings)
    }

    /// A number within `range`, `default` when unset.
    fn setting(
        &mut self,
        v: &Option<Spanned<u64>>,
        path: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let Some(v) = v else { return default };
        if !range.contains(&v.value) {
            self.err(
                &v.referenced,
                path,
                format!("must be from {} to {}", range.start(), range.end()),
            );
            return default;
        }
        v.value
    }

    pub(super) fn protocol(
        &mut self,
        raw: &Option<Spanned<String>>,
        path: &str,
    ) -> UpstreamProtocol {
        match raw.as_ref().map(|s| (s.value.as_str(), s)) {
            None | Some(("http1", _)) => UpstreamProtocol::Http1,
            Some(("http2", _)) => UpstreamProtocol::Http2,
            Some(("auto", _)) => UpstreamProtocol::Auto,
            Some((other, s)) => {
                self.err(
                    &s.referenced,
                    path,
                    format!("unknown protocol `{other}`: use http1, http2 or auto"),
                );
                UpstreamProtocol::Http1
            }
        }
    }
}
