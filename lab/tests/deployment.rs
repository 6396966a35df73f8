//! docker-compose.yml and the Dockerfile agree with the code, checked without a Docker engine:
//! every service runs a binary the image holds, with flags that binary accepts (its real
//! `--help`, and the whole command line parsed by the real binary); published ports, health
//! checks and the addresses services dial match the `--listen`/`--metrics` flags they reach;
//! volumes, mounted paths and dependencies are declared. As root, the compose commands are then
//! run for real (addresses and paths mapped to local ones) until their own health checks pass.
//!
//! It must not build images or start containers: none of that exists on the test machines.

#[path = "support/workspace.rs"]
mod workspace;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_yaml::Value;
use workspace::{bin, free_port, is_root, repo};

/// The services a deployment needs, by name.
const SERVICES: [&str; 4] = ["clickhouse", "relay", "ui-server", "node-agent"];
/// Where the runtime image puts executables (on `PATH`).
const BIN_DIR: &str = "/usr/local/bin";
/// Flags whose value is an address the service itself listens on.
const LISTEN_FLAGS: [&str; 2] = ["--listen", "--metrics"];
/// The HTTP endpoint each health-checked listener serves: (binary, flag, path).
const HTTP_ENDPOINTS: [(&str, &str, &str); 2] = [
    ("node-agent", "--metrics", "/metrics"),
    ("ui-server", "--listen", "/healthz"),
];
/// Third-party images: (repository, ports the server listens on, its health endpoint, the
/// health-check executables it ships). The official ClickHouse image serves HTTP on 8123 and
/// installs wget (its Dockerfile), which is what its health check may use.
const IMAGES: [(&str, &[u16], &str, &[&str]); 1] = [(
    "clickhouse/clickhouse-server",
    &[8123, 9000, 9009],
    "/ping",
    &["wget", "clickhouse-client"],
)];

// ---------------------------------------------------------------------------------------------
// The files, parsed.

/// docker-compose.yml with every `${VAR:-default}` replaced by its default, so the file is
/// checked as `docker compose up` runs it with no settings.
fn compose() -> Value {
    let path = repo().join("docker-compose.yml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc: Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("docker-compose.yml is not valid YAML: {e}"));
    interpolate_all(&mut doc);
    doc
}

fn interpolate_all(value: &mut Value) {
    match value {
        Value::String(s) => *s = interpolate(s),
        Value::Sequence(items) => items.iter_mut().for_each(interpolate_all),
        Value::Mapping(map) => map.iter_mut().for_each(|(_, v)| interpolate_all(v)),
        _ => {}
    }
}

/// Compose's interpolation with an empty environment: `$$` is `$`, `${VAR:-x}` and `${VAR-x}`
/// are `x`; a variable without a default would make the file unusable without a .env file.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .unwrap_or_else(|| panic!("docker-compose.yml: unclosed ${{ in {text:?}"));
            let inner = &body[..end];
            let default = inner
                .split_once(":-")
                .or_else(|| inner.split_once('-'))
                .map(|(_, d)| d)
                .unwrap_or_else(|| {
                    panic!("docker-compose.yml: ${{{inner}}} has no default, so `docker compose up` fails without a .env file")
                });
            out.push_str(default);
            rest = &body[end + 1..];
        } else {
            panic!("docker-compose.yml: write ${{VAR:-default}}, not a bare $VAR, in {text:?}");
        }
    }
    out.push_str(rest);
    out
}

/// One build stage of the Dockerfile.
#[derive(Debug)]
struct Stage {
    name: String,
    /// (instruction in upper case, the rest of the logical line)
    instructions: Vec<(String, String)>,
}

/// `COPY [--from=STAGE] SRC... DEST`.
#[derive(Debug)]
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

fn dockerfile() -> Vec<Stage> {
    let path = repo().join("Dockerfile");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut logical: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let rest = rest.trim().to_owned();
        if keyword == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                _ => format!("#{}", stages.len()),
            };
            stages.push(Stage {
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, rest));
        }
    }
    assert!(!stages.is_empty(), "the Dockerfile has no FROM");
    stages
}

