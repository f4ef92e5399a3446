//! Go standard-library behaviour that PromQL results depend on bit for bit: `math.Max/Min/Pow/Exp/Log`,
//! Kahan summation, `strconv` float formatting/parsing, RE2 class semantics and `regexp.Expand`.

/// Go's `math.Max`: +Inf wins over NaN, any NaN gives NaN, +0 beats -0. (`f64::max` ignores NaN.)
pub(crate) fn max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && x == y {
        if x.is_sign_negative() { y } else { x }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: -Inf wins over NaN, any NaN gives NaN, -0 beats +0.
pub(crate) fn min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && x == y {
        if x.is_sign_negative() { x } else { y }
    } else if x < y {
        x
    } else {
        y
    }
}

/// Prometheus's `kahanSumInc`: Kahan-Babuska-Neumaier compensated summation step.
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() { c + ((sum - t) + inc) } else { c + ((inc - t) + sum) };
    (t, c)
}

const SHIFT: u32 = 52;
const MASK: u64 = 0x7ff;
const BIAS: i64 = 1023;
const SMALLEST_NORMAL: f64 = 2.2250738585072014e-308;

fn normalize(x: f64) -> (f64, i64) {
    if x.abs() < SMALLEST_NORMAL { (x * (1u64 << 52) as f64, -52) } else { (x, 0) }
}

/// Go's `math.Frexp`: x = frac × 2^exp with |frac| in [0.5, 1).
pub(crate) fn frexp(f: f64) -> (f64, i64) {
    if f == 0.0 || f.is_infinite() || f.is_nan() {
        return (f, 0);
    }
    let (f, mut exp) = normalize(f);
    let mut x = f.to_bits();
    exp += ((x >> SHIFT) & MASK) as i64 - BIAS + 1;
    x &= !(MASK << SHIFT);
    x |= ((-1 + BIAS) as u64) << SHIFT;
    (f64::from_bits(x), exp)
}

/// Go's `math.Ldexp`: frac × 2^exp.
pub(crate) fn ldexp(frac: f64, exp: i64) -> f64 {
    if frac == 0.0 || frac.is_infinite() || frac.is_nan() {
        return frac;
    }
    let (frac, e) = normalize(frac);
    let mut exp = exp + e;
    let mut x = frac.to_bits();
    exp += ((x >> SHIFT) & MASK) as i64 - BIAS;
    if exp < -1075 {
        return 0f64.copysign(frac);
    }
    if exp > 1023 {
        return if frac < 0.0 { f64::NEG_INFINITY } else { f64::INFINITY };
    }
    let mut m = 1.0;
    if exp < -1022 {
        exp += 53;
        m = 1.0 / (1u64 << 53) as f64;
    }
    x &= !(MASK << SHIFT);
    x |= ((exp + BIAS) as u64) << SHIFT;
    m * f64::from_bits(x)
}

fn is_odd_int(x: f64) -> bool {
    if x.abs() >= (1u64 << 53) as f64 {
        return false;
    }
    x.trunc() == x && (x as i64) & 1 == 1
}

/// Go's `math.Pow` (pure Go on amd64): integer powers by repeated squaring, which is not always
/// what the C library's correctly rounded `pow` returns.
pub(crate) fn pow(x: f64, y: f64) -> f64 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    } else if y == 1.0 {
        return x;
    } else if x.is_nan() || y.is_nan() {
        return f64::NAN;
    } else if x == 0.0 {
        if y < 0.0 {
            return if x.is_sign_negative() && is_odd_int(y) { f64::NEG_INFINITY } else { f64::INFINITY };
        } else if y > 0.0 {
            return if x.is_sign_negative() && is_odd_int(y) { x } else { 0.0 };
        }
    } else if y.is_infinite() {
        return if x == -1.0 {
            1.0
        } else if (x.abs() < 1.0) == (y == f64::INFINITY) {
            0.0
        } else {
            f64::INFINITY
        };
    } else if x.is_infinite() {
        if x == f64::NEG_INFINITY {
            return pow(1.0 / x, -y);
        }
        if y < 0.0 {
            return 0.0;
        } else if y > 0.0 {
            return f64::INFINITY;
        }
    } else if y == 0.5 {
        return x.sqrt();
    } else if y == -0.5 {
        return 1.0 / x.sqrt();
    }

    let ay = y.abs();
    let mut yi = ay.trunc();
    let mut yf = ay - yi;
    if yf != 0.0 && x < 0.0 {
        return f64::NAN;
    }
    if yi >= 9_223_372_036_854_775_808.0 {
        // A huge even integer exponent over- or underflows for every x but -1.
        return if x == -1.0 {
            1.0
        } else if (x.abs() < 1.0) == (y > 0.0) {
            0.0
        } else {
            f64::INFINITY
        };
    }

    let mut a1 = 1.0;
    let mut ae: i64 = 0;
    if yf != 0.0 {
        if yf > 0.5 {
            yf -= 1.0;
            yi += 1.0;
        }
        a1 = exp(yf * log(x));
    }

    let (mut x1, mut xe) = frexp(x);
    let mut i = yi as i64;
    while i != 0 {
        if !(-(1 << 12)..=(1 << 12)).contains(&xe) {
            // Catastrophic overflow: let ldexp saturate.
            ae += xe;
            break;
        }
        if i & 1 == 1 {
            a1 *= x1;
            ae += xe;
        }
        x1 *= x1;
        xe <<= 1;
        if x1 < 0.5 {
            x1 += x1;
            xe -= 1;
        }
        i >>= 1;
    }

    if y < 0.0 {
        a1 = 1.0 / a1;
        ae = -ae;
    }
    ldexp(a1, ae)
}

