"""Helm releases through the real ``helm`` binary, with an exact idempotency check.

A release is upgraded only when the upgrade would change something: the
rendered manifest (``helm upgrade --dry-run=server``) differs from the
deployed one, or the supplied values differ, or the release is not in the
``deployed`` state.  No helm-diff plugin is needed and nothing is guessed.

Every plan, a first install's too, also sends the rendered objects to the API
server as a dry run (helm's ``--dry-run=server`` only lets templates look
things up): check mode then fails where the real run would.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from loco_lan import kube
from loco_lan.errors import LocoError


def deep_merge(base: dict, patch: dict) -> dict:
    """``patch`` laid over ``base``: nested dicts merge, everything else replaces."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class ReleasePlan:
    action: str  # install | upgrade | none | uninstall
    values_before: dict = field(default_factory=dict)
    values_after: dict = field(default_factory=dict)
    manifest_changed: bool = False

    @property
    def changed(self) -> bool:
        return self.action != "none"

    def diff(self) -> dict:
        return {
            "before": yaml.safe_dump(self.values_before, sort_keys=True),
            "after": yaml.safe_dump(self.values_after, sort_keys=True),
            "before_header": "values (deployed)",
            "after_header": "values (desired)",
        }


class Helm:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None, binary: str | None = None,
                 timeout: float = 600.0):
        self.binary = binary or shutil.which("helm")
        if not self.binary:
            raise LocoError("helm not found on PATH; run scripts/setup.sh or pass its path")
        self.kubeconfig, self.context = kubeconfig, context
        self.global_args = []
        if kubeconfig:
            self.global_args += ["--kubeconfig", str(kubeconfig)]
        if context:
            self.global_args += ["--kube-context", context]
        self.timeout = timeout

    def run(self, *args: str, values: dict | None = None) -> str:
        argv = [self.binary, *args, *self.global_args]
        if values is not None:
            argv += ["--values", "-"]
        try:
            result = subprocess.run(
                argv, input=yaml.safe_dump(values) if values is not None else None, capture_output=True,
                text=True, timeout=self.timeout, env={**os.environ, "HELM_NO_PLUGINS": "1"},
            )
        except subprocess.TimeoutExpired as exc:
            raise LocoError(f"helm {args[0]} timed out after {self.timeout:.0f}s") from exc
        if result.returncode:
            message = result.stderr.strip().splitlines()
            raise LocoError(f"helm {args[0]} failed: {message[-1] if message else result.returncode}")
        return result.stdout

    def release(self, name: str, namespace: str) -> dict | None:
        releases = json.loads(self.run("list", "--namespace", namespace, "--all", "--output", "json",
                                       "--filter", f"^{name}$") or "[]")
        return releases[0] if releases else None

    def values(self, name: str, namespace: str) -> dict:
        return json.loads(self.run("get", "values", name, "--namespace", namespace, "--output", "json")) or {}

    def manifest(self, name: str, namespace: str) -> str:
        return self.run("get", "manifest", name, "--namespace", namespace)

    def rendered(self, name: str, namespace: str, chart: str, values: dict) -> str:
        """The manifest an install or upgrade would apply, each object accepted by the API server in
        a dry run (schema, admission, quotas); in a namespace not created yet, helm's checks only."""
        manifest = json.loads(self.run("upgrade", name, chart, "--install", "--namespace", namespace, "--output",
                                       "json", "--dry-run=server", values=values))["manifest"]
        api = kube.api_client(self.kubeconfig, self.context)
        try:
            client.CoreV1Api(api).read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                return manifest  # the install creates it: nothing there to check the objects against yet
            raise
        for doc in _documents(manifest):
            try:
                kube.apply(api, doc, namespace, dry_run=True)
            except ApiException as exc:
                raise LocoError(f"the API server refuses {doc.get('kind')} {doc.get('metadata', {}).get('name')} "
                                f"of release {name}: {_api_message(exc)}") from None
        return manifest

    def plan(self, name: str, namespace: str, chart: str, values: dict, patch: bool = False) -> ReleasePlan:
        """What ``apply`` would do; with ``patch`` the values are merged into the deployed ones.
        A first install is dry-run too, so check mode fails where the install would."""
        current = self.release(name, namespace)
        if current is None:
            self.rendered(name, namespace, chart, values)
            return ReleasePlan("install", {}, values, manifest_changed=True)
        before = self.values(name, namespace)
        after = deep_merge(before, values) if patch else values
        manifest_changed = _documents(self.rendered(name, namespace, chart, after)) != _documents(
            self.manifest(name, namespace))
        changed = manifest_changed or before != after or current.get("status") != "deployed"
        return ReleasePlan("upgrade" if changed else "none", before, after, manifest_changed)

    def apply(self, name: str, namespace: str, chart: str, plan: ReleasePlan, wait: bool = True,
              timeout: str = "5m", create_namespace: bool = True) -> dict:
        if plan.action in ("install", "upgrade"):
            args = ["upgrade", name, chart, "--install", "--namespace", namespace, "--output", "json",
                    "--timeout", timeout]
            if wait:
                args.append("--wait")
            if create_namespace:
                args.append("--create-namespace")
            try:
                self.run(*args, values=plan.values_after)
            except LocoError as exc:
                if "updates to statefulset spec for fields other than" in str(exc):
                    raise LocoError(
                        f"{exc}. Switching emulator.diskReadOnly (or the overlay storage) changes the "
                        "StatefulSet's volumeClaimTemplates, which Kubernetes cannot update in place: "
                        f"uninstall release {name} (the disk PVC is kept) and install it again") from exc
                raise
        return self.release(name, namespace) or {}

    def uninstall(self, name: str, namespace: str, wait: bool = True) -> bool:
        if self.release(name, namespace) is None:
            return False
        self.run("uninstall", name, "--namespace", namespace, *(["--wait"] if wait else []))
        return True


def _api_message(exc: ApiException) -> str:
    """The API server's own message of a refusal (its Status), else the HTTP status."""
    try:
        return json.loads(exc.body or "{}").get("message") or f"HTTP {exc.status}"
    except (ValueError, AttributeError):
        return f"HTTP {exc.status} {exc.reason or ''}".strip()


def _documents(manifest: str) -> list:
    """Parsed manifest documents in a stable order, so formatting never counts as a change."""
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    return sorted(docs, key=lambda d: (d.get("kind", ""), d.get("metadata", {}).get("name", "")))