impl Stage {
    fn copies(&self) -> Vec<Copy> {
        self.instructions
            .iter()
            .filter(|(k, _)| k == "COPY")
            .map(|(_, rest)| {
                assert!(
                    !rest.starts_with('['),
                    "Dockerfile: write COPY in its plain form, not JSON: COPY {rest}"
                );
                let mut from = None;
                let mut words = Vec::new();
                for word in rest.split_whitespace() {
                    if let Some(stage) = word.strip_prefix("--from=") {
                        from = Some(stage.to_owned());
                    } else if !word.starts_with("--") {
                        words.push(word.to_owned());
                    }
                }
                let dest = words.pop().expect("COPY names a destination");
                Copy {
                    from,
                    sources: words,
                    dest,
                }
            })
            .collect()
    }

    fn runs(&self) -> String {
        self.instructions
            .iter()
            .filter(|(k, _)| k == "RUN")
            .map(|(_, rest)| rest.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn stage<'a>(stages: &'a [Stage], name: &str) -> &'a Stage {
    stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("the Dockerfile has no stage {name:?}"))
}

/// The executables a stage puts on PATH, by name.
fn binaries_in(stage: &Stage) -> BTreeSet<String> {
    stage
        .copies()
        .into_iter()
        .filter(|c| c.dest.trim_end_matches('/') == BIN_DIR)
        .flat_map(|c| c.sources)
        .map(|s| s.rsplit('/').next().unwrap_or(&s).to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Services.

#[derive(Debug)]
struct Service {
    name: String,
    def: Value,
}

/// One volume of a service: `source` is None for an anonymous volume.
#[derive(Debug)]
struct Mount {
    source: Option<String>,
    target: String,
}

impl Service {
    fn all(doc: &Value) -> Vec<Service> {
        doc["services"]
            .as_mapping()
            .expect("docker-compose.yml has a services: mapping")
            .iter()
            .map(|(k, v)| Service {
                name: k.as_str().expect("service names are strings").to_owned(),
                def: v.clone(),
            })
            .collect()
    }

    /// The command as a list (the shell-string form is refused: its quoting is ambiguous).
    fn command(&self) -> Option<Vec<String>> {
        let command = self.def.get("command")?;
        let items = command.as_sequence().unwrap_or_else(|| {
            panic!(
                "service {}: write command: as a list, not {command:?}",
                self.name
            )
        });
        Some(
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
                })
                .collect(),
        )
    }

    fn flag(&self, flag: &str) -> Option<String> {
        let command = self.command()?;
        flag_value(&command, flag)
    }

    fn host_network(&self) -> bool {
        self.def["network_mode"].as_str() == Some("host")
    }

    /// The ports this service's process listens on.
    fn listen_ports(&self) -> Vec<u16> {
        if let Some(image) = self.third_party_image() {
            return image.1.to_vec();
        }
        LISTEN_FLAGS
            .iter()
            .filter_map(|f| self.flag(f))
            .filter_map(|addr| split_addr(&addr).map(|(_, port)| port))
            .collect()
    }

    fn third_party_image(
        &self,
    ) -> Option<&'static (
        &'static str,
        &'static [u16],
        &'static str,
        &'static [&'static str],
    )> {
        let image = self.def["image"].as_str()?;
        if self.def.get("build").is_some() {
            return None;
        }
        IMAGES
            .iter()
            .find(|(repo, ..)| image.split(':').next() == Some(*repo))
    }

    fn mounts(&self) -> Vec<Mount> {
        let Some(volumes) = self.def["volumes"].as_sequence() else {
            return Vec::new();
        };
        volumes
            .iter()
            .map(|v| match v {
                Value::String(short) => {
                    let parts: Vec<&str> = short.split(':').collect();
                    match parts.as_slice() {
                        [target] => Mount {
                            source: None,
                            target: (*target).to_owned(),
                        },
                        [source, target, ..] => Mount {
                            source: Some((*source).to_owned()),
                            target: (*target).to_owned(),
                        },
                        [] => unreachable!(),
                    }
                }
                long => Mount {
                    source: long["source"].as_str().map(str::to_owned),
                    target: long["target"]
                        .as_str()
                        .unwrap_or_else(|| panic!("service {}: a volume without target", self.name))
                        .to_owned(),
                },
            })
            .collect()
    }

    /// The health check's command, without the leading `CMD`.
    fn healthcheck(&self) -> Option<Vec<String>> {
        let test = self.def.get("healthcheck")?.get("test")?;
        let items: Vec<String> = test
            .as_sequence()
            .unwrap_or_else(|| {
                panic!(
                    "service {}: write healthcheck.test as [\"CMD\", ...], not {test:?}",
                    self.name
                )
            })
            .iter()
            .map(|v| {
                v.as_str()
                    .expect("health check words are strings")
                    .to_owned()
            })
            .collect();
        assert_eq!(
            items.first().map(String::as_str),
            Some("CMD"),
            "service {}: the health check should exec a command ([\"CMD\", ...]) so it needs no shell",
            self.name
        );
        Some(items[1..].to_vec())
    }
}

