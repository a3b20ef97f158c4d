//! Build script: with feature `sim`, verilate `rtl/atomik_engine.v` once per
//! bank count (1, 2, 4, 8; 256 slots per bank) and compile the C++ models, the
//! Verilator runtime and `csrc/sim_shim.cpp` into one static library.
//! Without the feature it does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "sim")]
    if let Err(e) = sim::build() {
        // A build script reports failure by exiting non-zero with a message.
        eprintln!("atomik-offload: feature `sim` could not be built: {e}");
        eprintln!("atomik-offload: install Verilator (apt-get install -y verilator) or build without `--features sim`");
        std::process::exit(1);
    }
}

#[cfg(feature = "sim")]
mod sim {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Bank counts a model is built for.
    const BANKS: [u32; 4] = [1, 2, 4, 8];
    /// Slots per bank of every built model.
    const SLOTS_PER_BANK: u32 = 256;

    pub fn build() -> Result<(), String> {
        let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
        let rtl = manifest.join("../rtl/atomik_engine.v");
        let shim = manifest.join("csrc/sim_shim.cpp");
        println!("cargo:rerun-if-changed={}", rtl.display());
        println!("cargo:rerun-if-changed={}", shim.display());
        println!("cargo:rerun-if-env-changed=VERILATOR");
        let verilator = std::env::var("VERILATOR").unwrap_or_else(|_| "verilator".to_string());
        let out = PathBuf::from(env("OUT_DIR")?);

        let root = run(Command::new(&verilator).args(["--getenv", "VERILATOR_ROOT"]))?;
        let root = PathBuf::from(root.trim());
        let include = root.join("include");
        if !include.join("verilated.cpp").exists() {
            return Err(format!("no verilated.cpp under {}", include.display()));
        }

        let mut build = cc::Build::new();
        build
            .cpp(true)
            .std("c++17")
            .warnings(false)
            .opt_level(2)
            .define("VM_TRACE", "0")
            .define("VM_COVERAGE", "0")
            .define("VL_THREADED", "1")
            .include(&include)
            .include(include.join("vltstd"));

        for banks in BANKS {
            let prefix = format!("Vatomik_b{banks}");
            let mdir = out.join(format!("verilated_b{banks}"));
            if mdir.exists() {
                std::fs::remove_dir_all(&mdir).map_err(|e| format!("{}: {e}", mdir.display()))?;
            }
            run(Command::new(&verilator)
                .arg("--cc")
                .arg("-Wall")
                // rtl/test.sh enforces a clean lint; a newer Verilator's new
                // warnings must not break the build
                .arg("-Wno-fatal")
                .arg("-O3")
                .arg("--x-assign")
                .arg("fast")
                .arg("--x-initial")
                .arg("fast")
                .arg("--prefix")
                .arg(&prefix)
                .arg(format!("-GNUM_BANKS={banks}"))
                .arg(format!("-GSLOTS_PER_BANK={SLOTS_PER_BANK}"))
                .arg("--top-module")
                .arg("atomik_engine")
                .arg("--Mdir")
                .arg(&mdir)
                .arg(&rtl))?;
            build.include(&mdir);
            for file in cpp_files(&mdir)? {
                build.file(file);
            }
        }
        build.file(include.join("verilated.cpp"));
        build.file(include.join("verilated_threads.cpp"));
        build.file(&shim);
        build
            .try_compile("atomik_sim")
            .map_err(|e| format!("C++ compile failed: {e}"))?;
        Ok(())
    }

    fn env(name: &str) -> Result<String, String> {
        std::env::var(name).map_err(|_| format!("{name} is not set"))
    }

    fn run(cmd: &mut Command) -> Result<String, String> {
        let output = cmd
            .output()
            .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
        if !output.status.success() {
            return Err(format!(
                "{:?} failed ({}):\n{}{}",
                cmd,
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        String::from_utf8(output.stdout).map_err(|e| format!("non-UTF-8 output: {e}"))
    }

    fn cpp_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.extension().is_some_and(|x| x == "cpp") {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }
}
