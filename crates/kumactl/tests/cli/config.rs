//! `kumactl config ...` in a temporary HOME.

use crate::Env;

#[test]
fn first_use_writes_the_default_local_control_plane() {
    let other_home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kumactl"))
        .args(["config", "view"])
        .env("HOME", other_home.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = "contexts:\n- controlPlane: local\n  name: local\ncontrolPlanes:\n- coordinates:\n    apiServer:\n      url: http://localhost:5681\n  name: local\ncurrentContext: local\n";
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{expected}\n")
    );
    let written = std::fs::read_to_string(other_home.path().join(".kumactl/config")).unwrap();
    assert_eq!(written, expected);
}

#[test]
fn add_list_switch_remove_and_view() {
    let env = Env::start();
    // Env::start added `test`, which is active.
    let list = env
        .kumactl(&["config", "control-planes", "list"])
        .ok()
        .stdout;
    let url = env.url();
    assert_eq!(
        list,
        format!(
            "ACTIVE   NAME    ADDRESS\n         local   http://localhost:5681\n*        test    {url}\n"
        )
    );

    // Unreachable addresses are refused unless the check is skipped.
    let run = env
        .kumactl(&[
            "config",
            "control-planes",
            "add",
            "--name",
            "far",
            "--address",
            "http://127.0.0.1:1",
        ])
        .failed();
    assert!(
        run.stderr
            .starts_with("Error: could not connect to the Control Plane API Server"),
        "{}",
        run.stderr
    );
    let run = env
        .kumactl(&[
            "config",
            "control-planes",
            "add",
            "--name",
            "far",
            "--address",
            "https://far.internal:5682",
            "--skip-check",
            "--skip-verify",
        ])
        .ok();
    assert_eq!(
        run.stdout,
        "added Control Plane \"far\"\nswitched active Control Plane to \"far\"\n"
    );

    let run = env
        .kumactl(&[
            "config",
            "control-planes",
            "add",
            "--name",
            "far",
            "--address",
            "http://x:1",
            "--skip-check",
        ])
        .failed();
    assert_eq!(
        run.stderr,
        "Error: Control Plane with name \"far\" already exists. Use --overwrite to replace an existing one.\n"
    );

    let view = env.kumactl(&["config", "view"]).ok().stdout;
    assert!(view.contains("currentContext: far\n"), "{view}");
    assert!(
        view.contains("      skipVerify: true\n      url: https://far.internal:5682\n"),
        "{view}"
    );
    assert_eq!(
        view,
        format!("{}\n", std::fs::read_to_string(env.config_path()).unwrap())
    );

    let run = env
        .kumactl(&["config", "control-planes", "switch", "--name", "test"])
        .ok();
    assert_eq!(run.stdout, "switched active Control Plane to \"test\"\n");
    env.kumactl(&["get", "meshes"]).ok();

    let run = env
        .kumactl(&["config", "control-planes", "switch", "--name", "nope"])
        .failed();
    assert_eq!(
        run.stderr,
        "Error: there is no Control Plane with name \"nope\"\n"
    );

    let run = env
        .kumactl(&["config", "control-planes", "remove", "--name", "test"])
        .ok();
    assert_eq!(
        run.stdout,
        "removed Control Plane \"test\"\nswitched active Control Plane to \"local\"\n"
    );
    let list = env
        .kumactl(&["config", "control-planes", "list"])
        .ok()
        .stdout;
    assert_eq!(
        list,
        "ACTIVE   NAME    ADDRESS\n*        local   http://localhost:5681\n         far     https://far.internal:5682\n"
    );
    env.kumactl(&["config", "control-planes", "remove", "--name", "test"])
        .failed();
}

#[test]
fn config_file_flag_points_elsewhere() {
    let env = Env::start();
    let path = env.home().join("elsewhere").join("config");
    let p = path.to_str().unwrap();
    let url = env.url();
    env.kumactl(&[
        "--config-file",
        p,
        "config",
        "control-planes",
        "add",
        "--name",
        "x",
        "--address",
        &url,
    ])
    .ok();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("currentContext: x\n"), "{text}");
    let home_config = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(!home_config.contains("name: x\n"), "{home_config}");
    let run = env.kumactl(&["--config-file", p, "get", "meshes"]).ok();
    assert!(run.stdout.starts_with("NAME "), "{}", run.stdout);
}
