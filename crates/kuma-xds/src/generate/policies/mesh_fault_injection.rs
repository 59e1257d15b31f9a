//! MeshFaultInjection: aborts, delays and response bandwidth limits on an
//! HTTP inbound.
//!
//! As Kuma does, every entry of `http` becomes its own
//! `envoy.filters.http.fault` filter (so that each entry's percentages are
//! drawn independently), in the order of the list, before the router.
//! Percentages become Envoy fractions in the coarsest exact denominator.
//! Only the conf every client gets (Mesh-wide `from`, match-less `rules`)
//! is applied; TCP inbounds are left alone, faults being HTTP only.

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay, FaultRateLimit, fault_delay, fault_rate_limit,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::util::pack_any;
use kuma_api::policies::mesh_fault_injection::{Conf, FaultInjection};
use kuma_api::policies::values::IntOrString;

use super::duration::proto;
use super::mesh_http_route::fraction;
use super::mesh_rate_limit::insert_before_router;

const FAULT_FILTER: &str = "envoy.filters.http.fault";

fn percentage(p: Option<&IntOrString>) -> Option<FractionalPercent> {
    fraction(p?.as_f64()?).default_value
}

/// `100kbps`, `5 Mbps`, `1Gbps` in kilobits per second.
fn kbps(limit: &str) -> Option<u64> {
    let limit = limit.trim();
    let (number, scale) = if let Some(n) = limit.strip_suffix("Gbps") {
        (n, 1_000_000)
    } else if let Some(n) = limit.strip_suffix("Mbps") {
        (n, 1_000)
    } else {
        (limit.strip_suffix("kbps")?, 1)
    };
    number.trim().parse::<u64>().ok()?.checked_mul(scale)
}

/// One entry's filter; `None` when it injects nothing.
fn fault(entry: &FaultInjection) -> Option<HttpFault> {
    let abort = entry.abort.as_ref().and_then(|a| {
        Some(FaultAbort {
            percentage: percentage(a.percentage.as_ref()),
            error_type: Some(fault_abort::ErrorType::HttpStatus(
                u32::try_from(a.http_status).ok()?,
            )),
            ..FaultAbort::default()
        })
    });
    let delay = entry.delay.as_ref().and_then(|d| {
        Some(FaultDelay {
            percentage: percentage(d.percentage.as_ref()),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(proto(
                d.value.as_ref()?,
            )?)),
        })
    });
    let response_rate_limit = entry.response_bandwidth.as_ref().and_then(|b| {
        Some(FaultRateLimit {
            percentage: percentage(b.percentage.as_ref()),
            limit_type: Some(fault_rate_limit::LimitType::FixedLimit(
                fault_rate_limit::FixedLimit {
                    limit_kbps: kbps(&b.limit)?,
                },
            )),
        })
    });
    if abort.is_none() && delay.is_none() && response_rate_limit.is_none() {
        return None;
    }
    Some(HttpFault {
        abort,
        delay,
        response_rate_limit,
        ..HttpFault::default()
    })
}

pub(crate) fn http(conf: &Conf, hcm: &mut HttpConnectionManager) {
    let filters = conf
        .http
        .iter()
        .flatten()
        .filter_map(fault)
        .map(|f| HttpFilter {
            name: FAULT_FILTER.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(f))),
            ..HttpFilter::default()
        })
        .collect();
    insert_before_router(hcm, filters);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::listener::hcm;
    use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
    use kuma_api::policies::mesh_fault_injection::{Abort, Delay, ResponseBandwidth};
    use kuma_api::policies::values::GoDuration;
    use prost::Message;

    fn decode(f: &HttpFilter) -> HttpFault {
        let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            panic!("typed config");
        };
        HttpFault::decode(any.value.as_slice()).expect("fault")
    }

    #[test]
    fn bandwidth_units_scale_to_kbps() {
        assert_eq!(kbps("100kbps"), Some(100));
        assert_eq!(kbps("5 Mbps"), Some(5_000));
        assert_eq!(kbps("1Gbps"), Some(1_000_000));
        assert_eq!(kbps("kbps"), None);
        assert_eq!(kbps("10 mbit"), None);
    }

    #[test]
    fn each_entry_is_one_filter_before_the_router() {
        let conf = Conf {
            http: Some(vec![
                FaultInjection {
                    abort: Some(Abort {
                        http_status: 503,
                        percentage: Some(IntOrString::Int(50)),
                    }),
                    ..FaultInjection::default()
                },
                FaultInjection {
                    delay: Some(Delay {
                        value: Some(GoDuration("500ms".into())),
                        percentage: Some(IntOrString::String("2.5".into())),
                    }),
                    response_bandwidth: Some(ResponseBandwidth {
                        limit: "1Mbps".into(),
                        percentage: Some(IntOrString::Int(100)),
                    }),
                    ..FaultInjection::default()
                },
                FaultInjection::default(),
            ]),
        };
        let mut h = hcm("p", Vec::new());
        http(&conf, &mut h);
        let names: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            vec![FAULT_FILTER, FAULT_FILTER, "envoy.filters.http.router"]
        );
        let abort = decode(&h.http_filters[0]).abort.expect("abort");
        assert_eq!(
            abort.error_type,
            Some(fault_abort::ErrorType::HttpStatus(503))
        );
        assert_eq!(
            abort.percentage,
            Some(FractionalPercent {
                numerator: 50,
                denominator: DenominatorType::Hundred as i32
            })
        );
        let second = decode(&h.http_filters[1]);
        let delay = second.delay.expect("delay");
        assert_eq!(
            delay.percentage,
            Some(FractionalPercent {
                numerator: 250,
                denominator: DenominatorType::TenThousand as i32
            })
        );
        let Some(fault_delay::FaultDelaySecifier::FixedDelay(d)) = delay.fault_delay_secifier
        else {
            panic!("fixed delay");
        };
        assert_eq!((d.seconds, d.nanos), (0, 500_000_000));
        let Some(fault_rate_limit::LimitType::FixedLimit(limit)) =
            second.response_rate_limit.expect("bandwidth").limit_type
        else {
            panic!("fixed limit");
        };
        assert_eq!(limit.limit_kbps, 1_000);
    }
}
