//! Workload W4 across engines (see `atomik_cross_engine::w4`).
//!
//! * `w4_sqlite_devices_sqlite_hubs` runs everywhere (`cargo test`);
//! * `w4_sqlite_devices_postgres_hubs` needs a PostgreSQL cluster with
//!   pg_atomik installed and the `atomik` binary: `tests/cross-engine.sh`
//!   provides both and runs it.
//!
//! Environment: `ATOMIK_W4_SCHEDULES` (default 30 here, 300 with
//! PostgreSQL), `ATOMIK_W4_SEED` (base seed; decimal or 0x-hex),
//! `ATOMIK_W4_STEPS` (default 150). A failing schedule prints its seed:
//! replay it with `ATOMIK_W4_SEED=<seed> ATOMIK_W4_SCHEDULES=1`. (Kills
//! land after a random number of microseconds of real time, so a replay
//! repeats the schedule, not necessarily the exact instant of each kill.)

use std::path::PathBuf;

use atomik_cross_engine::pg_node::PgCluster;
use atomik_cross_engine::w4::{run_schedule, schedule_seed, W4Config, W4Stats};

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

fn run(config: &W4Config, default_schedules: u64) -> W4Stats {
    let schedules = env_u64("ATOMIK_W4_SCHEDULES", default_schedules);
    let single = std::env::var("ATOMIK_W4_SEED").is_ok() && schedules == 1;
    let base = env_u64("ATOMIK_W4_SEED", 0x5EED_0000_0000_0004);
    let mut total = W4Stats::default();
    for i in 0..schedules {
        // A replay (one schedule) runs exactly the seed it was given.
        let seed = if single { base } else { schedule_seed(base, i) };
        match run_schedule(config, seed) {
            Ok(stats) => total.merge(&stats),
            Err(e) => panic!(
                "{e:#}\nreplay: ATOMIK_W4_SEED={seed:#018x} ATOMIK_W4_SCHEDULES=1 \
                 (after {} schedules converged)",
                total.schedules
            ),
        }
    }
    println!("{total}");
    total
}

fn config(pg: Option<PgCluster>, serve_program: Option<PathBuf>) -> (W4Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = W4Config {
        device_program: PathBuf::from(env!("CARGO_BIN_EXE_w4-device")),
        serve_program,
        pg,
        cells: 1000,
        steps: env_u64("ATOMIK_W4_STEPS", 150) as usize,
        work_dir: dir.path().to_path_buf(),
    };
    (config, dir)
}

#[test]
fn w4_sqlite_devices_sqlite_hubs() {
    let (config, _dir) = config(None, None);
    let stats = run(&config, 30);
    // The faults the workload promises actually happened.
    assert!(stats.dropped > 0 && stats.duplicated > 0 && stats.reordered > 0);
    assert!(stats.kills_in_write + stats.kills_in_finish + stats.kills_in_request > 0);
}

#[test]
#[ignore = "needs PostgreSQL with pg_atomik and the atomik binary: run tests/cross-engine.sh"]
fn w4_sqlite_devices_postgres_hubs() {
    let pg = PgCluster::from_env()
        .unwrap()
        .expect("ATOMIK_PG_HOST is not set: run tests/cross-engine.sh");
    let atomik = std::env::var_os("ATOMIK_BIN").map(PathBuf::from).expect(
        "ATOMIK_BIN (the atomik binary, for atomik serve) is not set: run tests/cross-engine.sh",
    );
    let (config, _dir) = config(Some(pg), Some(atomik));
    let stats = run(&config, 300);
    assert_eq!(stats.pg_hub_a, stats.schedules);
    assert!(stats.deferred_hub > 0 && stats.deferred_hub < stats.schedules);
    assert!(stats.pg_hub_b > 0 && stats.pg_hub_b < stats.schedules);
    assert!(stats.http_requests > 0);
    assert!(stats.dropped > 0 && stats.duplicated > 0 && stats.reordered > 0);
    assert!(stats.kills_in_write > 0 && stats.kills_in_finish > 0 && stats.kills_in_request > 0);
}