/// Whether Go's amd64 `math.Exp` takes its FMA path on this machine (`useFMA` is AVX2 && FMA).
/// Go's result depends on it, so the same Prometheus binary differs in the last bit between CPUs;
/// mirroring the choice keeps us identical to Prometheus running on the same host.
fn use_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FMA.get_or_init(|| std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// Go's `math.Exp` as its amd64 assembly computes it (Shibata's method from SLEEF): reduce by
/// k·ln2 with k = round(x·log2 e), a Taylor polynomial on x/16, four doublings, scale by 2^k.
/// The C library's correctly rounded `exp` differs from it in the last bit for many inputs.
pub(crate) fn exp(x: f64) -> f64 {
    exp_with(x, use_fma())
}

// The constants are Go's, digit for digit, so they can be checked against its source.
#[allow(clippy::excessive_precision)]
fn exp_with(x: f64, fma: bool) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2U: f64 = 0.69314718055966295651160180568695068359375;
    const LN2L: f64 = 0.28235290563031577122588448175013436025525412068e-12;
    const OVERFLOW: f64 = 7.09782712893384e+02;
    // Taylor coefficients 1/7! .. 1/3!, then 1/2 and 1, in evaluation order.
    const POLY: [f64; 8] = [
        2.4801587301587301587e-5,
        1.9841269841269841270e-4,
        1.3888888888888888889e-3,
        8.3333333333333333333e-3,
        4.1666666666666666667e-2,
        1.6666666666666666667e-1,
        0.5,
        1.0,
    ];
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == f64::NEG_INFINITY {
        return 0.0;
    }
    if x > OVERFLOW {
        return f64::INFINITY;
    }
    // CVTSD2SL: round to nearest even; out-of-range values become i32::MIN, as `as` saturates
    // towards for the negative inputs that can reach here.
    let k = (LOG2E * x).round_ties_even() as i32;
    let kf = f64::from(k);
    let mut r = x;
    if fma {
        r = (-kf).mul_add(LN2U, r);
        r = (-kf).mul_add(LN2L, r);
        r *= 0.0625;
        let mut p = POLY[0];
        for c in &POLY[1..] {
            p = p.mul_add(r, *c);
        }
        r *= p;
        for _ in 0..3 {
            let t = r + 2.0;
            r *= t;
        }
        let t = r + 2.0;
        r = r.mul_add(t, 1.0);
    } else {
        r -= kf * LN2U;
        r -= kf * LN2L;
        r *= 0.0625;
        let mut p = POLY[0];
        for c in &POLY[1..] {
            p = p * r + c;
        }
        r *= p;
        for _ in 0..4 {
            let t = 2.0 + r;
            r *= t;
        }
        r += 1.0;
    }
    let mut biased = i64::from(k) + 0x3ff;
    if biased <= 0 {
        // Result is subnormal: scale in two steps.
        if biased < -52 {
            return 0.0;
        }
        biased += 0x3fe;
        r *= f64::from_bits((biased as u64) << 52);
        biased = 1;
    } else if biased >= 0x7ff {
        return f64::INFINITY;
    }
    r * f64::from_bits((biased as u64) << 52)
}

