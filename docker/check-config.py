#!/usr/bin/python3
"""Checks docker/'s deployment files against each other, without a daemon or
a cluster: every file parses as YAML, the Kubernetes manifests carry the
fields they need, and the ports, paths, user, drain timeout and grace periods
agree across docker/config.yaml, the Dockerfile, compose.yaml, nginx.conf,
prometheus.yml and k8s/. docker/smoke-test.sh runs it; so can you:

    /usr/bin/python3 docker/check-config.py

Prints one line per failed check and a summary; exits 1 if any failed.
Needs PyYAML (Debian: python3-yaml).
"""
import pathlib
import posixpath
import re
import sys

import yaml

DOCKER = pathlib.Path(__file__).resolve().parent
K8S = DOCKER / "k8s"
CONFIGMAP_NAME = "ffn-server-config"
CONFIG_KEY = "config.yaml"

failures = []
checks = 0


def check(condition, what):
    """Records one check; `what` says what should hold."""
    global checks
    checks += 1
    if not condition:
        failures.append(what)
    return bool(condition)


def load(path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        check(False, f"{path.name}: parses as YAML ({e})")
        return None


def load_all(path):
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        check(False, f"{path.name}: parses as YAML ({e})")
        return []


def port_of(address):
    match = re.fullmatch(r"(.*):(\d+)", str(address))
    return int(match.group(2)) if match else None


def flag_value(args, name):
    args = [str(a) for a in args or []]
    return args[args.index(name) + 1] if name in args[:-1] else None


def seconds(text):
    """'15s', '1m30s', 20 -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    total, found = 0.0, False
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", str(text)):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
        found = True
    return total if found else None


def quantity(text):
    """Kubernetes CPU or memory quantity -> float (cores or bytes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G)?", str(text))
    if not match:
        return None
    scale = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[match.group(2)]
    return float(match.group(1)) * scale


def labels_match(selector, labels):
    return bool(selector) and all((labels or {}).get(k) == v for k, v in selector.items())


# ---- docker/config.yaml: the model config every deployment mounts
config_text = (DOCKER / "config.yaml").read_text()
config = load(DOCKER / "config.yaml") or {}
server = config.get("server") or {}
grpc_port = port_of(server.get("address"))
metrics_port = port_of(server.get("metrics_address"))
check(str(server.get("address", "")).startswith("0.0.0.0:"),
      "config.yaml: server.address listens on 0.0.0.0 (reachable from outside the container)")
check(grpc_port == 50051, "config.yaml: server.address port is 50051")
check(metrics_port == 9090, "config.yaml: server.metrics_address port is 9090")
models = config.get("models") or []
check(models, "config.yaml: has models")
for m in models:
    check(all(k in m for k in ("name", "d_model", "d_ff", "activation", "weights")),
          f"config.yaml: model {m.get('name')} has name, d_model, d_ff, activation, weights")

# ---- Dockerfile: the user and ports the rest relies on
dockerfile = (DOCKER / "Dockerfile").read_text()
user = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
check(user and user[-1].split(":")[0] == "10001", "Dockerfile: the last USER is 10001")
exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", dockerfile, re.M)
           for p in re.findall(r"\d+", line)}
check({grpc_port, metrics_port} <= exposed, "Dockerfile: EXPOSEs the gRPC and metrics ports")
check(re.search(r'^CMD\s+\["ffn-server",', dockerfile, re.M),
      "Dockerfile: CMD is exec form starting ffn-server")

# ---- Kubernetes manifests
kustomization = load(K8S / "kustomization.yaml") or {}
resources = kustomization.get("resources") or []
check(resources, "k8s/kustomization.yaml: lists resources")
for r in resources:
    check((K8S / r).is_file(), f"k8s/kustomization.yaml: resource {r} exists")

objects = []
for path in sorted(K8S.glob("*.yaml")):
    if path.name == "kustomization.yaml":
        continue
    for doc in load_all(path):
        where = f"k8s/{path.name}"
        check(isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind")
              and (doc.get("metadata") or {}).get("name"),
              f"{where}: every document has apiVersion, kind and metadata.name")
        objects.append((where, doc))


