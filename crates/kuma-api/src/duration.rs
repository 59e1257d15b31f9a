//! Duration strings as Kuma accepts them.
//!
//! Two spellings exist side by side:
//! - targetRef policies and the newer kinds carry Kubernetes `metav1.Duration`
//!   values, i.e. Go's `time.ParseDuration` syntax: `10s`, `1m30s`, `1.5h`,
//!   `250ms`, `-1s`, `0`. See [`parse_duration`] and [`parse_duration_nanos`].
//! - the Mesh resource's certificate settings (`dpCert.rotation.expiration`,
//!   builtin `caCert.expiration`) use a single integer and one unit out of
//!   `y w d h m s ms` (`10y`, `1d`, `0`). See [`parse_mesh_duration`].

use std::time::Duration;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Nanoseconds in each unit Go's `time.ParseDuration` knows.
fn go_unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // Go accepts the micro sign and the Greek mu as well as `us`.
        "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3_600 * NANOS_PER_SECOND,
        _ => return None,
    })
}

/// Parses a non-negative duration in Go's `time.ParseDuration` syntax
/// (`"10s"`, `"1m30s"`, `"1.5h"`, `"0"`).
///
/// Negative values (`"-1s"`) are refused here because a `std::time::Duration`
/// cannot hold them; use [`parse_duration_nanos`] where the sign matters.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let nanos = parse_duration_nanos(s)?;
    if nanos < 0 {
        return Err(format!("negative duration: {s:?}"));
    }
    let nanos = nanos.unsigned_abs();
    let secs = u64::try_from(nanos / NANOS_PER_SECOND)
        .map_err(|_| format!("duration out of range: {s:?}"))?;
    // The remainder is below one second, so it fits in u32.
    let sub = (nanos % NANOS_PER_SECOND) as u32;
    Ok(Duration::new(secs, sub))
}

/// Parses Go's `time.ParseDuration` syntax into signed nanoseconds,
/// with Go's limit of about 292 years either way.
pub fn parse_duration_nanos(s: &str) -> Result<i128, String> {
    let invalid = || format!("invalid duration {s:?}");
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(format!("missing unit in duration {s:?}"));
        }
        let per_unit = go_unit_nanos(unit)
            .ok_or_else(|| format!("unknown unit {unit:?} in duration {s:?}"))?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut value = whole.checked_mul(per_unit).ok_or_else(invalid)?;
        // The fraction contributes per_unit * 0.frac, truncated like Go does.
        let mut scale = per_unit;
        for digit in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
        if total > i64::MAX as u128 + u128::from(negative) {
            return Err(invalid());
        }
    }
    let total = total as i128;
    Ok(if negative { -total } else { total })
}

/// Parses the Mesh resource's certificate durations: an integer followed by
/// one of `y` (365 days), `w`, `d`, `h`, `m`, `s`, `ms`; or a bare `0`.
pub fn parse_mesh_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let invalid = || format!("not a valid duration string: {s:?}");
    if number.is_empty() {
        return Err(invalid());
    }
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let millis_per_unit: u64 = match unit {
        "y" => 365 * 24 * 3_600_000,
        "w" => 7 * 24 * 3_600_000,
        "d" => 24 * 3_600_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        "ms" => 1,
        _ => return Err(invalid()),
    };
    let millis = n.checked_mul(millis_per_unit).ok_or_else(invalid)?;
    Ok(Duration::from_millis(millis))
}

/// Parses protobuf's JSON form of `google.protobuf.Duration`: decimal seconds
/// with an `s` suffix and at most nine fractional digits (`"10s"`, `"0.5s"`).
/// Used by the older kinds (Dataplane probes, Mesh CA timeouts).
pub fn parse_proto_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?}: expected seconds like \"10s\" or \"0.5s\"");
    let body = s.strip_suffix('s').ok_or_else(invalid)?;
    if body.starts_with('-') {
        return Err(format!("negative duration: {s:?}"));
    }
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 9 {
        return Err(invalid());
    }
    if body.ends_with('.') {
        return Err(invalid());
    }
    let secs: u64 = whole.parse().map_err(|_| invalid())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| invalid())?
    };
    Ok(Duration::new(secs, nanos))
}

/// Prints a duration the way Go's `time.Duration.String` does
/// (`"1m30s"`, `"1h0m0s"`, `"250ms"`, `"1.5s"`, `"0s"`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < NANOS_PER_SECOND {
        let (unit, per) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("\u{00b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fixed_point(nanos, per));
    }
    let secs_total = nanos / NANOS_PER_SECOND;
    let hours = secs_total / 3_600;
    let minutes = (secs_total % 3_600) / 60;
    let seconds = fixed_point(nanos % (60 * NANOS_PER_SECOND), NANOS_PER_SECOND);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

/// `value / per` as a decimal without trailing zeros.
fn fixed_point(value: u128, per: u128) -> String {
    let whole = value / per;
    let frac = value % per;
    if frac == 0 {
        return whole.to_string();
    }
    let width = per.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_syntax_parses() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1us"), Ok(Duration::from_micros(1)));
        assert_eq!(parse_duration("1µs"), Ok(Duration::from_micros(1)));
        assert_eq!(parse_duration("2h45m"), Ok(Duration::from_secs(9900)));
        assert_eq!(parse_duration("+3s"), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn go_syntax_refuses_garbage() {
        for bad in ["", "10", "s", "1d", "10y", "1.s.", "abc", "1s2", "-", "1 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration_nanos("-1s"), Ok(-1_000_000_000));
        assert!(parse_duration_nanos("300y").is_err());
        assert!(parse_duration_nanos("9999999999999h").is_err());
    }

    #[test]
    fn mesh_syntax_parses() {
        assert_eq!(
            parse_mesh_duration("10y"),
            Ok(Duration::from_secs(10 * 365 * 86_400))
        );
        assert_eq!(parse_mesh_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            parse_mesh_duration("2w"),
            Ok(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(parse_mesh_duration("5ms"), Ok(Duration::from_millis(5)));
        assert_eq!(parse_mesh_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "1m30s", "1.5h", "d", "10", "-1d", "1x"] {
            assert!(parse_mesh_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn proto_syntax_parses() {
        assert_eq!(parse_proto_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_proto_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_proto_duration("1.000000001s"),
            Ok(Duration::new(1, 1))
        );
        for bad in ["", "10", "1m", "-1s", ".5s", "1.s", "1.0000000001s", "1h"] {
            assert!(parse_proto_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }
}
