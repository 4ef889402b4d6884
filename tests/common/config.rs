//! `driftgate config check` on a configuration of one stream, one model and one policy.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Checks a stream `s` of `features` (`(name, kind)`) on `baseline`, with `stream_extra` lines
/// in its table, a model `m` reading every feature, and the model's policy `p` holding `when`.
/// What `driftgate config check` printed (standard output, then error), after its exit status:
/// `exit Some(0)\n…`.
pub fn check(
    dir: &Path,
    baseline: &Path,
    features: &[(&str, &str)],
    stream_extra: &str,
    when: &str,
) -> String {
    let specs: Vec<String> = (features.iter())
        .map(|(name, kind)| format!("{{ name = \"{name}\", kind = \"{kind}\" }}"))
        .collect();
    let names: Vec<String> = features.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let config = format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
group_id = "g"
[store]
path = "x.db"
[[streams]]
name = "s"
topic = "t"
baseline = "{baseline}"
window = {{ records = 100 }}
features = [{specs}]
{stream_extra}

[[models]]
name = "m"
stream = "s"
features = [{names}]

[[policies]]
name = "p"
model = "m"
when = {when}
"#,
        baseline = baseline.display(),
        specs = specs.join(", "),
        names = names.join(", "),
    );
    let file = dir.join("service.toml");
    std::fs::write(&file, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
