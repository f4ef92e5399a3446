//! The trace identity of one proxied request: ids, parent, sampling decision and where the
//! parent came from. Continues an incoming context (the formats, their precedence and what the
//! upstream receives are `propagation`'s rules); a missing or malformed one starts a new trace.

use http::HeaderMap;

use super::propagation::{self, Format, Propagator};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The sidecar's own span for this request.
    pub span_id: [u8; 8],
    /// The caller's span, when the request carried a trace context.
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
    /// The format the caller's context was read from; None when this request starts a trace.
    /// It decides whether the incoming `tracestate` may go upstream (only with `traceparent`).
    pub parent_format: Option<Format>,
}

impl TraceContext {
    /// Continues the caller's trace or starts a new one; `ratio` samples new traces by trace id.
    pub fn from_headers(headers: &HeaderMap, ratio: f64) -> Self {
        Self::continuing(propagation::extract(headers), ratio)
    }

    /// As `from_headers` for a request whose only trace field is `traceparent` (or none): the
    /// fast path's requests (`proxy::raw_request`).
    pub fn from_traceparent(traceparent: Option<&[u8]>, ratio: f64) -> Self {
        Self::continuing(traceparent.and_then(propagation::extract_traceparent), ratio)
    }

    fn continuing(found: Option<propagation::Extracted>, ratio: f64) -> Self {
        let span_id = random_span_id();
        if let Some(found) = found {
            // A caller that deferred the decision (B3 without a flag) gets the ratio sampler.
            let sampled = found.sampled.unwrap_or_else(|| ratio_samples(&found.trace_id, ratio));
            return TraceContext {
                trace_id: found.trace_id,
                span_id,
                parent_span_id: Some(found.parent_span_id),
                sampled,
                parent_format: Some(found.format),
            };
        }
        let trace_id = random_trace_id();
        TraceContext {
            trace_id,
            span_id,
            parent_span_id: None,
            sampled: ratio_samples(&trace_id, ratio),
            parent_format: None,
        }
    }

    /// Rewrites the upstream request's trace headers: this context in `traceparent` and each of
    /// `formats`, the sidecar's span as parent; nothing else that could name another parent.
    pub fn inject(&self, headers: &mut HeaderMap, formats: &[Propagator]) {
        propagation::inject(headers, &self.outgoing(), formats);
    }

    /// What the upstream is told: this trace, the sidecar's span as parent.
    pub fn outgoing(&self) -> propagation::Outgoing {
        propagation::Outgoing {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            sampled: self.sampled,
            continued_from: self.parent_format,
        }
    }