/// Go's `math.Log` (the FreeBSD algorithm; the amd64 assembly computes the same steps).
#[allow(clippy::excessive_precision)]
pub(crate) fn log(x: f64) -> f64 {
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    const L1: f64 = 6.666666666666735130e-01;
    const L2: f64 = 3.999999999940941908e-01;
    const L3: f64 = 2.857142874366239149e-01;
    const L4: f64 = 2.222219843214978396e-01;
    const L5: f64 = 1.818357216161805012e-01;
    const L6: f64 = 1.531383769920937332e-01;
    const L7: f64 = 1.479819860511658591e-01;

    if x.is_nan() || x == f64::INFINITY {
        return x;
    } else if x < 0.0 {
        return f64::NAN;
    } else if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    let (mut f1, mut ki) = frexp(x);
    if f1 < std::f64::consts::SQRT_2 / 2.0 {
        f1 *= 2.0;
        ki -= 1;
    }
    let f = f1 - 1.0;
    let k = ki as f64;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, never an exponent.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display also prints the shortest round-trip digits without an exponent.
        format!("{v}")
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input, `Inf`/`Infinity`/`NaN` in any case with an
/// optional sign, and hexadecimal mantissa-exponent floats.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = if lower == "inf" || lower == "infinity" {
        f64::INFINITY
    } else if lower == "nan" {
        f64::NAN
    } else if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else if !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        // Restricting the alphabet keeps Rust-only spellings ("infinity" handled above) out.
        body.parse::<f64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

/// `1.8p3`-style hexadecimal floats (the part after `0x`); an exponent is required, as in Go.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = s.split_once('p')?;
    let exp: i64 = exp.parse().ok()?;
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int_part.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    Some(ldexp(v, exp))
}

