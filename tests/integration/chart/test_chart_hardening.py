"""The rendered chart against what a careful review asks of it: every variable it gives the
emulator is read by the emulator, and the focus state outlives the focus pod."""

import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
RUNTIME = REPO / "runtime" / "loco_lan"


def rendered(chart: Path, *sets: str) -> list[dict]:
    args = ["helm", "template", "loco", str(chart), "--namespace", "loco", "--kube-version", "1.35.4"]
    for value in sets:
        args += ["--set", value]
    run = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


def find(docs: list[dict], kind: str, name: str) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_every_emulator_variable_is_read_by_the_emulator(chart):
    sts = find(rendered(chart), "StatefulSet", "loco-emulator")
    names = {env["name"] for c in sts["spec"]["template"]["spec"]["containers"] for env in c.get("env", [])}
    source = "\n".join(p.read_text() for p in (RUNTIME / "emulator").glob("*.py"))
    read = {name for name in names if re.search(rf"[\"']{name}[\"']", source)}
    # POD_INDEX only feeds INSTANCE_ID's $(POD_INDEX) in the manifest itself.
    assert names - read - {"POD_INDEX"} == set()


def test_focus_state_is_on_a_claim_that_outlives_the_pod(chart):
    docs = rendered(chart)
    pod = find(docs, "Deployment", "loco-focus")["spec"]["template"]["spec"]
    state = next(v for v in pod["volumes"] if v["name"] == "state")
    claim = find(docs, "PersistentVolumeClaim", state["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "16Mi"
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]


def pods_of(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs
            if d["kind"] in ("Deployment", "StatefulSet")}


def test_only_the_gateway_and_focus_service_reach_vnc_and_only_emulators_the_lan(chart):
    docs = rendered(chart, "networkPolicy.vncFrom[0].namespaceSelector.matchLabels.team=operators")
    policy = find(docs, "NetworkPolicy", "loco-emulator")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "emulator"
    lan, vnc = policy["ingress"]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in lan["from"]] == ["emulator"]
    assert "ports" not in lan  # hub, DirectPlay and ping: the whole LAN, between emulators only
    components = [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in vnc["from"][:2]]
    assert components == ["focus", "streaming"]
    assert vnc["from"][2] == {"namespaceSelector": {"matchLabels": {"team": "operators"}}}
    assert vnc["ports"] == [{"port": "vnc", "protocol": "TCP"}, {"port": "health", "protocol": "TCP"}]
    assert not [d for d in rendered(chart, "networkPolicy.enabled=false") if d["kind"] == "NetworkPolicy"]


def test_tokens_only_where_the_api_is_called_high_uid_and_liveness_everywhere(chart):
    pods = pods_of(rendered(chart, "streaming.turn.enabled=true", "emulator.diskReadOnly=false"))
    mounted = {name for name, pod in pods.items() if pod.get("automountServiceAccountToken") is not False}
    assert mounted == {"loco-focus"}  # it resizes the emulators through the API
    for name, pod in pods.items():
        assert pod["securityContext"]["runAsUser"] >= 10000, name
        assert all("livenessProbe" in c for c in pod["containers"]), name
