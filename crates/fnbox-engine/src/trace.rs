//! The trace context of an invocation (W3C Trace Context), shared by the dialects (what the
//! function sees) and by exporters (the span they emit), so both agree without talking.
//!
//! # Design
//! An invocation's context is a pure function of its request id, the second it started and
//! the caller's `traceparent` (if any):
//! - trace id: the caller's, or `<start secs, 8 hex><first 24 hex of the request id>` — the
//!   same value as the `Root=1-<secs>-<24 hex>` of the X-Ray header the Lambda dialect derives
//!   from the request id, so an X-Ray propagator and a W3C one see one trace;
//! - span id (the invocation span): hex 16..32 of the request id (the X-Ray `Parent=`);
//! - sampled: the caller's flag, else sampled.
//!
//! Request ids that are not UUIDs are hashed to 32 hex digits first.

use std::hash::{Hash, Hasher};

/// A caller's W3C `traceparent` (version 00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace id (not all zero).
    pub trace_id: [u8; 16],
    /// The caller's span id (not all zero).
    pub span_id: [u8; 8],
    /// The `sampled` flag.
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header value: `00-<32 hex>-<16 hex>-<2 hex>` (future versions:
    /// the same four fields first). Errors say what is wrong; W3C asks callers to ignore an
    /// invalid header and start a new trace.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let parts: Vec<&str> = value.split('-').collect();
        if parts.len() < 4 {
            return Err(format!(
                "traceparent {value:?}: expected version-traceid-parentid-flags"
            ));
        }
        let version = hex_bytes::<1>(parts[0])
            .ok_or_else(|| format!("traceparent {value:?}: bad version"))?;
        if version[0] == 0xff || (version[0] == 0 && parts.len() != 4) {
            return Err(format!("traceparent {value:?}: unsupported version"));
        }
        let trace_id = hex_bytes::<16>(parts[1])
            .filter(|b| b.iter().any(|x| *x != 0))
            .ok_or_else(|| {
                format!(
                    "traceparent {value:?}: trace id must be 32 lowercase hex digits, not all zero"
                )
            })?;
        let span_id = hex_bytes::<8>(parts[2])
            .filter(|b| b.iter().any(|x| *x != 0))
            .ok_or_else(|| format!("traceparent {value:?}: parent id must be 16 lowercase hex digits, not all zero"))?;
        let flags =
            hex_bytes::<1>(parts[3]).ok_or_else(|| format!("traceparent {value:?}: bad flags"))?;
        Ok(Self {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }
}

/// The context an invocation runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// The invocation span's id.
    pub span_id: [u8; 8],
    /// The caller's context, when the request carried one.
    pub parent: Option<TraceParent>,
    /// Whether the trace is sampled.
    pub sampled: bool,
}

impl TraceContext {
    /// The context of the invocation `request_id` that started at `start_epoch_secs`, under
    /// the caller's `parent` if any (see the module docs).
    pub fn for_invocation(
        request_id: &str,
        start_epoch_secs: u64,
        parent: Option<&TraceParent>,
    ) -> Self {
        let id = id_bytes(request_id);
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => {
                let mut t = [0u8; 16];
                t[..4].copy_from_slice(&((start_epoch_secs & 0xffff_ffff) as u32).to_be_bytes());
                t[4..].copy_from_slice(&id[..12]);
                t
            }
        };
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&id[8..16]);
        Self {
            trace_id,
            span_id,
            parent: parent.copied(),
            sampled: parent.is_none_or(|p| p.sampled),
        }
    }

    /// The W3C `traceparent` a function (or a downstream call) continues from.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{}",
            hex(&self.trace_id),
            hex(&self.span_id),
            if self.sampled { "01" } else { "00" }
        )
    }

    /// The same context as an X-Ray header (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`).
    pub fn xray(&self) -> String {
        let t = hex(&self.trace_id);
        format!(
            "Root=1-{}-{};Parent={};Sampled={}",
            &t[..8],
            &t[8..],
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    // By table, not `write!("{:02x}")`: every invocation formats its trace context (the
    // formatter cost ~8,000 instructions per invocation, measured with callgrind).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

/// 16 bytes: the UUID's own when the id is a UUID, else a hash of it.
fn id_bytes(request_id: &str) -> [u8; 16] {
    let simple: String = request_id
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if let Some(b) = hex_bytes::<16>(&simple) {
        return b;
    }
    let mut out = [0u8; 16];
    for salt in 0u8..2 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, request_id).hash(&mut h);
        out[salt as usize * 8..salt as usize * 8 + 8].copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn a_context_without_parent_matches_the_lambda_xray_header() {
        let c =
            TraceContext::for_invocation("8476a536-e9f4-11e8-9739-2dfe598c3fcd", 0x5bf4_2a1e, None);
        assert_eq!(
            c.xray(),
            "Root=1-5bf42a1e-8476a536e9f411e897392dfe;Parent=97392dfe598c3fcd;Sampled=1"
        );
        assert_eq!(
            c.traceparent(),
            "00-5bf42a1e8476a536e9f411e897392dfe-97392dfe598c3fcd-01"
        );
    }

    #[test]
    fn a_parent_gives_its_trace_id_and_flag() {
        let p =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!p.sampled);
        let c = TraceContext::for_invocation("r", 1, Some(&p));
        assert_eq!(c.trace_id, p.trace_id);
        assert_ne!(c.span_id, p.span_id);
        assert!(c
            .traceparent()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(c.traceparent().ends_with("-00"));
        assert_eq!(c, TraceContext::for_invocation("r", 99, Some(&p)), "stable");
    }

    #[test]
    fn bad_traceparents_are_refused_with_the_reason() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            let e = TraceParent::parse(bad).unwrap_err();
            assert!(e.starts_with("traceparent"), "{bad}: {e}");
        }
    }
}
