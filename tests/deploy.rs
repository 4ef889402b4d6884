//! The files in `deploy/` cannot run here (no container engine), so this test holds them to the
//! binary: every YAML and JSON file parses; the ports, probe paths and metric names they use are
//! the ones a running driftgate serves; the configurations they ship pass `config check`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{free_address, http_get, http_with};

const API_PORT: u16 = 9464;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn deploy_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(Path::new("deploy"), &mut out);
    out.sort();
    out
}

/// Every YAML document of every YAML file.
fn yaml_documents() -> Vec<(PathBuf, serde_yaml::Value)> {
    let mut documents = Vec::new();
    for path in deploy_files() {
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            for document in serde_yaml::Deserializer::from_str(&text) {
                let value = serde_yaml::Value::deserialize(document)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                documents.push((path.clone(), value));
            }
        }
    }
    documents
}

use serde::Deserialize;

fn kind<'a>(
    documents: &'a [(PathBuf, serde_yaml::Value)],
    kind: &str,
) -> Vec<&'a serde_yaml::Value> {
    documents
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .map(|(_, d)| d)
        .collect()
}

/// `driftgate config check` on `file`, from `dir`, with the secrets the deploy files expect.
fn check(dir: &Path, file: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .current_dir(dir)
        .args(["config", "check"])
        .arg(file)
        .env("DRIFTGATE_WEBHOOK_SECRET", "s")
        .env("DRIFTGATE_RUN_TOKEN", "deploy-test-token-5d2e8f")
        .env("KAFKA_SASL_PASSWORD", "p")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn every_yaml_and_json_file_parses_and_names_the_real_port_and_probes() {
    let documents = yaml_documents();
    assert!(documents.len() >= 6, "{} YAML documents", documents.len());
    for path in deploy_files() {
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    // Kubernetes: the container port, the probes and the Service.
    let deployment = kind(&documents, "Deployment")[0];
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], API_PORT);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let port_name = &container["ports"][0]["name"];
    assert_eq!(&container["livenessProbe"]["httpGet"]["port"], port_name);
    let service = kind(&documents, "Service")[0];
    assert_eq!(service["spec"]["ports"][0]["port"], API_PORT);
    assert_eq!(&service["spec"]["ports"][0]["targetPort"], port_name);
    // `kubectl apply -f deploy/k8s/` (not recursive) must not need the Prometheus Operator.
    for (path, document) in &documents {
        if document["kind"] == "ServiceMonitor" {
            assert!(
                path.starts_with("deploy/k8s/prometheus-operator"),
                "{path:?}"
            );
        }
    }
    let monitor = kind(&documents, "ServiceMonitor")[0];
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(&monitor["spec"]["endpoints"][0]["port"], port_name);
    // The mounted ConfigMaps are the ones defined.
    let maps: BTreeSet<&str> = kind(&documents, "ConfigMap")
        .iter()
        .map(|m| m["metadata"]["name"].as_str().unwrap())
        .collect();
    for volume in deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
    {
        if let Some(name) = volume["configMap"]["name"].as_str() {
            assert!(maps.contains(name), "{name} is not defined");
        }
    }

    // Compose: the published API port, the image's Dockerfile, the mounted config.
    let compose = documents
        .iter()
        .find(|(p, _)| p.ends_with("compose.yaml"))
        .map(|(_, d)| d)
        .unwrap();
    let driftgate = &compose["services"]["driftgate"];
    assert_eq!(
        driftgate["ports"][0],
        format!("{API_PORT}:{API_PORT}").as_str()
    );
    let dockerfile = Path::new("deploy").join(
        Path::new(driftgate["build"]["dockerfile"].as_str().unwrap())
            .file_name()
            .unwrap(),
    );
    let dockerfile = std::fs::read_to_string(dockerfile).unwrap();
    assert!(dockerfile.contains(&format!("EXPOSE {API_PORT}")));
    assert!(dockerfile.contains(&format!("DRIFTGATE__API__LISTEN=0.0.0.0:{API_PORT}")));
    assert!(dockerfile.contains("USER 10001"));
    let mount = driftgate["volumes"][0].as_str().unwrap();
    let (host, _) = mount.split_once(':').unwrap();
    assert!(Path::new("deploy").join(host).is_file(), "{mount}");
}

