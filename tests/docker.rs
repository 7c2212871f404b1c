//! Docker run for real: the test starts its own engine (Debian's dockerd, vfs storage, no
//! iptables, no bridge), builds the runtime image around the binary cargo built and the
//! player, and runs the compose files with every container on host networking, on loopback.
//! ffmpeg reads the streams back from the containers; `docker-compose down` ends each run.
//!
//! No registry is reachable: the base image is debootstrapped (scripts/docker-base-image.sh)
//! and cached, keyed, under target/tmp/docker-test, with the engine's data root.

use crate::common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

/// One engine and one data root at a time: the tests of this file take turns.
static ENGINE: Mutex<()> = Mutex::new(());

const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const IMAGE: &str = "onair:docker-test";
const BASE_IMAGE: &str = "local/debian:bookworm";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Kept across runs: the engine's data root (images, build cache) and the base tarball.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("docker-test")
}

fn require_tools() {
    for tool in [
        DOCKERD,
        DOCKER,
        "/usr/bin/docker-compose",
        "/usr/sbin/debootstrap",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is required for this test (scripts/install-deps.sh installs it)"
        );
    }
    require("ffmpeg");
}

/// A docker engine of our own, stopped (with its containerd) when dropped.
struct Engine {
    child: Child,
    /// Short path: the engine's sockets live here (a unix socket path has 108 bytes).
    run_dir: TempDir,
    log: PathBuf,
}

impl Engine {
    fn start() -> Engine {
        let run_dir = TempDir::new("onair-dockerd");
        let data_root = cache_dir().join("root");
        std::fs::create_dir_all(&data_root).expect("create docker data root");
        let log = run_dir.path.join("dockerd.log");
        let child = Command::new(DOCKERD)
            .args(["--storage-driver=vfs", "--iptables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(&data_root)
            .arg("--exec-root")
            .arg(run_dir.path.join("exec"))
            .arg("--pidfile")
            .arg(run_dir.path.join("dockerd.pid"))
            .arg("--host")
            .arg(format!(
                "unix://{}",
                run_dir.path.join("docker.sock").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("dockerd log"))
            .spawn()
            .expect("spawn dockerd");
        let mut engine = Engine {
            child,
            run_dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                matches!(engine.child.try_wait(), Ok(None)),
                "dockerd exited at start: {}",
                engine.log_tail()
            );
            if engine.docker(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not up in 60 s: {}",
                engine.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        engine
    }

    fn host(&self) -> String {
        format!("unix://{}", self.run_dir.path.join("docker.sock").display())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A command run against this engine (docker, docker-compose, the base image script).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER", DOCKER)
            // The classic CLI talks to the engine's own BuildKit.
            .env("DOCKER_BUILDKIT", "1")
            .env("COMPOSE_DOCKER_CLI_BUILD", "1")
            .stdin(Stdio::null());
        c
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.command(DOCKER)
            .args(args)
            .output()
            .expect("run docker")
    }

    /// Runs `c`, failing the test with its output when it fails.
    fn must(&self, what: &str, c: &mut Command) -> Output {
        let started = Instant::now();
        let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}\n{}\ndockerd:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
        out
    }
}

impl Drop for Engine {
    /// SIGTERM: dockerd stops its containers and its containerd, then exits. It leaves its
    /// network namespace mounted in the exec root; unmounted so the temp dir can go.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("umount")
            .arg(self.run_dir.path.join("exec/netns/default"))
            .stderr(Stdio::null())
            .status();
    }
}

/// The base image (cached), then the runtime image around the binary cargo built for these
/// tests (debug info stripped) and the player built now, from a context of only those.
fn build_runtime_image(engine: &Engine) {
    prune(engine);
    engine.must(
        "base image",
        engine
            .command(repo().join("scripts/docker-base-image.sh"))
            .arg(cache_dir()),
    );
    let ctx = TempDir::new("onair-docker-context");
    std::fs::create_dir_all(ctx.path.join("docker")).expect("context dirs");
    std::fs::create_dir_all(ctx.path.join("prebuilt")).expect("context dirs");
    std::fs::copy(repo().join("Dockerfile"), ctx.path.join("Dockerfile")).expect("Dockerfile");
    std::fs::copy(
        repo().join("docker/onair.toml"),
        ctx.path.join("docker/onair.toml"),
    )
    .expect("docker/onair.toml");
    engine.must(
        "strip the binary",
        Command::new("objcopy")
            .arg("--strip-debug")
            .arg(env!("CARGO_BIN_EXE_onair"))
            .arg(ctx.path.join("prebuilt/onair")),
    );
    let player = repo().join("player-web");
    if !player.join("node_modules/.bin/vite").exists() {
        engine.must(
            "npm ci (player-web)",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&player),
        );
    }
    engine.must(
        "build the player",
        Command::new(player.join("node_modules/.bin/vite"))
            .arg("build")
            .arg("--outDir")
            .arg(ctx.path.join("prebuilt/player"))
            .arg("--emptyOutDir")
            .current_dir(&player)
            .stdin(Stdio::null()),
    );
    engine.must(
        "docker build (runtime-prebuilt)",
        engine
            .command(DOCKER)
            .args(["build", "--quiet", "--network", "host"])
            .args(["--target", "runtime-prebuilt"])
            .args(["--build-arg", &format!("RUNTIME_IMAGE={BASE_IMAGE}")])
            .args(["--tag", IMAGE])
            .arg(&ctx.path),
    );
}

/// Before and after a run: the test image and all build cache go, only the base and tools
/// images stay (vfs keeps a full copy of the file system per layer: a few runs' leftovers
/// are gigabytes). Rebuilding the runtime layers costs seconds.
fn prune(engine: &Engine) {
    let _ = engine.docker(&["image", "rm", "--force", IMAGE]);
    let _ = engine.docker(&["builder", "prune", "--all", "--force"]);
    let _ = engine.docker(&["image", "prune", "--force"]);
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A compose project on this engine; `down` when dropped if the test did not get to it.
struct Project<'a> {
    engine: &'a Engine,
    file: PathBuf,
    name: String,
    env: Vec<(String, String)>,
    up: bool,
}

impl<'a> Project<'a> {
    fn compose(&self) -> Command {
        let mut c = self.engine.command("docker-compose");
        c.arg("--file")
            .arg(&self.file)
            .args(["--project-name", &self.name]);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn up(&mut self) {
        self.up = true;
        self.engine
            .must("docker-compose up", self.compose().args(["up", "--detach"]));
    }

    fn logs(&self) -> String {
        let out = self
            .compose()
            .args(["logs", "--no-color", "--tail", "30"])
            .output()
            .expect("docker-compose logs");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn down(&mut self) {
        self.up = false;
        self.engine.must(
            "docker-compose down",
            self.compose().args(["down", "--timeout", "5"]),
        );
        let left = self.engine.docker(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.name),
        ]);
        assert!(
            left.stdout.is_empty(),
            "containers left after down: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        if self.up {
            eprintln!("compose logs:\n{}", self.logs());
            let _ = self.compose().args(["down", "--timeout", "5"]).output();
        }
    }
}

/// ffmpeg decodes `seconds` of `url` (from the containers) with no error; returns the frame
/// count it reports.
fn ffmpeg_reads(url: &str, seconds: u32) -> u64 {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-v",
            "error",
            "-rw_timeout",
            "15000000",
        ])
        .args(["-i", url, "-t", &seconds.to_string()])
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg {url}: {}: {stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count() as u64
}

