//! The files under `deploy/`: every Kubernetes manifest is checked field by
//! field against the Kubernetes object shapes (k8s-openapi: each document
//! is read into its typed object by kind and written back, and must come
//! back unchanged, so a misspelled or misplaced field fails), and the
//! example's wiring is checked where a mistake would only show in a cluster:
//! the binary the init container copies is the one the sandbox runs, the
//! token file is where the Secret is mounted, the probes ask `/readyz` on
//! 7000, the Service reaches the pod. The Containerfiles are checked against
//! the same paths. `kubectl apply --dry-run=client` runs too where kubectl
//! exists and can work without a cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, PodSpec, Probe, Secret, Service, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use pretty_assertions::assert_eq;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The port the image and the example listen on.
const PORT: i32 = 7000;
/// Where the image and the example read the connection token.
const TOKEN_PATH: &str = "/run/secrets/exec-server/token";
/// The arguments of `exec-server` in the image and in the example pod.
const SERVE_ARGS: [&str; 5] = [
    "serve",
    "--listen",
    "ws://0.0.0.0:7000",
    "--token-file",
    TOKEN_PATH,
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// One Kubernetes object of the example, typed by its kind.
enum Object {
    Deployment(Box<Deployment>),
    Service(Box<Service>),
    Secret(Box<Secret>),
}

/// Every document of every YAML file in `deploy/kubernetes/`, each checked
/// by a round trip through its typed object.
fn manifests() -> Vec<(String, Object)> {
    let directory = deploy_dir().join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("reading deploy/kubernetes/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", directory.display());
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("reading a manifest");
        let name = file
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value = serde_json::Value::deserialize(document)
                .unwrap_or_else(|error| panic!("{name}, document {index}: not YAML: {error}"));
            if value.is_null() {
                continue;
            }
            let place = format!("{name}, document {index}");
            objects.push((place.clone(), typed_object(&place, value)));
        }
    }
    objects
}

fn typed_object(place: &str, value: serde_json::Value) -> Object {
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = value["kind"].as_str().unwrap_or_default().to_owned();
    match (api_version.as_str(), kind.as_str()) {
        ("apps/v1", "Deployment") => Object::Deployment(round_trip(place, value)),
        ("v1", "Service") => Object::Service(round_trip(place, value)),
        ("v1", "Secret") => Object::Secret(round_trip(place, value)),
        _ => panic!("{place}: no typed shape for {api_version:?} {kind:?}; add it to this test"),
    }
}

/// Reads `value` as a `T` and fails unless writing it back gives `value`
/// again: k8s-openapi skips fields it does not know, so a field lost in the
/// round trip is one Kubernetes would reject or ignore.
fn round_trip<T: DeserializeOwned + serde::Serialize>(
    place: &str,
    value: serde_json::Value,
) -> Box<T> {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|error| panic!("{place}: not a valid object of its kind: {error}"));
    let written = serde_json::to_value(&typed).expect("writing a typed object");
    assert_eq!(
        written, value,
        "{place}: a field is not in the Kubernetes shape of its kind (misspelled, misplaced or of the wrong type)"
    );
    Box::new(typed)
}

/// The one object of each kind the example has.
struct Example {
    deployment: Deployment,
    service: Service,
    secret: Secret,
}

fn example() -> Example {
    let (mut deployments, mut services, mut secrets) = (Vec::new(), Vec::new(), Vec::new());
    for (_, object) in manifests() {
        match object {
            Object::Deployment(object) => deployments.push(*object),
            Object::Service(object) => services.push(*object),
            Object::Secret(object) => secrets.push(*object),
        }
    }
    let one = |count: usize, kind: &str| assert_eq!(count, 1, "the example has one {kind}");
    one(deployments.len(), "Deployment");
    one(services.len(), "Service");
    one(secrets.len(), "Secret");
    Example {
        deployment: deployments.remove(0),
        service: services.remove(0),
        secret: secrets.remove(0),
    }
}

fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .expect("the Deployment has a pod template with a spec")
}

fn pod_labels(deployment: &Deployment) -> &BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.metadata.as_ref())
        .and_then(|metadata| metadata.labels.as_ref())
        .expect("the pod template has labels")
}