#[test]
fn the_shipped_configurations_pass_config_check() {
    // Compose: paths are relative to /app, which holds config/ like the repository root.
    check(Path::new("."), Path::new("deploy/compose/driftgate.toml"));
    check(
        Path::new("."),
        Path::new("deploy/compose/driftgate-shared.toml"),
    );

    // Kubernetes: lay the image out (config/ baked in) with the ConfigMaps mounted over it.
    let documents = yaml_documents();
    let image = tempfile::tempdir().unwrap();
    let config = image.path().join("config");
    for sub in ["baselines", "dags"] {
        copy_dir(&Path::new("config").join(sub), &config.join(sub));
    }
    let mounts = [
        ("driftgate-config", "config/service"),
        ("driftgate-policies", "config/policies"),
    ];
    for (name, dir) in mounts {
        let map = kind(&documents, "ConfigMap")
            .into_iter()
            .find(|m| m["metadata"]["name"] == name)
            .unwrap();
        std::fs::create_dir_all(image.path().join(dir)).unwrap();
        for (file, content) in map["data"].as_mapping().unwrap() {
            std::fs::write(
                image.path().join(dir).join(file.as_str().unwrap()),
                content.as_str().unwrap(),
            )
            .unwrap();
        }
    }
    let deployment = kind(&documents, "Deployment")[0];
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args[0], "run");
    assert_eq!(args[1], "--config");
    check(image.path(), Path::new(args[2].as_str().unwrap()));
    // With SASL turned on as its comments say, the password comes through properties_env from
    // the variable the Deployment sets from the Secret.
    let service = image.path().join(args[2].as_str().unwrap());
    let text = std::fs::read_to_string(&service).unwrap();
    let sasl: String = text
        .lines()
        .map(|l| match l.trim_start().strip_prefix("# ") {
            Some(rest) if rest.starts_with('"') || rest.starts_with("[kafka.properties_env]") => {
                rest.to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        sasl.contains("\"sasl.password\" = \"KAFKA_SASL_PASSWORD\""),
        "{sasl}"
    );
    std::fs::write(image.path().join("sasl.toml"), sasl).unwrap();
    check(image.path(), Path::new("sasl.toml"));
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let wired = env.as_sequence().unwrap().iter().any(|e| {
        e["name"] == "KAFKA_SASL_PASSWORD"
            && e["valueFrom"]["secretKeyRef"]["key"] == "kafka-sasl-password"
    });
    assert!(
        wired,
        "the Deployment passes the Secret's kafka-sasl-password"
    );
    // Each policy is defined once across the ConfigMaps.
    let mut names = BTreeSet::new();
    for map in kind(&documents, "ConfigMap") {
        for (_, content) in map["data"].as_mapping().unwrap() {
            for line in content.as_str().unwrap().lines() {
                if let Some(name) = line.trim().strip_prefix("name = ") {
                    if content.as_str().unwrap().contains("[[policies]]") {
                        assert!(names.insert(name.to_string()), "{name} is defined twice");
                    }
                }
            }
        }
    }

    // systemd: the command line is the real one.
    let unit = std::fs::read_to_string("deploy/systemd/driftgate.service").unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[1..4], ["run", "--config", "config/driftgate.toml"]);
    check(Path::new("."), Path::new(argv[3]));
}