/// Waits until `url` answers 200 (the stream is up in the containers).
fn wait_http_200(addr: SocketAddr, path: &str, limit: Duration) {
    wait_until(&format!("{path} on {addr}"), limit, || {
        std::net::TcpStream::connect(addr).is_ok_and(|mut s| {
            matches!(http_exchange(&mut s, "HEAD", path, &[], b""), Ok((200, _)))
        })
    });
}

/// YAML as JSON, by the PyYAML that docker-compose itself runs on.
fn yaml_to_json(yaml: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml)
        .expect("write yaml");
    let out = child.wait_with_output().expect("python3 output");
    assert!(out.status.success(), "YAML to JSON failed");
    out.stdout
}

/// The shipped docker-compose.yml made runnable here, so it is the file under test: compose
/// itself resolves it (`config`), then every service moves to host networking on loopback
/// ports (no `ports:`, no `build:`, the test image), the server gets the listen addresses on
/// its command line, and `onair:1935`/`onair:8080` in commands become those addresses.
/// Any service or reference this does not know fails the test, so the two cannot drift.
fn host_network_compose(engine: &Engine, rtmp: SocketAddr, http: SocketAddr) -> String {
    let resolved = engine.must(
        "docker-compose config",
        engine
            .command("docker-compose")
            .arg("--file")
            .arg(repo().join("docker-compose.yml"))
            .arg("config"),
    );
    let json = yaml_to_json(&resolved.stdout);
    let mut doc: serde_json::Value = serde_json::from_slice(&json).expect("compose json");
    let services = doc["services"]
        .as_object_mut()
        .expect("services in docker-compose.yml");
    let mut names: Vec<&String> = services.keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["onair", "pusher"],
        "docker-compose.yml's services changed: update host_network_compose"
    );
    for (name, service) in services.iter_mut() {
        let s = service.as_object_mut().expect("service");
        s.remove("ports");
        s.remove("build");
        s.insert("image".into(), IMAGE.into());
        s.insert("network_mode".into(), "host".into());
        let command = s
            .get_mut("command")
            .and_then(|c| c.as_array_mut())
            .unwrap_or_else(|| panic!("service {name} has no command list"));
        for arg in command.iter_mut() {
            let a = arg.as_str().expect("command argument").to_string();
            *arg = a
                .replace("onair:1935", &rtmp.to_string())
                .replace("onair:8080", &http.to_string())
                .into();
        }
        if name == "onair" {
            assert_eq!(command[0], "serve", "the onair service runs serve");
            for a in [
                "--rtmp-addr",
                &rtmp.to_string(),
                "--http-addr",
                &http.to_string(),
            ] {
                command.push(a.into());
            }
        }
    }
    let text = serde_json::to_string_pretty(&doc).expect("compose json");
    for host in ["onair:", "localhost"] {
        assert!(
            !text.replace(IMAGE, "").contains(host),
            "a reference to {host} is left for host networking: {text}"
        );
    }
    text
}

