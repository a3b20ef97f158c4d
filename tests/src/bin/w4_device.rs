//! `w4-device PATH`: one W4 device, an SQLite file driven over
//! stdin/stdout (see `atomik_cross_engine::device`).

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: w4-device PATH"))?;
    atomik_cross_engine::device::serve_stdio(std::path::Path::new(&path))
}
