//! `kumactl get` and `kumactl delete`.

use crate::Env;
use crate::apply::{DATAPLANE, TIMEOUT};

#[test]
fn tables_have_kumas_columns() {
    let env = Env::start();
    env.kumactl_with_stdin(&["apply", "-f", "-"], &format!("{DATAPLANE}---\n{TIMEOUT}"))
        .ok();

    let meshes = env.kumactl(&["get", "meshes"]).ok().stdout;
    let lines: Vec<&str> = meshes.lines().collect();
    assert_eq!(lines[0], "NAME      mTLS   LOCALITY   ZONEEGRESS   AGE");
    assert!(
        lines[1].starts_with("default   off    off        off          "),
        "{meshes}"
    );
    assert!(lines[1].ends_with('s'), "age in seconds: {meshes}");

    let dps = env.kumactl(&["get", "dataplanes"]).ok().stdout;
    let lines: Vec<&str> = dps.lines().collect();
    assert_eq!(
        lines[0],
        "MESH      NAME    TAGS                             ADDRESS    AGE"
    );
    assert!(
        lines[1].starts_with("default   web-1   kuma.io/service=web version=v1   10.0.0.1   "),
        "{dps}"
    );

    // The default mesh comes with default policies, so t1 is not alone.
    let timeouts = env.kumactl(&["get", "mt"]).ok().stdout;
    assert!(timeouts.starts_with("MESH      NAME "), "{timeouts}");
    let t1 = timeouts
        .lines()
        .find(|l| l.contains(" t1 "))
        .unwrap_or_default();
    assert!(t1.starts_with("default   t1  "), "{timeouts}");
    let one = env.kumactl(&["get", "meshtimeout", "t1"]).ok().stdout;
    assert_eq!(one.lines().count(), 2, "{one}");

    let zones = env.kumactl(&["get", "zones"]).ok().stdout;
    assert_eq!(zones, "NAME   AGE\n");
}

#[test]
fn yaml_and_json_are_the_apis_resources() {
    let env = Env::start();
    env.kumactl_with_stdin(&["apply", "-f", "-"], TIMEOUT).ok();
    let list: serde_json::Value = serde_json::from_str(
        &env.kumactl(&["get", "meshtimeouts", "-o", "json"])
            .ok()
            .stdout,
    )
    .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(list["total"], items.len());
    let t1 = items.iter().find(|i| i["name"] == "t1").unwrap();
    assert_eq!(t1["type"], "MeshTimeout");
    assert!(list["next"].is_null());

    let one: serde_json::Value = serde_yaml::from_str(
        &env.kumactl(&["get", "meshtimeout", "t1", "-o", "yaml"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(one["mesh"], "default");
    assert_eq!(one["spec"]["targetRef"]["kind"], "Mesh");
    assert!(one["creationTime"].is_string());

    let run = env.kumactl(&["get", "meshes", "-o", "xml"]).failed();
    assert_eq!(run.stderr, "Error: unknown output format \"xml\"\n");
}

#[test]
fn lists_follow_next_links_unless_paging_by_hand() {
    let env = Env::start();
    let many: String = (0..105)
        .map(|i| format!("type: Mesh\nname: m{i:03}\n---\n"))
        .collect();
    env.kumactl_with_stdin(&["apply", "-f", "-"], &many).ok();
    let all: serde_json::Value =
        serde_json::from_str(&env.kumactl(&["get", "meshes", "-o", "json"]).ok().stdout).unwrap();
    // 105 applied plus the default mesh; more than one page of 100.
    assert_eq!(all["items"].as_array().unwrap().len(), 106);

    let page = env.kumactl(&["get", "meshes", "--size", "2"]).ok().stdout;
    assert_eq!(page.lines().count(), 5, "{page}");
    assert!(
        page.ends_with("\n\nRerun command with --offset=2 argument to retrieve more resources\n"),
        "{page}"
    );
    let next = env
        .kumactl(&["get", "meshes", "--size", "2", "--offset", "2"])
        .ok()
        .stdout;
    assert!(next.contains("--offset=4"), "{next}");
}

#[test]
fn not_found_and_unknown_types_use_kumas_wording() {
    let env = Env::start();
    let run = env
        .kumactl(&["get", "meshtimeout", "nope", "-m", "other"])
        .failed();
    assert_eq!(run.stderr, "Error: No resources found in other mesh\n");
    let run = env.kumactl(&["get", "zone", "nope"]).failed();
    assert_eq!(run.stderr, "Error: No resources found\n");
    let run = env.kumactl(&["get", "bogus"]).failed();
    assert!(
        run.stderr
            .starts_with("Error: unknown command \"bogus\" for \"kumactl get\"")
    );
    let run = env.kumactl(&["get", "mesh"]).failed();
    assert_eq!(run.stderr, "Error: accepts 1 arg(s), received 0\n");
}

#[test]
fn delete_reports_what_it_did() {
    let env = Env::start();
    env.kumactl_with_stdin(
        &["apply", "-f", "-"],
        &format!("type: Mesh\nname: demo\n---\n{TIMEOUT}"),
    )
    .ok();
    let run = env.kumactl(&["delete", "meshtimeout", "t1"]).ok();
    assert_eq!(run.stdout, "deleted MeshTimeout \"t1\"\n");
    env.kumactl(&["get", "meshtimeout", "t1"]).failed();
    let run = env.kumactl(&["delete", "meshtimeout", "t1"]).failed();
    assert_eq!(
        run.stderr,
        "Error: there is no MeshTimeout with name \"t1\"\n"
    );
    let run = env.kumactl(&["delete", "mesh", "demo"]).ok();
    assert_eq!(run.stdout, "deleted Mesh \"demo\"\n");
    let run = env.kumactl(&["delete", "bogus", "x"]).failed();
    assert!(
        run.stderr
            .starts_with("Error: unknown TYPE: bogus. Allowed values: dataplane, ")
    );
}