#[test]
fn demo_compose_runs_in_docker_and_ffmpeg_reads_it() {
    require_tools();
    let _turn = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::start();
    build_runtime_image(&engine);

    let rtmp: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let dir = TempDir::new("onair-compose-demo");
    let file = dir.path.join("docker-compose.host.json");
    std::fs::write(&file, host_network_compose(&engine, rtmp, http)).expect("write compose");
    let mut project = Project {
        engine: &engine,
        file,
        name: format!("onairdemo{}", std::process::id()),
        env: Vec::new(),
        up: false,
    };
    project.up();

    // The pusher (its own container) publishes live/demo to the server's container.
    wait_http_200(http, "/live/demo.flv", Duration::from_secs(60));
    let flv = ffmpeg_reads(&format!("http://{http}/live/demo.flv"), 3);
    wait_until("the demo's HLS playlist", Duration::from_secs(30), || {
        http_get(http, "/live/demo.m3u8").0 == 200
    });
    let hls = ffmpeg_reads(&format!("http://{http}/live/demo.m3u8"), 3);
    // The image carries the player it was given.
    let (status, page) = http_get(http, "/live?stream=live/demo");
    eprintln!("from the containers: HTTP-FLV {flv} frames, HLS {hls} frames; /live {status}");
    assert!(flv >= 30 && hls >= 30, "HTTP-FLV {flv} frames, HLS {hls}");
    assert_eq!(status, 200, "/live: {}", String::from_utf8_lossy(&page));
    project.down();
    drop(project);
    prune(&engine);
}

/// nginx and redis-server for the cluster file: Debian's packages on the local base (no
/// registry for the official images). Built once, then kept under this tag.
const TOOLS_IMAGE: &str = "local/onair-cluster-tools:bookworm-1";