fn volume<'a>(pod: &'a PodSpec, name: &str) -> &'a Volume {
    pod.volumes
        .iter()
        .flatten()
        .find(|volume| volume.name == name)
        .unwrap_or_else(|| panic!("no volume {name:?} in the pod"))
}

/// The name of the volume `container` mounts at `path`.
fn volume_mounted_at<'a>(container: &'a Container, path: &str) -> &'a str {
    container
        .volume_mounts
        .iter()
        .flatten()
        .find(|mount| mount.mount_path == path)
        .map(|mount| mount.name.as_str())
        .unwrap_or_else(|| panic!("container {:?} mounts nothing at {path}", container.name))
}

/// Where `container` mounts the volume `name`.
fn mount_path<'a>(container: &'a Container, name: &str) -> &'a str {
    container
        .volume_mounts
        .iter()
        .flatten()
        .find(|mount| mount.name == name)
        .map(|mount| mount.mount_path.as_str())
        .unwrap_or_else(|| panic!("container {:?} does not mount {name:?}", container.name))
}

/// The container port a probe's or Service's port names, as a number.
fn resolve_port(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(number) => *number,
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|port| port.name.as_deref() == Some(name))
            .map(|port| port.container_port)
            .unwrap_or_else(|| panic!("no container port named {name:?}")),
    }
}

fn http_get<'a>(probe: Option<&'a Probe>, which: &str) -> &'a HTTPGetAction {
    probe
        .and_then(|probe| probe.http_get.as_ref())
        .unwrap_or_else(|| panic!("the sandbox container has no {which} httpGet probe"))
}

/// The ENTRYPOINT of a Containerfile, read as the JSON array it is written as.
fn entrypoint(containerfile: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(deploy_dir().join(containerfile)).expect("reading a Containerfile");
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("ENTRYPOINT "))
        .unwrap_or_else(|| panic!("{containerfile} has no ENTRYPOINT"));
    serde_json::from_str(line).expect("ENTRYPOINT in its exec (JSON array) form")
}

#[test]
fn every_manifest_has_only_fields_of_its_kubernetes_kind() {
    // `manifests` does the checking; here it must also find the example.
    let kinds: Vec<&str> = manifests()
        .iter()
        .map(|(_, object)| match object {
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
            Object::Secret(_) => "Secret",
        })
        .collect();
    assert_eq!(kinds, ["Deployment", "Secret", "Service"]);
}