def objects_of(kind):
    return [(w, d) for w, d in objects if isinstance(d, dict) and d.get("kind") == kind]


configmaps = objects_of("ConfigMap")
check(len(configmaps) == 1, "k8s: one ConfigMap")
for where, cm in configmaps:
    check(cm["metadata"]["name"] == CONFIGMAP_NAME, f"{where}: is named {CONFIGMAP_NAME}")
    data = (cm.get("data") or {}).get(CONFIG_KEY)
    check(data == config_text, f"{where}: data.{CONFIG_KEY} is exactly docker/config.yaml")

deployments = objects_of("Deployment")
check(len(deployments) == 1, "k8s: one Deployment")
template_labels, container_ports, deployment_name, cpu_request = {}, {}, None, None
for where, dep in deployments:
    deployment_name = dep["metadata"]["name"]
    spec = dep.get("spec") or {}
    template = spec.get("template") or {}
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    check(labels_match((spec.get("selector") or {}).get("matchLabels"), template_labels),
          f"{where}: spec.selector.matchLabels match the pod template's labels")
    pod = template.get("spec") or {}
    containers = pod.get("containers") or []
    if not check(len(containers) == 1, f"{where}: one container"):
        continue
    c = containers[0]
    check(c.get("image"), f"{where}: container has an image")
    container_ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    check(container_ports.get("grpc") == grpc_port, f"{where}: port 'grpc' is {grpc_port}")
    check(container_ports.get("metrics") == metrics_port,
          f"{where}: port 'metrics' is {metrics_port}")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        check(((c.get(probe) or {}).get("grpc") or {}).get("port") == grpc_port,
              f"{where}: {probe} is a native gRPC probe on port {grpc_port}")
    args = (c.get("command") or []) + (c.get("args") or [])
    check(args and args[0] == "ffn-server", f"{where}: runs ffn-server")
    config_path = flag_value(args, "--config")
    mounts = {m.get("name"): m for m in c.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    config_volume = next((n for n, v in volumes.items()
                          if (v.get("configMap") or {}).get("name") == CONFIGMAP_NAME), None)
    check(config_volume in mounts and config_path ==
          posixpath.join(mounts[config_volume].get("mountPath", ""), CONFIG_KEY),
          f"{where}: --config is {CONFIG_KEY} in the mounted ConfigMap {CONFIGMAP_NAME}")
    drain = float(flag_value(args, "--drain-timeout") or 10)
    pre_stop = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get(
        "command") or []
    check(pre_stop[:1] == ["sleep"] and len(pre_stop) == 2, f"{where}: preStop is a sleep")
    pre_stop_seconds = float(pre_stop[1]) if len(pre_stop) == 2 else 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace >= pre_stop_seconds + drain + 1,
          f"{where}: terminationGracePeriodSeconds ({grace}) covers preStop "
          f"({pre_stop_seconds:g}) + --drain-timeout ({drain:g}) with margin")
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check(quantity((res.get(kind) or {}).get(r)) is not None,
                  f"{where}: resources.{kind}.{r} is set")
    for r in ("cpu", "memory"):
        req = quantity((res.get("requests") or {}).get(r))
        lim = quantity((res.get("limits") or {}).get(r))
        check(req is None or lim is None or req <= lim,
              f"{where}: requests.{r} <= limits.{r}")
    cpu_request = quantity((res.get("requests") or {}).get("cpu"))
    if "$(FFN_THREADS)" in args:
        env = {e.get("name"): e for e in c.get("env") or []}
        ref = ((env.get("FFN_THREADS") or {}).get("valueFrom") or {}).get("resourceFieldRef")
        check(ref and ref.get("resource") == "limits.cpu",
              f"{where}: FFN_THREADS comes from limits.cpu")
    security = pod.get("securityContext") or {}
    check(security.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
    check(str(security.get("runAsUser")) == "10001",
          f"{where}: runAsUser is the image's user 10001")

services = objects_of("Service")
headless = [s for _, s in services if (s.get("spec") or {}).get("clusterIP") == "None"]
normal = [s for _, s in services if (s.get("spec") or {}).get("clusterIP") != "None"]
check(len(headless) == 1 and len(normal) == 1, "k8s: one headless and one normal Service")
for where, svc in services:
    spec = svc.get("spec") or {}
    check(labels_match(spec.get("selector"), template_labels),
          f"{where}: Service {svc['metadata']['name']} selects the Deployment's pods")
    for p in spec.get("ports") or []:
        check(p.get("targetPort") in container_ports or p.get("targetPort") in
              container_ports.values(),
              f"{where}: Service port {p.get('name')} targets a container port")

for where, hpa in objects_of("HorizontalPodAutoscaler"):
    spec = hpa.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    check(ref.get("kind") == "Deployment" and ref.get("name") == deployment_name,
          f"{where}: scales the Deployment {deployment_name}")
    check(1 <= spec.get("minReplicas", 1) <= spec.get("maxReplicas", 0),
          f"{where}: 1 <= minReplicas <= maxReplicas")
    check(cpu_request, f"{where}: CPU utilization needs the Deployment's CPU request")
check(len(objects_of("HorizontalPodAutoscaler")) == 1, "k8s: an HPA example")

for where, pdb in objects_of("PodDisruptionBudget"):
    check(labels_match(((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels"),
                       template_labels), f"{where}: selects the Deployment's pods")

# ---- compose.yaml
compose = load(DOCKER / "compose.yaml") or {}
services = compose.get("services") or {}
check({"ffn-server", "nginx", "prometheus", "load"} <= set(services),
      "compose.yaml: services ffn-server, nginx, prometheus, load")
srv = services.get("ffn-server") or {}
build = srv.get("build") or {}
check((DOCKER / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()
      == (DOCKER / "Dockerfile"), "compose.yaml: ffn-server builds docker/Dockerfile")
check(((srv.get("deploy") or {}).get("replicas") or 1) >= 2,
      "compose.yaml: ffn-server has 2 or more replicas")
srv_args = srv.get("command") or []
srv_config = flag_value(srv_args, "--config")
check(f"./config.yaml:{srv_config}:ro" in (srv.get("volumes") or []),
      "compose.yaml: ffn-server mounts ./config.yaml read-only at its --config path")
srv_drain = float(flag_value(srv_args, "--drain-timeout") or 10)
check((seconds(srv.get("stop_grace_period", "10s")) or 0) > srv_drain,
      "compose.yaml: stop_grace_period is longer than --drain-timeout")
check(srv.get("healthcheck"), "compose.yaml: ffn-server has a healthcheck")
check("./nginx.conf:/etc/nginx/nginx.conf:ro" in ((services.get("nginx") or {}).get("volumes")
                                                  or []), "compose.yaml: nginx mounts nginx.conf")
check("./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in
      ((services.get("prometheus") or {}).get("volumes") or []),
      "compose.yaml: prometheus mounts prometheus.yml")
load_args = (services.get("load") or {}).get("command") or []
check(load_args[:2] == ["ffn-client", "load"], "compose.yaml: load runs ffn-client load")
check(flag_value(load_args, "--target") == f"nginx:{grpc_port}",
      "compose.yaml: load goes through nginx")
check((services.get("load") or {}).get("restart") == "no", "compose.yaml: load is one-shot")

# ---- nginx.conf: the upstream is the replicas' service and port
nginx = (DOCKER / "nginx.conf").read_text()
check(re.search(rf"^\s*server\s+ffn-server:{grpc_port}\b", nginx, re.M),
      f"nginx.conf: upstream server is ffn-server:{grpc_port}")
check(re.search(rf"^\s*listen\s+{grpc_port}\s+http2\s*;", nginx, re.M),
      f"nginx.conf: listens on {grpc_port} with http2")
check(re.search(r"^\s*grpc_pass\s+grpc://", nginx, re.M), "nginx.conf: grpc_pass")

# ---- prometheus.yml: scrapes every replica's metrics port
prometheus = load(DOCKER / "prometheus.yml") or {}
jobs = {j.get("job_name"): j for j in prometheus.get("scrape_configs") or []}
job = jobs.get("ffn-server") or {}
check(job.get("metrics_path", "/metrics") == "/metrics", "prometheus.yml: scrapes /metrics")
sd = (job.get("dns_sd_configs") or [{}])[0]
check(sd.get("names") == ["ffn-server"] and sd.get("port") == metrics_port,
      f"prometheus.yml: finds every ffn-server replica by DNS, port {metrics_port}")

# ---- k8s/kserve/: InferenceServices (custom predictor, Open Inference Protocol)
KSERVE = K8S / "kserve"
isvcs = [(f"k8s/kserve/{path.name}", doc) for path in sorted(KSERVE.glob("*.yaml"))
         for doc in load_all(path)]
check(isvcs, "k8s/kserve: holds InferenceServices")
dockerfile_user = re.search(r"^USER\s+(\d+)", dockerfile, re.M)
for where, isvc in isvcs:
    isvc = isvc if isinstance(isvc, dict) else {}
    check(isvc.get("apiVersion") == "serving.kserve.io/v1beta1"
          and isvc.get("kind") == "InferenceService"
          and (isvc.get("metadata") or {}).get("name"),
          f"{where}: a serving.kserve.io/v1beta1 InferenceService with a name")
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    containers = predictor.get("containers") or [{}]
    check(len(containers) == 1, f"{where}: one predictor container")
    c = containers[0]
    args = c.get("args") or []
    check(c.get("command") == ["ffn-server"] and c.get("image"),
          f"{where}: the container runs ffn-server from an image")
    ports = c.get("ports") or [{}]
    check(len(ports) == 1, f"{where}: one container port (KServe routes one)")
    port, port_name = ports[0].get("containerPort"), ports[0].get("name")
    env = {e.get("name"): e.get("value") for e in c.get("env") or []}
    http_port = port_of(flag_value(args, "--http-address"))
    grpc_arg_port = port_of(flag_value(args, "--address"))
    if port_name == "h2c":
        check(port == grpc_arg_port, f"{where}: h2c port {port} is --address's")
        check(env.get("PROTOCOL") == "grpc-v2", f"{where}: PROTOCOL grpc-v2 for gRPC")
    else:
        check(port_name == "http1" and port == http_port,
              f"{where}: http1 port {port} is --http-address's")
        check(env.get("PROTOCOL") == "v2", f"{where}: PROTOCOL v2 for REST")
    for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        p = c.get(probe) or {}
        if "httpGet" in p:
            check(p["httpGet"].get("path") == path and p["httpGet"].get("port") == http_port,
                  f"{where}: {probe} GETs {path} on the REST port")
        else:
            check((p.get("grpc") or {}).get("port") == grpc_arg_port,
                  f"{where}: {probe} asks gRPC health on --address's port")
    drain = flag_value(args, "--drain-timeout")
    grace = predictor.get("terminationGracePeriodSeconds")
    check(drain is not None and grace is not None and float(grace) > float(drain),
          f"{where}: terminationGracePeriodSeconds exceeds --drain-timeout")
    user = (predictor.get("securityContext") or {}).get("runAsUser")
    check(dockerfile_user and user == int(dockerfile_user.group(1)),
          f"{where}: runAsUser is the Dockerfile's USER")
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            check(quantity(((c.get("resources") or {}).get(kind) or {}).get(r)) is not None,
                  f"{where}: resources.{kind}.{r} is set")
    check(flag_value(args, "--threads") == str(((c.get("resources") or {}).get("limits") or {}).get("cpu")),
          f"{where}: --threads is the CPU limit")

for failure in failures:
    print(f"check-config: FAIL: {failure}")
print(f"check-config: {checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
