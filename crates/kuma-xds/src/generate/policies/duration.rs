//! Policy durations as protobuf durations.

use envoy_types::pb::google::protobuf::Duration;
use kuma_api::policies::values::GoDuration;

/// The protobuf form of a policy duration; `None` when it does not parse
/// (validation keeps such policies out of the store) or is negative.
pub(crate) fn proto(d: &GoDuration) -> Option<Duration> {
    let nanos = d.nanos().filter(|n| *n >= 0)?;
    let seconds = i64::try_from(nanos / 1_000_000_000).ok()?;
    let rest = i32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration {
        seconds,
        nanos: rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_become_seconds_and_nanos() {
        let d = proto(&GoDuration("1m1.5s".to_string())).expect("parses");
        assert_eq!((d.seconds, d.nanos), (61, 500_000_000));
        assert_eq!(
            proto(&GoDuration("0s".to_string())).map(|d| d.seconds),
            Some(0)
        );
        assert!(proto(&GoDuration("-1s".to_string())).is_none());
        assert!(proto(&GoDuration("soon".to_string())).is_none());
    }
}