    pub fn trace_id_hex(&self) -> HexId<32> {
        HexId::new(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> HexId<16> {
        HexId::new(&self.span_id)
    }
}

/// Whether a new trace is sampled: the W3C/OTel trace-id-ratio rule on the id's low 8 bytes.
pub fn ratio_samples(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    (u64::from_be_bytes(low) >> 1) < bound
}

fn random_trace_id() -> [u8; 16] {
    loop {
        let id = fastrand::u128(..).to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

fn random_span_id() -> [u8; 8] {
    loop {
        let id = fastrand::u64(..).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// A lower-case hex rendering of an id, on the stack.
pub struct HexId<const N: usize>([u8; N]);

impl<const N: usize> HexId<N> {
    fn new(bytes: &[u8]) -> Self {
        let mut out = [b'0'; N];
        propagation::hex_into(bytes, &mut out);
        HexId(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Display for HexId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn headers(tp: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_str(tp).expect("header value"));
        h
    }

    #[test]
    fn continues_a_valid_traceparent() {
        let ctx = TraceContext::from_headers(&headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), 0.0);
        assert_eq!(ctx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_span_id, Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]));
        assert!(ctx.sampled, "the parent's sampled flag wins over the ratio");
        let mut upstream = HeaderMap::new();
        ctx.inject(&mut upstream, &[]);
        let out = upstream["traceparent"].to_str().expect("ascii");
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert_eq!(&out[36..52], ctx.span_id_hex().as_str());
    }

    #[test]
    fn a_deferred_b3_decision_falls_back_to_the_ratio() {
        let mut h = HeaderMap::new();
        h.insert("b3", HeaderValue::from_static("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1"));
        assert!(!TraceContext::from_headers(&h, 0.0).sampled);
        assert!(TraceContext::from_headers(&h, 1.0).sampled);
        assert_eq!(TraceContext::from_headers(&h, 1.0).trace_id_hex().as_str(), "80f198ee56343ba864fe8b2a57d3eff7");
    }

    #[test]
    fn malformed_traceparents_start_new_traces() {
        for bad in [
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let ctx = TraceContext::from_headers(&headers(bad), 1.0);
            assert_eq!(ctx.parent_span_id, None, "{bad}");
            assert_ne!(ctx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
        }
    }

    #[test]
    fn ratio_sampling_is_proportional() {
        let sampled = (0..20_000).filter(|_| ratio_samples(&random_trace_id(), 0.25)).count();
        assert!((4_000..6_000).contains(&sampled), "{sampled}");
        assert!(ratio_samples(&random_trace_id(), 1.0));
        assert!(!ratio_samples(&random_trace_id(), 0.0));
    }

    #[test]
    fn the_parent_format_is_recorded() {
        let from = |pairs: &[(&str, &[u8])]| TraceContext::from_headers(&map(pairs), 1.0).parent_format;
        assert_eq!(from(&[]), None);
        assert_eq!(from(&[("traceparent", TP.as_bytes()), ("b3", B3_SINGLE.as_bytes())]), Some(Format::Tracecontext));
        assert_eq!(from(&[("traceparent", b"garbage"), ("b3", B3_SINGLE.as_bytes())]), Some(Format::B3Single));
        assert_eq!(from(&[("traceparent", b"garbage")]), None);
    }

    // ---- The processing model at the proxy: what one request's upstream receives ----

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const STATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    const B3_SINGLE: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
    const OTHER_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";

    const ALL_FORMATS: [Propagator; 4] =
        [Propagator::Tracecontext, Propagator::B3, Propagator::B3multi, Propagator::Jaeger];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Header name and raw value pairs, in order, repeats allowed.
    type Pairs<'a> = &'a [(&'a str, &'a [u8])];

    fn map(pairs: Pairs) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                HeaderValue::from_bytes(value).expect("test header value"),
            );
        }
        h
    }

    /// Test input for failure messages, non-UTF-8 bytes shown as U+FFFD.
    fn show(pairs: &[(&str, &[u8])]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned())).collect()
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<Vec<u8>> {
        h.get_all(name).iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    /// The context for `incoming` and the headers the upstream gets with `formats` configured.
    fn proxy(incoming: &HeaderMap, formats: &[Propagator]) -> (TraceContext, HeaderMap) {
        let ctx = TraceContext::from_headers(incoming, 1.0);
        let mut out = incoming.clone();
        ctx.inject(&mut out, formats);
        (ctx, out)
    }

    /// The upstream holds exactly one parent context: every propagation header present names
    /// `ctx`'s trace and the sidecar's span, each configured format is present once, and the
    /// others are absent.
    fn one_context(ctx: &TraceContext, out: &HeaderMap, formats: &[Propagator]) -> Result<(), String> {
        let (trace, span) = (hex(&ctx.trace_id), hex(&ctx.span_id));
        let flag = if ctx.sampled { "1" } else { "0" };
        let b3multi = formats.contains(&Propagator::B3multi);
        let expected = [
            ("traceparent", Some(format!("00-{trace}-{span}-0{flag}"))),
            ("b3", formats.contains(&Propagator::B3).then(|| format!("{trace}-{span}-{flag}"))),
            ("x-b3-traceid", b3multi.then(|| trace.clone())),
            ("x-b3-spanid", b3multi.then(|| span.clone())),
            ("x-b3-sampled", b3multi.then(|| flag.to_string())),
            ("x-b3-parentspanid", ctx.parent_span_id.filter(|_| b3multi).map(|p| hex(&p))),
            ("x-b3-flags", None),
            ("uber-trace-id", formats.contains(&Propagator::Jaeger).then(|| format!("{trace}:{span}:0:0{flag}"))),
        ];
        for (name, want) in expected {
            let got = values(out, name);
            let want: Vec<Vec<u8>> = want.into_iter().map(String::into_bytes).collect();
            if got != want {
                let show =
                    |v: &[Vec<u8>]| v.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>();
                return Err(format!("{name}: upstream got {:?}, expected {:?}", show(&got), show(&want)));
            }
        }
        Ok(())
    }

    #[test]
    fn tracestate_is_dropped_without_a_valid_traceparent() {
        let invalid: [&[&[u8]]; 8] = [
            &[],
            &[b"garbage"],
            &[b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
            &[b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"],
            &[b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
            &[b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"],
            &[b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-\xff1"],
            &[TP.as_bytes(), TP.as_bytes()],
        ];
        for traceparents in invalid {
            // Also when a valid B3 context is continued instead: the tracestate was not its.
            for b3 in [None, Some(B3_SINGLE)] {
                let mut pairs: Vec<(&str, &[u8])> = traceparents.iter().map(|v| ("traceparent", *v)).collect();
                pairs.push(("tracestate", STATE.as_bytes()));
                pairs.extend(b3.map(|v| ("b3", v.as_bytes())));
                for formats in [&[][..], &ALL_FORMATS[..]] {
                    let (ctx, out) = proxy(&map(&pairs), formats);
                    assert_eq!(values(&out, "tracestate"), Vec::<Vec<u8>>::new(), "{:?} {formats:?}", show(&pairs));
                    assert_ne!(ctx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736", "{:?}", show(&pairs));
                    one_context(&ctx, &out, formats).unwrap_or_else(|e| panic!("{:?} {formats:?}: {e}", show(&pairs)));
                }
            }
        }
    }

    #[test]
    fn tracestate_follows_a_valid_traceparent() {
        for tp in [TP, "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future-fields"] {
            let pairs: [(&str, &[u8]); 3] =
                [("traceparent", tp.as_bytes()), ("tracestate", STATE.as_bytes()), ("b3", B3_SINGLE.as_bytes())];
            for formats in [&[][..], &ALL_FORMATS[..]] {
                let (ctx, out) = proxy(&map(&pairs), formats);
                assert_eq!(values(&out, "tracestate"), vec![STATE.as_bytes().to_vec()], "{tp}");
                assert_eq!(ctx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
                assert_eq!(ctx.parent_span_id.map(|p| hex(&p)).as_deref(), Some("00f067aa0ba902b7"));
                one_context(&ctx, &out, formats).unwrap_or_else(|e| panic!("{tp} {formats:?}: {e}"));
            }
        }
    }

    #[test]
    fn an_invalid_traceparent_and_a_valid_b3_give_the_upstream_one_context() {
        // (headers, whether they hold a context to continue)
        let contexts: [(Pairs, bool); 4] = [
            (&[("b3", B3_SINGLE.as_bytes())], true),
            (
                &[
                    ("x-b3-traceid", OTHER_TRACE.as_bytes()),
                    ("x-b3-spanid", b"e457b5a2e4d86bd1"),
                    ("x-b3-parentspanid", b"0000000000000001"),
                    ("x-b3-sampled", b"0"),
                    ("x-b3-flags", b"1"),
                ],
                true,
            ),
            (&[("uber-trace-id", b"80f198ee56343ba864fe8b2a57d3eff7:e457b5a2e4d86bd1:0:1")], true),
            // Sampling-only B3 carries no context, but would still contradict ours.
            (&[("b3", b"0"), ("x-b3-sampled", b"0")], false),
        ];
        let configs: [&[Propagator]; 6] = [
            &[],
            &[Propagator::Tracecontext],
            &[Propagator::B3],
            &[Propagator::B3multi],
            &[Propagator::Jaeger],
            &ALL_FORMATS,
        ];
        for (context, continued) in contexts {
            for tp in [None, Some(&b"00-not-a-traceparent"[..])] {
                let mut pairs = context.to_vec();
                pairs.extend(tp.map(|v| ("traceparent", v)));
                for formats in configs {
                    let (ctx, out) = proxy(&map(&pairs), formats);
                    one_context(&ctx, &out, formats).unwrap_or_else(|e| panic!("{:?} {formats:?}: {e}", show(&pairs)));
                    if continued {
                        assert_eq!(ctx.trace_id_hex().as_str(), OTHER_TRACE, "the valid context is continued");
                    }
                }
            }
        }
    }

    /// Property tests: extraction and injection take any header bytes, and the invariants
    /// above hold for every input. Bounded so that they run in a few seconds in a debug
    /// `cargo test`; `PROPTEST_CASES=N` runs more.
    mod props {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::{Index, select};

        fn config(cases: u32) -> ProptestConfig {
            let cases =
                if std::env::var_os("PROPTEST_CASES").is_some() { ProptestConfig::default().cases } else { cases };
            ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
        }

        const NAMES: [&str; 10] = [
            "traceparent",
            "tracestate",
            "b3",
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-b3-flags",
            "uber-trace-id",
            "x-other",
        ];

        fn regex(re: &str) -> BoxedStrategy<String> {
            proptest::string::string_regex(re).expect("test regex").boxed()
        }

        /// Mostly valid lower-case hex ids, sometimes all zeros or upper case.
        fn id(len: usize) -> BoxedStrategy<String> {
            prop_oneof![
                8 => regex(&format!("[0-9a-f]{{{len}}}")),
                1 => Just("0".repeat(len)).boxed(),
                1 => regex(&format!("[0-9a-fA-F]{{{len}}}")),
            ]
            .boxed()
        }

        /// A value shaped like the header's format, so that valid contexts are common.
        fn shaped(name: &str) -> BoxedStrategy<String> {
            match name {
                "traceparent" => (
                    select(vec!["00", "01", "cc", "fe", "ff", "0A", "0", "000"]),
                    id(32),
                    id(16),
                    regex("[0-9a-f]{2}"),
                    select(vec!["", "", "", "-", "-x", ".", "-future-fields", " "]),
                )
                    .prop_map(|(v, t, s, f, rest)| format!("{v}-{t}-{s}-{f}{rest}"))
                    .boxed(),
                "tracestate" => vec(
                    prop_oneof![
                        6 => regex("[a-z][a-z0-9_*/-]{0,4}(@[a-z][a-z0-9]{0,3})?=[!-+\\--<>-~ ]{0,4}[!-+\\--<>-~]"),
                        1 => regex("[ -~]{0,8}"),
                        1 => Just(String::new()).boxed(),
                    ],
                    0..36,
                )
                .prop_map(|members| members.join(","))
                .boxed(),
                "b3" => (
                    prop_oneof![id(32), id(16)],
                    id(16),
                    select(vec!["", "-0", "-1", "-d", "-true", "-x"]),
                    prop_oneof![Just(String::new()), id(16).prop_map(|p| format!("-{p}"))],
                )
                    .prop_map(
                        |(t, s, sampled, p)| {
                            if sampled.is_empty() { format!("{t}-{s}") } else { format!("{t}-{s}{sampled}{p}") }
                        },
                    )
                    .boxed(),
                "x-b3-traceid" => prop_oneof![id(32), id(16)].boxed(),
                "x-b3-spanid" | "x-b3-parentspanid" => id(16),
                "x-b3-sampled" => select(vec!["0", "1", "true", "false", "d", ""]).prop_map(String::from).boxed(),
                "x-b3-flags" => select(vec!["0", "1", "2"]).prop_map(String::from).boxed(),
                "uber-trace-id" => (
                    regex("[0-9a-fA-F]{1,33}"),
                    regex("[0-9a-f]{1,17}"),
                    select(vec![":", "%3A", "%3a", ";"]),
                    select(vec!["0", "1", "2", "3", "01", "g", ""]),
                )
                    .prop_map(|(t, s, sep, f)| format!("{t}{sep}{s}{sep}0{sep}{f}"))
                    .boxed(),
                _ => regex("[ -~]{0,20}"),
            }
        }

        /// Any bytes a header value can hold: shaped ones with a byte or two replaced,
        /// arbitrary bytes (non-UTF-8 included) and huge values.
        fn value(name: &'static str) -> BoxedStrategy<Vec<u8>> {
            prop_oneof![
                6 => shaped(name).prop_map(String::into_bytes),
                3 => (shaped(name), vec((any::<Index>(), any::<u8>()), 1..3)).prop_map(|(v, edits)| {
                    let mut v = v.into_bytes();
                    for (at, byte) in edits {
                        if !v.is_empty() {
                            let i = at.index(v.len());
                            v[i] = byte;
                        }
                    }
                    v
                }),
                2 => vec(any::<u8>(), 0..120),
                1 => (any::<u8>(), 4_000usize..40_000).prop_map(|(b, n)| vec![b; n]),
                1 => (shaped(name), 1usize..800).prop_map(|(v, n)| vec![v; n].join(",").into_bytes()),
            ]
            .prop_map(|mut v| {
                // What an HTTP parser lets through: no control bytes but tab.
                v.retain(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
                v
            })
            .boxed()
        }

        fn incoming() -> impl Strategy<Value = HeaderMap> {
            vec((0..NAMES.len()).prop_flat_map(|i| value(NAMES[i]).prop_map(move |v| (i, v))), 0..10).prop_map(
                |pairs| {
                    let mut h = HeaderMap::new();
                    for (i, v) in pairs {
                        if let Ok(v) = HeaderValue::from_bytes(&v) {
                            h.append(http::HeaderName::from_static(NAMES[i]), v);
                        }
                    }
                    h
                },
            )
        }

        /// An independent reading of W3C `traceparent` validity: (trace id, parent id, sampled).
        fn w3c_traceparent(h: &HeaderMap) -> Option<(String, String, bool)> {
            let mut all = h.get_all("traceparent").iter();
            let v = all.next()?;
            if all.next().is_some() {
                return None;
            }
            let v = v.as_bytes();
            let start = v.iter().position(|&b| b != b' ' && b != b'\t')?;
            let end = v.iter().rposition(|&b| b != b' ' && b != b'\t')? + 1;
            let fields: Vec<&[u8]> = v[start..end].split(|&b| b == b'-').collect();
            let lower_hex =
                |f: &[u8], n: usize| f.len() == n && f.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            let ok = fields.len() >= 4
                && lower_hex(fields[0], 2)
                && fields[0] != b"ff"
                && (fields[0] != b"00" || fields.len() == 4)
                && lower_hex(fields[1], 32)
                && lower_hex(fields[2], 16)
                && lower_hex(fields[3], 2)
                && fields[1].iter().any(|&b| b != b'0')
                && fields[2].iter().any(|&b| b != b'0');
            let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
            // The low bit of the flags' second hex digit.
            ok.then(|| {
                (
                    text(fields[1]),
                    text(fields[2]),
                    matches!(fields[3][1], b'1' | b'3' | b'5' | b'7' | b'9' | b'b' | b'd' | b'f'),
                )
            })
        }

        proptest! {
            #![proptest_config(config(1000))]

            #[test]
            fn extract_and_inject_leave_exactly_one_parent_context(
                incoming in incoming(),
                formats in vec(select(ALL_FORMATS.to_vec()), 0..5),
                ratio in select(vec![0.0, 0.5, 1.0]),
            ) {
                let ctx = TraceContext::from_headers(&incoming, ratio);
                let mut out = incoming.clone();
                ctx.inject(&mut out, &formats);

                prop_assert!(ctx.trace_id != [0; 16] && ctx.span_id != [0; 8]);
                if let Err(e) = one_context(&ctx, &out, &formats) {
                    return Err(TestCaseError::fail(e));
                }
                // What the upstream got reads back as the sidecar's span.
                let again = propagation::extract(&out).map(|e| (e.trace_id, e.parent_span_id, e.sampled));
                prop_assert_eq!(again, Some((ctx.trace_id, ctx.span_id, Some(ctx.sampled))));

                // A valid traceparent wins, and only it brings a tracestate along.
                let w3c = w3c_traceparent(&incoming);
                if let Some((trace, parent, sampled)) = &w3c {
                    prop_assert_eq!(&hex(&ctx.trace_id), trace);
                    prop_assert_eq!(ctx.parent_span_id.map(|p| hex(&p)), Some(parent.clone()));
                    prop_assert_eq!(ctx.sampled, *sampled);
                }
                let state = values(&out, "tracestate");
                prop_assert!(state.len() <= 1, "tracestate sent {} times", state.len());
                if let Some(state) = state.first() {
                    prop_assert!(w3c.is_some(), "tracestate forwarded without a valid traceparent");
                    // Forwarded as received, the fields joined when there were several.
                    let fields = values(&incoming, "tracestate");
                    let joined = if fields.len() == 1 {
                        fields[0].clone()
                    } else {
                        fields.iter().filter(|f| !f.trim_ascii().is_empty()).map(|f| f.trim_ascii()).collect::<Vec<_>>().join(&b","[..])
                    };
                    prop_assert_eq!(state, &joined);
                }
                // Headers that are not trace context pass through.
                prop_assert_eq!(values(&out, "x-other"), values(&incoming, "x-other"));
            }

            #[test]
            fn extraction_takes_arbitrary_bytes(
                pairs in vec((0..NAMES.len(), vec(any::<u8>(), 0..200)), 0..12),
            ) {
                let mut h = HeaderMap::new();
                for (i, v) in pairs {
                    // Only the bytes a HeaderValue can hold reach the proxy.
                    if let Ok(v) = HeaderValue::from_bytes(&v) {
                        h.append(http::HeaderName::from_static(NAMES[i]), v);
                    }
                }
                let ctx = TraceContext::from_headers(&h, 0.5);
                let mut out = h.clone();
                ctx.inject(&mut out, &ALL_FORMATS);
                if let Err(e) = one_context(&ctx, &out, &ALL_FORMATS) {
                    return Err(TestCaseError::fail(e));
                }
            }
        }
    }
}