/// Go's `regexp.Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`; `$$` is a literal `$`; a name is
/// the longest run of letters, digits and `_` (so `$1x` is the group named `1x`); unknown or
/// unmatched groups expand to nothing; a malformed reference is kept as text.
pub(crate) fn regexp_expand(template: &str, group: &dyn Fn(GroupRef<'_>) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match extract_group(rest) {
            Some((name, num, after)) => {
                let r = match num {
                    Some(n) => GroupRef::Index(n),
                    None => GroupRef::Name(name),
                };
                if let Some(v) = group(r) {
                    out.push_str(&v);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
    out
}

/// A capture group reference in a replacement template.
pub(crate) enum GroupRef<'a> {
    Index(usize),
    Name(&'a str),
}

/// Go's `regexp.extract`: the group name after `$` and, when it is a number without leading
/// zeros, its index.
fn extract_group(s: &str) -> Option<(&str, Option<usize>, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len = body.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(body.len());
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let mut after = &body[len..];
    if brace {
        after = after.strip_prefix('}')?;
    }
    let mut num: Option<usize> = Some(0);
    for b in name.bytes() {
        num = match num {
            Some(n) if b.is_ascii_digit() && n < 100_000_000 => Some(n * 10 + (b - b'0') as usize),
            _ => None,
        };
    }
    if name.len() > 1 && name.starts_with('0') {
        num = None;
    }
    Some((name, num, after))
}

/// Rewrites a Go (RE2) regular expression so the `regex` crate matches it the same way: Go's
/// `\d \w \s \b` and their negations are ASCII-only (Rust's are Unicode), `\Q...\E` quotes
/// literally, and inside brackets `[` (unless `[:class:]`), `&&` and `~~` are plain characters.
pub(crate) fn go_regex_compat(re: &str) -> String {
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::with_capacity(re.len() + 8);
    let mut in_class = false;
    // Position right after the class's opening `[` (and `^`), where `]` is a literal.
    let mut class_start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            i += 2;
            if e == 'Q' {
                // Literal text up to \E (or the end).
                while i < chars.len() && !(chars[i] == '\\' && chars.get(i + 1) == Some(&'E')) {
                    if chars[i].is_ascii_punctuation() {
                        out.push('\\');
                    }
                    out.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    i += 2; // the \\E
                }
                continue;
            }
            let replacement = match (in_class, e) {
                (false, 'd') => "[0-9]",
                (false, 'D') => "[^0-9]",
                (false, 'w') => "[0-9A-Za-z_]",
                (false, 'W') => "[^0-9A-Za-z_]",
                (false, 's') => "[\\t\\n\\f\\r ]",
                (false, 'S') => "[^\\t\\n\\f\\r ]",
                (false, 'b') => "(?-u:\\b)",
                (false, 'B') => "(?-u:\\B)",
                (true, 'd') => "0-9",
                (true, 'w') => "0-9A-Za-z_",
                (true, 's') => "\\t\\n\\f\\r ",
                _ => "",
            };
            if replacement.is_empty() {
                out.push('\\');
                out.push(e);
            } else {
                out.push_str(replacement);
            }
            continue;
        }
        if in_class {
            if c == ']' && i > class_start {
                in_class = false;
                out.push(c);
            } else if c == '[' {
                if chars.get(i + 1) == Some(&':') {
                    // POSIX class: copy through its closing ":]".
                    let end = (i + 2..chars.len().saturating_sub(1)).find(|&j| chars[j] == ':' && chars[j + 1] == ']');
                    if let Some(end) = end {
                        out.extend(&chars[i..end + 2]);
                        i = end + 2;
                        continue;
                    }
                }
                out.push_str("\\[");
            } else if (c == '&' || c == '~') && chars.get(i + 1) == Some(&c) {
                out.push('\\');
                out.push(c);
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        if c == '[' {
            in_class = true;
            out.push(c);
            i += 1;
            if chars.get(i) == Some(&'^') {
                out.push('^');
                i += 1;
            }
            class_start = i;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_min_follow_go() {
        assert!(max(f64::NAN, 1.0).is_nan());
        assert_eq!(max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert!(min(1.0, f64::NAN).is_nan());
        assert!(max(-0.0, 0.0).is_sign_positive());
        assert!(min(0.0, -0.0).is_sign_negative());
    }

    #[test]
    fn pow_matches_go_on_integer_exponents() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(-2.0, 3.0), -8.0);
        assert_eq!(pow(10.0, -2.0), 0.01);
        assert_eq!(pow(4.0, 0.5), 2.0);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(pow(0.0, -1.0), f64::INFINITY);
        assert_eq!(pow(2.0, 3.0f64.powi(2)), 512.0);
    }

    #[test]
    fn exp_matches_go_amd64() {
        // Values from promtool 2.42 on an AVX2/FMA machine; glibc gives ...0645 for 1.5.
        assert_eq!(exp_with(1.5, true), 4.481689070338065);
        assert_eq!(exp_with(1.0, true), std::f64::consts::E);
        assert_eq!(exp_with(0.0, true), 1.0);
        assert_eq!(exp_with(-745.0, true), 5e-324);
        assert_eq!(exp_with(-740.0, true), 4.2e-322);
        assert_eq!(exp_with(-800.0, true), 0.0);
        assert_eq!(exp_with(709.78, true), f64::INFINITY);
        assert_eq!(exp_with(f64::NEG_INFINITY, true), 0.0);
        assert!(exp_with(f64::NAN, false).is_nan());
        assert_eq!(exp_with(1.0, false), std::f64::consts::E);
    }

    #[test]
    fn log_matches_go() {
        assert_eq!(log(100.0), 4.605170185988092);
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(0.0), f64::NEG_INFINITY);
        assert_eq!(log(std::f64::consts::E), 1.0);
    }

    #[test]
    fn frexp_ldexp_roundtrip() {
        for v in [1.0, 0.75, 1e-310, 3.5e300, -6.0] {
            let (f, e) = frexp(v);
            assert!((0.5..1.0).contains(&f.abs()), "{v}");
            assert_eq!(ldexp(f, e), v);
        }
    }

    #[test]
    fn float_formatting_and_parsing() {
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(2.5), "2.5");
        assert_eq!(format_float(1e-7), "0.0000001");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(parse_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("0.25"), Some(0.25));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("0x1p-2"), Some(0.25));
        assert_eq!(parse_float("abc"), None);
        assert_eq!(parse_float(""), None);
    }

    #[test]
    fn regexes_get_go_semantics() {
        assert_eq!(go_regex_compat(r"(\w+)-\d"), "([0-9A-Za-z_]+)-[0-9]");
        assert_eq!(go_regex_compat(r"[\d.]+\s"), r"[0-9.]+[\t\n\f\r ]");
        assert_eq!(go_regex_compat(r"[]a[:b]"), r"[]a\[:b]");
        assert_eq!(go_regex_compat(r"[[:alpha:]&&x]"), r"[[:alpha:]\&&x]");
        assert_eq!(go_regex_compat(r"\Qa.b\E+"), r"a\.b+");
        assert_eq!(go_regex_compat(r"a\.b|\bc"), r"a\.b|(?-u:\b)c");
        let m = |re: &str, s: &str| {
            let m = promql_parser::label::Matcher::new_matcher(
                promql_parser::parser::token::T_EQL_REGEX,
                String::new(),
                go_regex_compat(re),
            )
            .unwrap();
            m.is_match(s)
        };
        assert!(!m(r"\w+", "é1"));
        assert!(m(r"\w+", "a_1"));
        assert!(m(r"[^\d]+", "é"));
        assert!(m(r"\Q(a)\E", "(a)"));
        assert!(m(r"x[a[]", "x["));
    }

    #[test]
    fn expand_follows_go_templates() {
        let group = |r: GroupRef<'_>| match r {
            GroupRef::Index(1) => Some("one".to_string()),
            GroupRef::Name("n") => Some("named".to_string()),
            _ => None,
        };
        assert_eq!(regexp_expand("a-$1-${1}x-$$-$n", &group), "a-one-onex-$-named");
        // $1x is the group named "1x", not group 1 followed by x
        assert_eq!(regexp_expand("$1x", &group), "");
        assert_eq!(regexp_expand("${1", &group), "${1");
        assert_eq!(regexp_expand("$01", &group), "");
        assert_eq!(regexp_expand("cost: $", &group), "cost: $");
    }
}