#[test]
fn the_metrics_and_paths_the_deploy_files_use_are_served() {
    // Every metric the dashboard queries.
    let text = std::fs::read_to_string("deploy/grafana/driftgate-dashboard.json").unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("driftgate_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name)
                    .to_string();
                used.insert(family);
            }
        }
    }
    assert!(used.len() >= 10, "{used:?}");

    // A real driftgate (embedded broker) serving the API on a free port.
    let address = free_address();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .args(["run", "--config", "deploy/compose/driftgate.toml"])
        .env("DRIFTGATE_WEBHOOK_SECRET", "s")
        .env("DRIFTGATE_RUN_TOKEN", "deploy-test-token-5d2e8f")
        .env("DRIFTGATE__KAFKA__BOOTSTRAP_SERVERS", "embedded")
        .env("DRIFTGATE__API__LISTEN", &address)
        .env("DRIFTGATE__STORE__PATH", dir.path().join("driftgate.db"))
        .env("DRIFTGATE__RUNS__DIR", dir.path().join("runs"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(&address).is_ok() && http_get(&address, "/readyz").0 == 200
        {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "driftgate exited");
        assert!(Instant::now() < deadline, "driftgate never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_get(&address, "/healthz").0, 200);
    let (status, metrics) = http_get(&address, "/metrics");
    assert_eq!(status, 200);
    let served: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for family in &used {
        assert!(
            served.contains(family.as_str()),
            "{family} is not served: {served:?}"
        );
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// Issue 14: the compose receiver really verifies signatures: driftgate's own signature is
/// accepted, a wrong secret, a changed body and an old timestamp are refused with 401, and the
/// compose file gives it driftgate's secret.
#[test]
fn the_compose_webhook_receiver_verifies_signatures() {
    let documents = yaml_documents();
    let compose = documents
        .iter()
        .find(|(p, _)| p.ends_with("compose.yaml"))
        .map(|(_, d)| d)
        .unwrap();
    let secret = compose["services"]["driftgate"]["environment"]["DRIFTGATE_WEBHOOK_SECRET"]
        .as_str()
        .unwrap();
    assert_eq!(
        compose["services"]["webhook"]["environment"]["DRIFTGATE_WEBHOOK_SECRET"].as_str(),
        Some(secret)
    );
    let address = free_address();
    let port = address.rsplit(':').next().unwrap();
    let mut receiver = Killed(
        Command::new("python3")
            .args(["-u", "deploy/compose/webhook_receiver.py"])
            .env("DRIFTGATE_WEBHOOK_SECRET", secret)
            .env("PORT", port)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the receiver"),
    );
    // It prints a line once it listens.
    let mut stdout = std::io::BufReader::new(receiver.0.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = r#"{"version":1,"kind":"drift_detected","id":"a-1"}"#;
    let post = |timestamp: u64, signature: &str, body: &str| {
        let headers = [
            format!("X-Driftgate-Timestamp: {timestamp}"),
            format!("X-Driftgate-Signature: {signature}"),
            "Content-Type: application/json".to_string(),
        ];
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        http_with(&address, "POST", "/", &headers, body).0
    };
    let signed = driftgate::alert::deliver::signature(secret, now, body);
    assert_eq!(post(now, &signed, body), 200);
    let wrong = driftgate::alert::deliver::signature("not-the-secret", now, body);
    assert_eq!(post(now, &wrong, body), 401);
    assert_eq!(post(now, &signed, r#"{"version":1}"#), 401);
    let old = now - 3600;
    let stale = driftgate::alert::deliver::signature(secret, old, body);
    assert_eq!(post(old, &stale, body), 401);
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 14: the example DAGs' manual runs in Kubernetes train on a file that exists. The image
/// build writes the demo's training set (`demo --write-training`, which never replaces a file),
/// the image ships it under config/training/, and an initContainer seeds the path the DAGs read.
#[test]
fn kubernetes_manual_runs_have_their_training_file() {
    let dags = std::fs::read_to_string("config/dags/retrain.toml").unwrap();
    assert!(dags.contains("\"--training\", \"var/training/payments.jsonl\""));
    let dockerfile = std::fs::read_to_string("deploy/Dockerfile").unwrap();
    assert!(dockerfile.contains("driftgate demo --write-training /src/training/payments.jsonl"));
    assert!(dockerfile.contains("COPY --from=build /src/training ./config/training"));
    let documents = yaml_documents();
    let deployment = kind(&documents, "Deployment")[0];
    let init = &deployment["spec"]["template"]["spec"]["initContainers"][0];
    let script = init["command"][2].as_str().unwrap();
    assert!(
        script.contains("cp config/training/payments.jsonl var/training/payments.jsonl"),
        "{script}"
    );
    assert_eq!(init["volumeMounts"][0]["mountPath"], "/app/var");

    // The command the image build runs: it writes the set, and refuses to replace a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("training/payments.jsonl");
    let write = || {
        Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .args(["demo", "--write-training"])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = write();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 20_000);
    let again = write();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to replace"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn issue_16_the_shared_statefulset_runs_the_deployments_container_on_a_shared_store() {
    let documents = yaml_documents();
    let deployment = kind(&documents, "Deployment")[0];
    let set = kind(&documents, "StatefulSet")[0];
    assert!(set["spec"]["replicas"].as_u64().unwrap() >= 2);
    let pod = |d: &serde_yaml::Value| d["spec"]["template"]["spec"].clone();
    let (single, shared) = (pod(deployment), pod(set));
    let (one, many) = (&single["containers"][0], &shared["containers"][0]);
    for key in [
        "image",
        "args",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "volumeMounts",
    ] {
        assert_eq!(one[key], many[key], "{key} differs from the Deployment's");
    }
    // The store's URL comes from a key the Secret has; var/ is shared by every pod.
    let url = many["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "DRIFTGATE__STORE__URL")
        .expect("the store URL is set");
    let key = url["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
    let secret = kind(&documents, "Secret")[0];
    let stored = secret["stringData"][key].as_str().unwrap();
    assert!(stored.starts_with("postgres://"), "{stored}");
    let claim = shared["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "var")
        .unwrap()["persistentVolumeClaim"]["claimName"]
        .clone();
    let volume = kind(&documents, "PersistentVolumeClaim")
        .into_iter()
        .find(|c| c["metadata"]["name"] == claim)
        .expect("the claim is defined");
    assert_eq!(volume["spec"]["accessModes"][0], "ReadWriteMany");
    let governing = set["spec"]["serviceName"].as_str().unwrap();
    assert!(kind(&documents, "Service")
        .iter()
        .any(|s| s["metadata"]["name"] == governing && s["spec"]["clusterIP"] == "None"));
}
