//! `apply-to-ack`: a web proxy and N backend proxies run; one backend
//! Dataplane more is applied (an endpoint added) and deleted again (an
//! endpoint removed), and each change is timed until every proxy that
//! receives backend's endpoints has ACKed the new version.

use std::time::{Duration, Instant};

use kuma_e2e::binaries::Binaries;
use kuma_e2e::control_plane::ControlPlane;
use kuma_e2e::dataplane::{Dataplane, Inbound, dataplane_yaml};
use kuma_e2e::free_port;

use super::{Api, BenchResult, MESH, POLL, WAIT, alive, find, proxy_yaml, report, settled_version};

/// Changes made and discarded before the timed ones (first-use costs:
/// connections, allocations, caches).
const WARM_UP: usize = 3;
/// Lets the previous change's last responses drain before the next one.
const SETTLE: Duration = Duration::from_millis(20);

pub async fn bench(binaries: &Binaries, backends: usize, runs: usize) -> BenchResult<()> {
    let cp = ControlPlane::start(binaries).await;
    let api = Api::new(&cp)?;
    let mut proxies = Vec::new();
    // web calls backend; so does every backend (as with Kuma's default of
    // every proxy reaching every service): each change reaches all of them.
    proxies
        .push(Dataplane::start(binaries, &cp, "web", &proxy_yaml("web", "web", "backend")).await);
    for i in 0..backends {
        let name = format!("backend-{i}");
        let yaml = proxy_yaml(&name, "backend", "backend");
        proxies.push(Dataplane::start(binaries, &cp, &name, &yaml).await);
    }
    let outcome = measure(&api, &mut proxies, backends, runs).await;
    for dp in &proxies {
        dp.proc.terminate();
    }
    drop(proxies);
    drop(cp);
    outcome
}

async fn measure(
    api: &Api,
    proxies: &mut [Dataplane],
    backends: usize,
    runs: usize,
) -> BenchResult<()> {
    let names: Vec<String> = proxies.iter().map(|dp| dp.name.clone()).collect();
    let affected = names.len();
    let mut versions = settled_versions(api, &names).await?;
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for run in 0..WARM_UP + runs {
        let extra = format!("extra-{run}");
        let port = free_port();
        let yaml = dataplane_yaml(
            MESH,
            &extra,
            &[Inbound {
                port,
                service_port: free_port(),
                service: "backend".into(),
            }],
            &[],
        );
        let endpoint = format!("127.0.0.1:{port}");

        api.put_dataplane(&extra, &yaml).await?;
        let (took, now) = until_all_acked(api, &names, &versions, Instant::now()).await?;
        versions = now;
        web_has_endpoint(&proxies[0], &endpoint, true).await?;
        if run >= WARM_UP {
            added.push(took);
        }
        tokio::time::sleep(SETTLE).await;

        api.delete_dataplane(&extra).await?;
        let (took, now) = until_all_acked(api, &names, &versions, Instant::now()).await?;
        versions = now;
        web_has_endpoint(&proxies[0], &endpoint, false).await?;
        if run >= WARM_UP {
            removed.push(took);
        }
        for dp in proxies.iter_mut() {
            alive(dp)?;
        }
        tokio::time::sleep(SETTLE).await;
    }
    let labels = |change: &str| {
        format!("apply-to-ack change={change} backends={backends} proxies={affected}")
    };
    report(&labels("endpoint-added"), &added);
    report(&labels("endpoint-removed"), &removed);
    Ok(())
}

/// The settled endpoints version of each proxy once all have one, so the
/// first timed change starts from a quiet mesh.
async fn settled_versions(api: &Api, names: &[String]) -> BenchResult<Vec<String>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let overviews = api.overviews().await?;
        let versions: Option<Vec<String>> = names
            .iter()
            .map(|n| find(&overviews, n).and_then(|o| settled_version(o, "eds")))
            .collect();
        if let Some(versions) = versions {
            return Ok(versions);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "proxies' endpoints not ACKed within {WAIT:?}: {overviews:?}"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the insights until every proxy has ACKed an endpoints version other
/// than its one in `before`, timed from `since` (the API's answer). Returns
/// when the last proxy was seen done, and the new versions.
async fn until_all_acked(
    api: &Api,
    names: &[String],
    before: &[String],
    since: Instant,
) -> BenchResult<(Duration, Vec<String>)> {
    let mut done: Vec<Option<(Duration, String)>> = vec![None; names.len()];
    loop {
        let overviews = api.overviews().await?;
        let seen = since.elapsed();
        for (i, name) in names.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            if let Some(v) = find(&overviews, name).and_then(|o| settled_version(o, "eds"))
                && v != before[i]
            {
                done[i] = Some((seen, v));
            }
        }
        if done.iter().all(Option::is_some) {
            let done: Vec<(Duration, String)> = done.into_iter().flatten().collect();
            let last = done.iter().map(|(t, _)| *t).max().unwrap_or_default();
            return Ok((last, done.into_iter().map(|(_, v)| v).collect()));
        }
        if seen > WAIT {
            let waiting: Vec<&String> = names
                .iter()
                .zip(&done)
                .filter(|(_, d)| d.is_none())
                .map(|(n, _)| n)
                .collect();
            return Err(format!(
                "{waiting:?} did not ACK new endpoints within {WAIT:?}"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Envoy's own view agrees with the ACK: web's clusters list the endpoint
/// exactly when it should.
async fn web_has_endpoint(web: &Dataplane, endpoint: &str, expected: bool) -> BenchResult<()> {
    let clusters = web.admin("/clusters").await?;
    if clusters.contains(endpoint) == expected {
        Ok(())
    } else {
        Err(format!(
            "web ACKed, but its Envoy {} {endpoint}:\n{clusters}",
            if expected { "lacks" } else { "still has" }
        ))
    }
}