fn flag_value(command: &[String], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    command.iter().enumerate().find_map(|(i, arg)| {
        if arg == flag {
            command.get(i + 1).cloned()
        } else {
            arg.strip_prefix(&prefix).map(str::to_owned)
        }
    })
}

/// `HOST:PORT` -> (HOST, PORT).
fn split_addr(value: &str) -> Option<(String, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    if host.is_empty() || host.contains('/') || host.contains(':') {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

/// Addresses a command dials: `HOST:PORT` values of flags other than the listening ones, and
/// the host of `scheme://HOST:PORT/...` URLs.
fn dialed(command: &[String]) -> Vec<(String, String, u16)> {
    let mut out = Vec::new();
    for (i, arg) in command.iter().enumerate().skip(1) {
        if arg.starts_with("--") {
            continue;
        }
        let flag = command[i - 1].as_str();
        if LISTEN_FLAGS.contains(&flag) {
            continue;
        }
        let authority = match arg.split_once("://") {
            Some((_, rest)) => rest.split('/').next().unwrap_or_default(),
            None => arg.as_str(),
        };
        for part in authority.split(',') {
            if let Some((host, port)) = split_addr(part) {
                out.push((flag.to_owned(), host, port));
            }
        }
    }
    out
}

/// The flags a binary's help lists (`--name`), for `bin [subcommand]`.
fn help_flags(binary: &str, subcommand: Option<&str>) -> BTreeSet<String> {
    let mut command = Command::new(bin(binary));
    command.args(subcommand).arg("--help");
    let output = command.output().expect("running a workspace binary");
    assert!(
        output.status.success(),
        "{binary} --help failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut flags = BTreeSet::new();
    for (at, _) in text.match_indices("--") {
        let name: String = text[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if !name.is_empty() {
            flags.insert(format!("--{name}"));
        }
    }
    flags
}

fn vigil_services(doc: &Value, runtime: &BTreeSet<String>) -> Vec<Service> {
    Service::all(doc)
        .into_iter()
        .filter(|s| s.command().is_some_and(|c| runtime.contains(&c[0])))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The static checks.

#[test]
fn every_service_runs_a_binary_of_the_image_with_flags_it_accepts() {
    let doc = compose();
    let stages = dockerfile();
    let services = Service::all(&doc);
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    for wanted in SERVICES {
        assert!(
            names.contains(wanted),
            "docker-compose.yml has no {wanted} service, so `docker compose up` deploys no {wanted}"
        );
    }

    for service in &services {
        let name = &service.name;
        assert!(
            matches!(
                service.def["restart"].as_str(),
                Some("unless-stopped" | "always" | "on-failure")
            ),
            "service {name}: no restart policy, so it stays down after a crash or a reboot"
        );
        let Some(build) = service.def.get("build") else {
            let image = service.def["image"]
                .as_str()
                .unwrap_or_else(|| panic!("service {name} has neither build: nor image:"));
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
            assert!(
                tag != "latest" && tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
                "service {name}: image {image} is not pinned to a version, so an upgrade can happen on any pull"
            );
            assert!(
                service.third_party_image().is_some(),
                "service {name}: image {image} is not one this test knows the ports of"
            );
            continue;
        };
        assert_eq!(
            build["context"].as_str(),
            Some("."),
            "service {name}: the build context should be the repository root"
        );
        let dockerfile_name = build["dockerfile"].as_str().unwrap_or("Dockerfile");
        assert!(
            repo().join(dockerfile_name).is_file(),
            "service {name}: builds from {dockerfile_name}, which does not exist"
        );
        let target = build["target"].as_str().unwrap_or_else(|| {
            panic!("service {name}: build.target is unset, so the image is the Dockerfile's last stage by accident")
        });
        let runtime = stage(&stages, target);

        // The binary is put on PATH by the target stage, and built by the stage it comes from.
        let command = service.command().unwrap_or_else(|| {
            panic!("service {name}: no command: (the image runs nothing useful by default)")
        });
        let binary = &command[0];
        let in_image = binaries_in(runtime);
        assert!(
            in_image.contains(binary),
            "service {name} runs {binary}, but the Dockerfile's {target} stage copies only {in_image:?} into {BIN_DIR}"
        );
        for copy in runtime.copies() {
            let Some(from) = &copy.from else { continue };
            if copy.dest.trim_end_matches('/') != BIN_DIR {
                continue;
            }
            let runs = stage(&stages, from).runs();
            for source in &copy.sources {
                let file = source.rsplit('/').next().unwrap_or(source);
                assert!(
                    runs.contains("cargo build --release")
                        && runs.contains(&format!("target/release/{file}")),
                    "the Dockerfile copies {source} from stage {from}, which does not build it (cargo build --release, target/release/{file})"
                );
            }
        }

        // Every flag is one the binary lists, and the whole command line parses: run with
        // `--help` appended, the binary validates every argument before printing its help.
        let subcommand = command
            .get(1)
            .filter(|w| !w.starts_with('-'))
            .map(String::as_str);
        let known = help_flags(binary, subcommand);
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            assert!(
                known.contains(flag),
                "service {name}: `{binary} {flag}` is not a flag of {binary} (its --help lists {known:?}); the container would exit at once"
            );
        }
        let output = Command::new(bin(binary))
            .args(&command[1..])
            .arg("--help")
            .output()
            .expect("running a workspace binary");
        assert!(
            output.status.success(),
            "service {name}: {binary} refuses the compose command line {:?}: {}",
            &command[1..],
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // The dashboard the ui-server serves is the one the image holds.
    let ui = services.iter().find(|s| s.name == "ui-server").unwrap();
    let web = ui
        .flag("--web")
        .expect("the ui-server's command names its --web folder");
    let runtime = stage(&stages, ui.def["build"]["target"].as_str().unwrap());
    let copy = runtime
        .copies()
        .into_iter()
        .find(|c| c.dest.trim_end_matches('/') == web.trim_end_matches('/'))
        .unwrap_or_else(|| panic!("ui-server serves --web {web}, which the Dockerfile copies nothing into: the dashboard would be empty"));
    let from = copy.from.expect("the dashboard comes from the web stage");
    let web_stage = stage(&stages, &from);
    let workdir = web_stage
        .instructions
        .iter()
        .rev()
        .find(|(k, _)| k == "WORKDIR")
        .map(|(_, d)| d.clone())
        .unwrap_or_default();
    assert!(
        web_stage.runs().contains("npm run build")
            && copy.sources == [format!("{}/dist", workdir.trim_end_matches('/'))],
        "the dashboard is copied from {:?} of stage {from}, which is not where `npm run build` in {workdir} writes (dist/)",
        copy.sources
    );
}

#[test]
fn ports_health_checks_and_addresses_match_the_commands() {
    let doc = compose();
    let services = Service::all(&doc);
    let by_name: BTreeMap<&str, &Service> = services.iter().map(|s| (s.name.as_str(), s)).collect();

    let agent = by_name["node-agent"];
    assert!(
        agent.host_network()
            && agent.def["privileged"].as_bool() == Some(true)
            && agent.def["pid"].as_str() == Some("host"),
        "the node-agent needs network_mode: host (the host's interfaces), privileged: true (eBPF) and pid: host"
    );

    for service in &services {
        let name = service.name.as_str();
        let ports = service.listen_ports();

        // Published ports reach a listener of the service, bound where the host can reach it.
        if let Some(published) = service.def["ports"].as_sequence() {
            assert!(
                !service.host_network(),
                "service {name}: ports: is meaningless with network_mode: host"
            );
            for entry in published {
                let entry = entry.as_str().expect("write ports: entries as strings");
                let container: u16 = entry
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("service {name}: cannot read port {entry:?}"));
                assert!(
                    ports.contains(&container),
                    "service {name} publishes {entry}, but its command listens on {ports:?} (--listen/--metrics): the published port leads nowhere"
                );
            }
        }
        // A listener inside a container, or one other hosts must reach, binds every address.
        for flag in LISTEN_FLAGS {
            if let Some(addr) = service.flag(flag) {
                let (host, _) = split_addr(&addr)
                    .unwrap_or_else(|| panic!("service {name}: {flag} {addr} is not HOST:PORT"));
                assert!(
                    host == "0.0.0.0" || host == "[::]",
                    "service {name}: {flag} {addr} listens on {host} only, which nothing outside the container (or host) can reach"
                );
            }
        }

        // Health checks ask a real endpoint on a port the service listens on.
        let check = service.healthcheck().unwrap_or_else(|| {
            panic!("service {name} has no health check, so depends_on cannot wait for it")
        });
        let executable = check[0].as_str();
        match executable {
            "curl" | "wget" => {
                if let Some(image) = service.third_party_image() {
                    assert!(
                        image.3.contains(&executable),
                        "service {name}: the health check runs {executable}, which image {} does not ship",
                        image.0
                    );
                } else {
                    let stages = dockerfile();
                    let target = service.def["build"]["target"].as_str().unwrap();
                    assert!(
                        stage(&stages, target).runs().contains(executable),
                        "service {name}: the health check runs {executable}, which the Dockerfile's {target} stage does not install"
                    );
                }
                let url = check
                    .iter()
                    .find(|w| w.starts_with("http://"))
                    .unwrap_or_else(|| {
                        panic!("service {name}: the health check names no http:// URL")
                    });
                let rest = url.trim_start_matches("http://");
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let (host, port) = split_addr(authority).unwrap_or_else(|| {
                    panic!("service {name}: health check URL {url} has no HOST:PORT")
                });
                assert!(
                    host == "127.0.0.1" || host == "localhost",
                    "service {name}: the health check runs inside the container and should ask 127.0.0.1, not {host}"
                );
                let expected = match service.third_party_image() {
                    Some(image) => (image.1.contains(&port), image.2.to_owned()),
                    None => {
                        let binary = service.command().unwrap()[0].clone();
                        let (flag, endpoint) = HTTP_ENDPOINTS
                            .iter()
                            .find(|(b, ..)| *b == binary)
                            .map(|(_, f, p)| (*f, *p))
                            .unwrap_or_else(|| panic!("service {name}: {binary} serves no HTTP health endpoint this test knows"));
                        let listens = service
                            .flag(flag)
                            .and_then(|a| split_addr(&a))
                            .map(|(_, p)| p);
                        (listens == Some(port), endpoint.to_owned())
                    }
                };
                assert!(
                    expected.0,
                    "service {name}: the health check asks port {port}, where the service does not listen ({ports:?})"
                );
                assert_eq!(
                    path, expected.1,
                    "service {name}: the health check asks {path}, but the endpoint is {}",
                    expected.1
                );
            }
            binary => {
                let stages = dockerfile();
                let target = service.def["build"]["target"].as_str().unwrap_or("runtime");
                let in_image = binaries_in(stage(&stages, target));
                assert!(
                    in_image.contains(binary),
                    "service {name}: the health check runs {binary}, which the image does not hold ({in_image:?})"
                );
                let server = flag_value(&check, "--server").unwrap_or_else(|| {
                    panic!("service {name}: the health check {check:?} names no --server")
                });
                let (host, port) = split_addr(&server).unwrap();
                assert!(
                    host == "127.0.0.1" && ports.contains(&port),
                    "service {name}: the health check asks {server}, but the service listens on {ports:?}"
                );
                let subcommand = check
                    .get(1)
                    .filter(|w| !w.starts_with('-'))
                    .map(String::as_str);
                let known = help_flags(binary, subcommand);
                for flag in check.iter().filter(|a| a.starts_with("--")) {
                    assert!(
                        known.contains(flag.as_str()),
                        "service {name}: the health check passes {flag}, which `{binary}` does not have"
                    );
                }
            }
        }

        // Every address dialed leads to a listener: a service by name, or a host-network
        // service through the host's gateway.
        let Some(command) = service.command() else {
            continue;
        };
        for (flag, host, port) in dialed(&command) {
            if let Some(target) = by_name.get(host.as_str()) {
                assert!(
                    !target.host_network(),
                    "service {name}: {flag} dials {host}:{port}, but {host} runs on the host network, which has no such name"
                );
                assert!(
                    target.listen_ports().contains(&port),
                    "service {name}: {flag} dials {host}:{port}, but {host} listens on {:?}",
                    target.listen_ports()
                );
                continue;
            }
            let extra: Vec<String> = service.def["extra_hosts"]
                .as_sequence()
                .map(|s| {
                    s.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                extra.iter().any(|e| *e == format!("{host}:host-gateway")
                    || *e == format!("{host}=host-gateway")),
                "service {name}: {flag} dials {host}:{port}, which is neither a service nor mapped to the host (extra_hosts: {host}:host-gateway)"
            );
            let on_host: Vec<&Service> = services
                .iter()
                .filter(|s| s.host_network() && s.listen_ports().contains(&port))
                .collect();
            assert!(
                !on_host.is_empty(),
                "service {name}: {flag} dials the host's port {port}, where no host-network service listens"
            );
        }
    }
}

#[test]
fn volumes_paths_and_dependencies_are_declared() {
    let doc = compose();
    let stages = dockerfile();
    let services = Service::all(&doc);
    let declared: BTreeSet<String> = doc["volumes"]
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut used = BTreeSet::new();

    for service in &services {
        let name = &service.name;
        let mounts = service.mounts();
        for mount in &mounts {
            let Some(source) = &mount.source else {
                continue;
            };
            if !source.starts_with(['/', '.', '~']) {
                assert!(
                    declared.contains(source),
                    "service {name} mounts volume {source}, which the top-level volumes: does not declare: `docker compose up` refuses the file"
                );
                used.insert(source.clone());
            }
        }

        // Absolute paths in the command exist in the container: mounted, or put there by the image.
        if let Some(command) = service.command() {
            let target = service.def["build"]["target"].as_str().unwrap_or("runtime");
            let copied: Vec<String> = stage(&stages, target)
                .copies()
                .into_iter()
                .map(|c| c.dest)
                .collect();
            for (i, arg) in command.iter().enumerate().skip(1) {
                if !arg.starts_with('/') {
                    continue;
                }
                let under = |root: &str| {
                    let root = root.trim_end_matches('/');
                    arg == root || arg.starts_with(&format!("{root}/"))
                };
                assert!(
                    mounts.iter().any(|m| under(&m.target)) || copied.iter().any(|d| under(d)),
                    "service {name}: {} {arg} is neither mounted nor in the image, so the container sees an empty folder",
                    command[i - 1]
                );
            }
        }

        // Dependencies exist, and wait for health only where there is a health check.
        if let Some(deps) = service.def.get("depends_on") {
            let deps: Vec<(String, Option<String>)> = match deps {
                Value::Sequence(list) => list
                    .iter()
                    .map(|d| (d.as_str().unwrap().to_owned(), None))
                    .collect(),
                Value::Mapping(map) => map
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap().to_owned(),
                            v["condition"].as_str().map(str::to_owned),
                        )
                    })
                    .collect(),
                other => {
                    panic!("service {name}: depends_on: {other:?} is neither a list nor a map")
                }
            };
            for (dep, condition) in deps {
                let target = services.iter().find(|s| s.name == dep).unwrap_or_else(|| {
                    panic!("service {name} depends on {dep}, which is not a service")
                });
                if condition.as_deref() == Some("service_healthy") {
                    assert!(
                        target.def.get("healthcheck").is_some(),
                        "service {name} waits for {dep} to be healthy, but {dep} has no health check"
                    );
                }
            }
        }
    }
    assert_eq!(
        used, declared,
        "the top-level volumes: should be exactly the named volumes the services mount"
    );

    // The ui-server lists the policies the node-agent enforces: both see one state folder.
    let source_of = |service: &str| {
        let service = services.iter().find(|s| s.name == service).unwrap();
        let state = service.flag("--state").unwrap();
        service
            .mounts()
            .into_iter()
            .find(|m| m.target == state)
            .and_then(|m| m.source)
            .unwrap_or_else(|| panic!("service {}: --state {state} is not mounted", service.name))
    };
    assert_eq!(
        source_of("ui-server"),
        source_of("node-agent"),
        "the ui-server and the node-agent should mount the same state folder, or the dashboard lists other policies than the ones enforced"
    );
}

// ---------------------------------------------------------------------------------------------
// The compose commands, run for real.

/// The compose services started as local processes; stopped (and the agent's pinned maps
/// removed) when dropped, even after a failed assertion.
struct Running {
    root: PathBuf,
    bpffs: PathBuf,
    children: Vec<(String, Child)>,
    uninstall: Option<Vec<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        }
        for (_, child) in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(args) = &self.uninstall {
            let _ = Command::new(bin("node-agent"))
                .args(args)
                .arg("--uninstall")
                .output();
        }
        let _ = fs::remove_dir_all(&self.bpffs);
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.root.display());
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// Maps the compose file's addresses and container paths to local ones.
struct Mapping {
    ports: BTreeMap<u16, u16>,
    paths: Vec<(String, PathBuf)>,
    sqlite: PathBuf,
}

impl Mapping {
    fn arg(&self, arg: &str) -> String {
        if arg.starts_with("clickhouse://") {
            return format!("sqlite://{}", self.sqlite.display());
        }
        if let Some((scheme, rest)) = arg.split_once("://") {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            return format!("{scheme}://{}{path}", self.arg(authority));
        }
        if !arg.starts_with("--") {
            let parts: Vec<String> = arg
                .split(',')
                .map(|part| match split_addr(part) {
                    Some((_, port)) if self.ports.contains_key(&port) => {
                        format!("127.0.0.1:{}", self.ports[&port])
                    }
                    _ => part.to_owned(),
                })
                .collect();
            let joined = parts.join(",");
            if joined != arg {
                return joined;
            }
        }
        for (root, local) in &self.paths {
            if arg == root {
                return local.display().to_string();
            }
            if let Some(rest) = arg.strip_prefix(&format!("{root}/")) {
                return local.join(rest).display().to_string();
            }
        }
        arg.to_owned()
    }

    fn command(&self, command: &[String]) -> Vec<String> {
        command.iter().map(|a| self.arg(a)).collect()
    }
}

#[test]
fn compose_commands_start_and_their_health_checks_pass() {
    assert!(
        is_root(),
        "this test runs the node-agent (eBPF, bpffs) and must run as root"
    );
    let doc = compose();
    let stages = dockerfile();
    let runtime = binaries_in(stage(&stages, "runtime"));
    let services = vigil_services(&doc, &runtime);

    let root = std::env::temp_dir().join(format!("vigil-compose-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let state = root.join("state");
    for dir in ["policies", "endpoints"] {
        fs::create_dir_all(state.join(dir)).expect("creating the state folder");
    }
    let web = root.join("web");
    fs::create_dir_all(&web).unwrap();
    fs::write(
        web.join("index.html"),
        "<!doctype html><title>Vigil</title>",
    )
    .unwrap();
    let bpffs = PathBuf::from(format!("/sys/fs/bpf/vigil-compose-{}", std::process::id()));

    let mut ports = BTreeMap::new();
    for service in &services {
        let command = service.command().unwrap();
        let mut all: Vec<u16> = dialed(&command).into_iter().map(|(_, _, p)| p).collect();
        all.extend(service.listen_ports());
        for port in all {
            ports.entry(port).or_insert_with(free_port);
        }
    }
    let mut paths: Vec<(String, PathBuf)> = Vec::new();
    for service in &services {
        for mount in service.mounts() {
            let local = match mount.target.as_str() {
                "/sys/fs/bpf" => bpffs.clone(),
                "/run/netns" => PathBuf::from("/run/netns"),
                _ => state.clone(),
            };
            paths.push((mount.target, local));
        }
    }
    let web_dest = services
        .iter()
        .find_map(|s| s.flag("--web"))
        .expect("the ui-server names its --web folder");
    paths.push((web_dest, web.clone()));
    let mapping = Mapping {
        ports,
        paths,
        sqlite: root.join("flows.db"),
    };

    let mut running = Running {
        root: root.clone(),
        bpffs: bpffs.clone(),
        children: Vec::new(),
        uninstall: None,
    };

    // Start in dependency order; each must pass its own health check before the next starts.
    let mut order: Vec<&Service> = Vec::new();
    while order.len() < services.len() {
        let before = order.len();
        for service in &services {
            if order.iter().any(|s| s.name == service.name) {
                continue;
            }
            let deps: Vec<String> = service.def["depends_on"]
                .as_mapping()
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if deps.iter().all(|d| {
                order.iter().any(|s| &s.name == d) || !services.iter().any(|s| &s.name == d)
            }) {
                order.push(service);
            }
        }
        assert!(order.len() > before, "depends_on forms a cycle");
    }

    for service in order {
        let command = mapping.command(&service.command().unwrap());
        let log_path = root.join(format!("{}.log", service.name));
        let log = fs::File::create(&log_path).unwrap();
        let child = Command::new(bin(&command[0]))
            .args(&command[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", command[0]));
        if command[0] == "node-agent" {
            let mut uninstall = Vec::new();
            for flag in ["--node", "--state", "--bpffs"] {
                if let Some(value) = flag_value(&command, flag) {
                    uninstall.extend([flag.to_owned(), value]);
                }
            }
            running.uninstall = Some(uninstall);
        }
        running.children.push((service.name.clone(), child));

        let check = mapping.command(&service.healthcheck().unwrap());
        let mut probe = match check[0].as_str() {
            "curl" | "wget" => {
                let url = check
                    .iter()
                    .find(|w| w.starts_with("http://"))
                    .unwrap()
                    .clone();
                let mut c = Command::new("curl");
                c.args(["-fsS", "-o", "/dev/null", "--max-time", "2", &url]);
                c
            }
            binary => {
                let mut c = Command::new(bin(binary));
                c.args(&check[1..]);
                c
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = probe.output().expect("running the health check");
            if output.status.success() {
                break;
            }
            let (_, child) = running.children.last_mut().unwrap();
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "service {}: the compose command {:?} {} and its health check {:?} fails: {}\n--- {} ---\n{}",
                    service.name,
                    command,
                    exited.map_or("keeps running".to_owned(), |s| format!("exited ({s})")),
                    check,
                    String::from_utf8_lossy(&output.stderr).trim(),
                    log_path.display(),
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // The relay's --agents leads to the agent: it reports the node connected.
    let relay = services.iter().find(|s| s.name == "relay").unwrap();
    let server = mapping.arg(&relay.flag("--listen").unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = Command::new(bin("observe"))
            .args(["status", "--server", &server])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.contains("Connected Nodes: 1/1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay started with the compose command does not reach the node-agent through --agents:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(running);
    assert!(
        !Path::new(&bpffs).exists(),
        "the agent's pinned maps under {} were not removed",
        bpffs.display()
    );
}