#[test]
fn a_misspelled_field_fails_the_round_trip() {
    let text = std::fs::read_to_string(deploy_dir().join("kubernetes/deployment.yaml"))
        .expect("reading deployment.yaml");
    let mut value: serde_json::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    value["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = serde_json::json!({});
    let outcome = std::panic::catch_unwind(|| round_trip::<Deployment>("misspelled", value));
    assert!(outcome.is_err(), "a misspelled field went through");
}

#[test]
fn the_sandbox_runs_the_copied_binary_with_the_mounted_token() {
    let example = example();
    let pod = pod_spec(&example.deployment);

    // The init container copies the binary to the installer's destination,
    // into an emptyDir the sandbox container mounts too.
    let copy = entrypoint("installer.Containerfile");
    let destination = Path::new(copy.last().expect("cp's destination"));
    let install_dir = destination
        .parent()
        .expect("a folder")
        .to_str()
        .expect("UTF-8");
    let [init] = pod.init_containers.as_deref().expect("an init container") else {
        panic!("the example has one init container");
    };
    let shared = volume_mounted_at(init, install_dir);
    assert!(
        volume(pod, shared).empty_dir.is_some(),
        "{shared:?} is an emptyDir"
    );

    let sandbox = pod
        .containers
        .iter()
        .find(|container| container.name == "sandbox")
        .expect("a container named sandbox");
    let binary =
        Path::new(mount_path(sandbox, shared)).join(destination.file_name().expect("a file name"));
    assert_eq!(
        sandbox.command.as_deref(),
        Some([binary.to_str().expect("UTF-8").to_owned()].as_slice())
    );
    assert_eq!(
        sandbox.args.as_deref(),
        Some(SERVE_ARGS.map(String::from).as_slice())
    );

    // The token file is the key `token` of the example's Secret, readable by
    // the pod's non-root user through fsGroup.
    let token = Path::new(TOKEN_PATH);
    let token_volume = volume_mounted_at(
        sandbox,
        token.parent().expect("a folder").to_str().expect("UTF-8"),
    );
    let source = volume(pod, token_volume)
        .secret
        .as_ref()
        .expect("the token volume is a Secret");
    assert_eq!(source.secret_name, example.secret.metadata.name);
    let items = source
        .items
        .as_deref()
        .expect("the Secret volume lists its items");
    assert!(
        items
            .iter()
            .any(|item| item.key == "token" && item.path == "token"),
        "the key `token` becomes the file `token`"
    );
    let secret_keys = example.secret.string_data.iter().flat_map(BTreeMap::keys);
    assert!(
        secret_keys
            .chain(example.secret.data.iter().flat_map(BTreeMap::keys))
            .any(|key| key == "token")
    );
    assert_eq!(source.default_mode, Some(0o440));
    let security = pod
        .security_context
        .as_ref()
        .expect("a pod securityContext");
    assert_eq!(security.run_as_user, Some(65532));
    assert_eq!(security.fs_group, Some(65532));
    assert_eq!(security.run_as_non_root, Some(true));
}

#[test]
fn probes_and_service_reach_readyz_on_7000() {
    let example = example();
    let pod = pod_spec(&example.deployment);
    let sandbox = &pod.containers[0];
    assert!(
        sandbox
            .ports
            .iter()
            .flatten()
            .any(|port| port.container_port == PORT),
        "the sandbox container declares port {PORT}"
    );
    for (which, probe) in [
        ("readiness", sandbox.readiness_probe.as_ref()),
        ("liveness", sandbox.liveness_probe.as_ref()),
    ] {
        let get = http_get(probe, which);
        assert_eq!(get.path.as_deref(), Some("/readyz"), "{which} probe path");
        assert_eq!(resolve_port(sandbox, &get.port), PORT, "{which} probe port");
    }

    let labels = pod_labels(&example.deployment);
    let selects = |selector: &BTreeMap<String, String>| {
        selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    };
    let deployment_selector = example
        .deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.match_labels.as_ref());
    assert!(
        deployment_selector.is_some_and(selects),
        "the Deployment selects its pods"
    );
    let service = example.service.spec.as_ref().expect("a Service spec");
    assert!(
        service.selector.as_ref().is_some_and(selects),
        "the Service selects the pods"
    );
    let [port] = service.ports.as_deref().expect("Service ports") else {
        panic!("the Service exposes one port");
    };
    assert_eq!(port.port, PORT);
    let target = port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(port.port));
    assert_eq!(
        resolve_port(sandbox, &target),
        PORT,
        "the Service reaches the container port"
    );
}

#[test]
fn the_image_is_scratch_with_the_binary_serving_on_7000() {
    let text = std::fs::read_to_string(deploy_dir().join("Containerfile"))
        .expect("reading the Containerfile");
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let entry = entrypoint("Containerfile");
    assert_eq!(
        instructions[..instructions.len() - 1],
        [
            "FROM scratch",
            "COPY exec-server /exec-server",
            "USER 65532:65532",
            "EXPOSE 7000"
        ]
    );
    assert_eq!(entry[0], "/exec-server");
    assert_eq!(entry[1..], SERVE_ARGS);
}

#[test]
fn kubectl_accepts_the_manifests_where_it_can_run() {
    let Some(kubectl) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|path| path.is_file())
    }) else {
        eprintln!("kubectl is not installed: only the typed checks ran");
        return;
    };
    // A client-side dry run still asks the API server for its resource
    // list (and, validating, its schema), so it runs only against a cluster
    // the developer chose: kubectl's current context. Without one kubectl
    // would try localhost:8080, which tells nothing.
    let context = std::process::Command::new(&kubectl)
        .args(["config", "current-context"])
        .output()
        .expect("starting kubectl");
    if !context.status.success() {
        eprintln!("kubectl has no current context: only the typed checks ran");
        return;
    }
    let output = std::process::Command::new(&kubectl)
        .args(["apply", "--dry-run=client", "--output=name", "--filename"])
        .arg(deploy_dir().join("kubernetes"))
        .output()
        .expect("starting kubectl");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "kubectl apply --dry-run=client rejected the manifests: {stderr}"
    );
    let names = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "deployment.apps/sandbox",
            "secret/exec-server-token",
            "service/sandbox"
        ]
    );
}