fn build_tools_image(engine: &Engine) {
    if engine
        .docker(&["image", "inspect", TOOLS_IMAGE])
        .status
        .success()
    {
        return;
    }
    let ctx = TempDir::new("onair-docker-tools");
    std::fs::write(
        ctx.path.join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\n\
             RUN apt-get update \\\n \
             && apt-get install -y --no-install-recommends nginx-light redis-server \\\n \
             && rm -rf /var/lib/apt/lists/* \\\n \
             && mkdir -p /var/cache/nginx\n"
        ),
    )
    .expect("tools Dockerfile");
    engine.must(
        "docker build (nginx, redis-server)",
        engine
            .command(DOCKER)
            .args([
                "build",
                "--quiet",
                "--network",
                "host",
                "--tag",
                TOOLS_IMAGE,
            ])
            .arg(&ctx.path),
    );
}

/// The cluster's listen ports as shipped, each moved to a free one for the test.
struct ClusterPorts(Vec<(u16, u16)>);

impl ClusterPorts {
    const SHIPPED: [u16; 8] = [1935, 8080, 1945, 8090, 1946, 8091, 6379, 8088];

    fn new() -> ClusterPorts {
        ClusterPorts(Self::SHIPPED.iter().map(|&p| (p, free_port())).collect())
    }

    fn get(&self, shipped: u16) -> SocketAddr {
        let (_, p) = self
            .0
            .iter()
            .find(|(s, _)| *s == shipped)
            .expect("a shipped port");
        ([127, 0, 0, 1], *p).into()
    }

    /// `text` with every listen address and port of the shipped files moved.
    fn rewrite(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (shipped, port) in &self.0 {
            for (from, to) in [
                (format!("127.0.0.1:{shipped}"), format!("127.0.0.1:{port}")),
                (
                    format!("\"--port\", \"{shipped}\""),
                    format!("\"--port\", \"{port}\""),
                ),
                (
                    format!("listen {shipped};"),
                    format!("listen 127.0.0.1:{port};"),
                ),
            ] {
                out = out.replace(&from, &to);
            }
        }
        out
    }
}

/// deploy/docker-compose.cluster.yml and the files it mounts, ports moved, into `dir`.
/// Every shipped port must be found somewhere, so a renamed one fails here.
fn cluster_files(dir: &Path, ports: &ClusterPorts) -> PathBuf {
    let deploy = repo().join("deploy");
    let mut all = String::new();
    std::fs::create_dir_all(dir.join("cluster")).expect("cluster dir");
    for rel in [
        "docker-compose.cluster.yml",
        "nginx-hls-cache.conf",
        "cluster/origin-a.toml",
        "cluster/origin-b.toml",
        "cluster/edge.toml",
    ] {
        let text = std::fs::read_to_string(deploy.join(rel))
            .unwrap_or_else(|e| panic!("read deploy/{rel}: {e}"));
        let moved = ports.rewrite(&text);
        std::fs::write(dir.join(rel), &moved).expect("write cluster file");
        all.push_str(&moved);
    }
    for (shipped, port) in &ports.0 {
        assert!(
            all.contains(&format!(":{port}")) || all.contains(&format!("\"{port}\"")),
            "shipped port {shipped} is not in the cluster files"
        );
    }
    // The nginx image's user must be able to read the mounted files.
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
    dir.join("docker-compose.cluster.yml")
}

#[test]
fn cluster_compose_edge_viewer_reads_the_stream() {
    require_tools();
    let _turn = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let engine = Engine::start();
    build_runtime_image(&engine);
    build_tools_image(&engine);

    let ports = ClusterPorts::new();
    let dir = TempDir::new("onair-compose-cluster");
    let file = cluster_files(&dir.path, &ports);
    let mut project = Project {
        engine: &engine,
        file,
        name: format!("onaircluster{}", std::process::id()),
        env: vec![
            ("ONAIR_IMAGE".into(), IMAGE.into()),
            ("NGINX_IMAGE".into(), TOOLS_IMAGE.into()),
            ("REDIS_IMAGE".into(), TOOLS_IMAGE.into()),
        ],
        up: false,
    };
    project.up();

    let (origin_a, edge, cache) = (ports.get(8090), ports.get(8080), ports.get(8088));
    // The pusher publishes to origin A; nothing is published to the edge.
    wait_http_200(origin_a, "/live/demo.flv", Duration::from_secs(60));
    // The edge viewer's request makes the edge pull live/demo from the origin holding it.
    let flv = ffmpeg_reads(&format!("http://{edge}/live/demo.flv"), 3);
    let origin_streams: serde_json::Value =
        serde_json::from_slice(&http_get(origin_a, "/api/streams").1).expect("origin api");
    let edge_streams: serde_json::Value =
        serde_json::from_slice(&http_get(edge, "/api/streams").1).expect("edge api");
    // HLS from the edge, through the nginx cache.
    wait_until(
        "the edge's HLS playlist through nginx",
        Duration::from_secs(30),
        || http_get(cache, "/live/demo.m3u8").0 == 200,
    );
    let hls = ffmpeg_reads(&format!("http://{cache}/live/demo.m3u8"), 3);
    eprintln!(
        "edge HTTP-FLV {flv} frames, HLS through the cache {hls} frames\n\
         origin A: {origin_streams}\nedge: {edge_streams}"
    );
    assert!(
        flv >= 30 && hls >= 30,
        "edge HTTP-FLV {flv} frames, cached HLS {hls}"
    );
    let on_edge = edge_streams
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "demo").cloned())
        .expect("live/demo listed on the edge");
    assert_eq!(on_edge["source"], "edge", "the edge pulled it: {on_edge}");
    project.down();
    drop(project);
    prune(&engine);
}
