"""Validate deploy/: run by scripts/validate-deploy inside its tools venv (PyYAML,
jsonschema, kubernetes-validate, check-jsonschema). Prints one line per check; exits 1
if any failed. ``--out DIR`` keeps the rendered and parsed artifacts as JSON (the tests
read them)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "recon"
# The chart's kubeVersion floor and the newest schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.25.0", "1.37.0")
CREDENTIALS = ("DATABASE_URL", "BILLING_DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
               "SLACK_APP_TOKEN", "ALERT_WEBHOOK_TOKEN", "RECON_API_TOKEN", "RECON_REPORT_SECRET")


class CheckFailed(Exception):
    pass


def run(cmd: list[str], *, ok_codes: tuple[int, ...] = (0,), input_text: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input_text, cwd=cwd, check=False)  # noqa: S603
    if proc.returncode not in ok_codes:
        raise CheckFailed(f"{' '.join(cmd[:3])}… exited {proc.returncode}:\n{proc.stdout}{proc.stderr}".rstrip())
    return proc


def load_yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


class Validator:
    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.a = args
        self.out = out
        self.failures: list[str] = []
        self.count = 0

    def save(self, name: str, obj: object) -> None:
        (self.out / name).write_text(json.dumps(obj, indent=1, default=str))

    def check(self, name: str, fn: Callable[[], str]) -> None:
        self.count += 1
        t0 = time.perf_counter()
        try:
            detail = fn()
        except (CheckFailed, AssertionError, yaml.YAMLError, OSError) as exc:
            self.failures.append(name)
            print(f"FAIL {name}\n     " + str(exc).replace("\n", "\n     "))
            return
        print(f"ok   {name} ({time.perf_counter() - t0:.1f}s){': ' + detail if detail else ''}")

    # ---- Dockerfile ------------------------------------------------------------------
    def dockerfile(self) -> str:
        path = DEPLOY / "Dockerfile"
        run([self.a.hadolint, "--no-color", str(path)])
        version = run([self.a.hadolint, "--version"]).stdout.strip()
        instructions = parse_dockerfile(path.read_text())
        self.save("dockerfile.json", instructions)
        froms = [i for i in instructions if i["cmd"] == "FROM"]
        assert len(froms) >= 2, "expected a multi-stage build"
        last = instructions.index(froms[-1])
        final = instructions[last:]
        users = [i["value"] for i in final if i["cmd"] == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), "the final stage must run as non-root"
        assert any(i["cmd"] == "HEALTHCHECK" and "/healthz" in i["value"] for i in final), "HEALTHCHECK on /healthz"
        assert any(i["cmd"] == "ENTRYPOINT" and json.loads(i["value"]) == ["recon"] for i in final)
        assert any(i["cmd"] == "EXPOSE" and i["value"] == "3000" for i in final)
        return f"{version}, {len(froms)} stages"

    # ---- Helm ------------------------------------------------------------------------
    def helm(self, *sets: str, release: str = "recon", expect_fail: bool = False) -> list[dict[str, Any]]:
        cmd = [self.a.helm, "template", release, str(CHART), "--namespace", "billing-ops"]
        for s in sets:
            cmd += ["--set", s]
        proc = run(cmd, ok_codes=(0, 1) if expect_fail else (0,))
        if expect_fail:
            if proc.returncode == 0:
                raise CheckFailed(f"helm template {' '.join(sets)} rendered; the chart should refuse it")
            return [{"error": proc.stderr.strip()}]
        return load_yaml_docs(proc.stdout)

    def helm_lint(self) -> str:
        version = run([self.a.helm, "version", "--short"]).stdout.strip()
        run([self.a.helm, "lint", "--strict", str(CHART)])
        run([self.a.helm, "lint", "--strict", str(CHART), "--set", "serviceMonitor.enabled=true"])
        run([self.a.helm, "lint", "--strict", str(CHART), "--set", "retention.cronJob.enabled=true"])
        return f"helm {version}"

    def k8s_validate(self, docs: list[dict[str, Any]]) -> list[str]:
        seen = []
        for doc in docs:
            if doc.get("apiVersion") == "monitoring.coreos.com/v1":
                continue  # a CRD: checked against its own schema (servicemonitor)
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    raise CheckFailed(f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): "
                                      f"{exc.message} at {'.'.join(map(str, exc.path))}") from exc
                except kubernetes_validate.SchemaNotFoundError as exc:
                    raise CheckFailed(f"no schema for {doc['kind']} {doc['apiVersion']} in k8s {version}") from exc
            seen.append(doc["kind"])
        return seen

    def chart_default(self) -> str:
        docs = self.helm()
        self.save("helm-default.json", docs)
        kinds = self.k8s_validate(docs)
        assert "ServiceMonitor" not in [d["kind"] for d in docs], "the ServiceMonitor must be off by default"
        assert "CronJob" not in [d["kind"] for d in docs], "the retention CronJob must be off by default"
        return f"{', '.join(sorted(kinds))} valid (strict) for Kubernetes {' and '.join(K8S_VERSIONS)}"

    def chart_variants(self) -> str:
        socket = self.helm("credentials.SLACK_SIGNING_SECRET=null", "replicaCount=3",
                           "config.LOKI_URL=http://loki:3100", "config.RECON_SHUTDOWN_GRACE_S=45",
                           "migration.enabled=false", "serviceAccount.create=false",
                           "image.tag=9.9.9", release="billing-recon")
        self.save("helm-variant.json", socket)
        self.k8s_validate(socket)
        refused = {
            "a credential among plain config": self.helm("config.SLACK_BOT_TOKEN=xoxb-1", expect_fail=True),
            "terminationGracePeriodSeconds <= grace": self.helm("terminationGracePeriodSeconds=20",
                                                                 expect_fail=True),
            "a credential without a secret name": self.helm("credentials.DATABASE_URL.secretName=",
                                                            expect_fail=True),
        }
        self.save("helm-refused.json", refused)
        return "variant valid; refused: " + "; ".join(refused)

    def chart_servicemonitor(self) -> str:
        docs = self.helm("serviceMonitor.enabled=true", "serviceMonitor.labels.release=kube-prometheus-stack")
        self.save("helm-servicemonitor.json", docs)
        self.k8s_validate(docs)
        monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
        assert len(monitors) == 1, "serviceMonitor.enabled=true renders one ServiceMonitor"
        self.node_validate_servicemonitor(monitors[0])
        return "ServiceMonitor valid against the prometheus-operator CRD schema"

    def chart_retention(self) -> str:
        docs = self.helm("retention.cronJob.enabled=true", "retention.cronJob.timeZone=Etc/UTC",
                         "config.RECON_RETENTION_JOBS_DAYS=7")
        self.save("helm-retention.json", docs)
        self.k8s_validate(docs)
        jobs = [d for d in docs if d["kind"] == "CronJob"]
        assert len(jobs) == 1, "retention.cronJob.enabled=true renders one CronJob"
        return "CronJob valid (strict)"

    def node_validate_servicemonitor(self, doc: dict[str, Any]) -> None:
        script = (
            "import { ServiceMonitor } from "
            "'@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';\n"
            "let data = ''; process.stdin.on('data', c => data += c);\n"
            "process.stdin.on('end', () => { try { new ServiceMonitor(JSON.parse(data)).validate(); "
            "console.log('valid'); } catch (e) { console.error(e.message); process.exit(1); } });\n"
        )
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "validate.mjs"
            f.write_text(script)
            env_path = Path(self.a.node_modules)
            # ESM resolves packages from the script's folder upwards: link node_modules in
            (Path(d) / "node_modules").symlink_to(env_path)
            run(["node", str(f)], input_text=json.dumps(doc))

    # ---- compose ---------------------------------------------------------------------
    def compose(self) -> str:
        env = parse_dotenv((DEPLOY / ".env.example").read_text())
        raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
        required = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", (DEPLOY / "compose.yaml").read_text()))
        missing = sorted(required - env.keys())
        assert not missing, f".env.example lacks required variables: {missing}"
        doc = interpolate(raw, env)
        # compose drops the x- extension keys' anchors after merging; the schema allows x-*
        self.save("compose.json", doc)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(doc, f)
        try:
            run([self.a.check_jsonschema, "--builtin-schema", "vendor.compose-spec", f.name])
        finally:
            os.unlink(f.name)
        compose_references(doc)
        return f"{len(doc['services'])} services valid against the Compose Specification schema; references resolve"

    # ---- Alertmanager, Grafana, Tempo, Postgres init ------------------------------------
    def alertmanager(self) -> str:
        files = [DEPLOY / "alertmanager" / "receiver.yaml", DEPLOY / "compose" / "alertmanager.yml"]
        run([self.a.amtool, "check-config", *map(str, files)])
        version = run([self.a.amtool, "--version"]).stdout.strip() or run([self.a.amtool, "--version"]).stderr
        self.save("alertmanager-receiver.json", yaml.safe_load(files[0].read_text()))
        self.save("alertmanager-compose.json", yaml.safe_load(files[1].read_text()))
        return f"amtool check-config passed ({version.splitlines()[0] if version else 'amtool'})"

    def grafana(self) -> str:
        import jsonschema

        cp = yaml.safe_load((DEPLOY / "grafana" / "contact-point.yaml").read_text())
        jsonschema.validate(cp, GRAFANA_ALERTING_SCHEMA)
        ds = yaml.safe_load((DEPLOY / "compose" / "grafana" / "provisioning" / "datasources"
                             / "datasources.yaml").read_text())
        jsonschema.validate(ds, GRAFANA_DATASOURCES_SCHEMA)
        self.save("grafana-contact-point.json", cp)
        self.save("grafana-datasources.json", ds)
        types = sorted(d["type"] for d in ds["datasources"])
        assert types == ["loki", "tempo"], types
        return "structure only (no Grafana binary here): contact point + data sources"

    def tempo(self) -> str:
        t = yaml.safe_load((DEPLOY / "compose" / "tempo.yaml").read_text())
        assert t["server"]["http_listen_port"] == 3200
        assert set(t["distributor"]["receivers"]["otlp"]["protocols"]) >= {"grpc", "http"}
        assert t["storage"]["trace"]["backend"] == "local"
        return "structure only (no Tempo binary here)"

    def postgres_init(self) -> str:
        script = DEPLOY / "compose" / "postgres" / "10-recon.sh"
        run(["bash", "-n", str(script)])
        assert os.access(script, os.X_OK), "the init script must be executable"
        return "bash -n (the tests run it against a real PostgreSQL)"

    def slack_manifest(self) -> str:
        """deploy/slack-app-manifest.yaml: Slack's documented limits on its parts (no
        validator of Slack's own runs offline), and every request URL on /slack/events."""
        import jsonschema

        m = yaml.safe_load((DEPLOY / "slack-app-manifest.yaml").read_text())
        try:
            jsonschema.validate(m, SLACK_MANIFEST_SCHEMA)
        except jsonschema.ValidationError as e:
            raise AssertionError(f"{e.message} at {'/'.join(map(str, e.absolute_path))}") from None
        urls = [c["url"] for c in m["features"]["slash_commands"]]
        urls += [m["settings"]["event_subscriptions"]["request_url"], m["settings"]["interactivity"]["request_url"]]
        assert all(u.endswith("/slack/events") for u in urls), urls
        ids = [s["callback_id"] for s in m["features"].get("shortcuts", [])]
        assert len(ids) == len(set(ids)), f"duplicate shortcut callback ids: {ids}"
        if ids:
            assert m["settings"]["interactivity"]["is_enabled"], "shortcuts need interactivity"
            assert "commands" in m["oauth_config"]["scopes"]["bot"], "shortcuts need the commands scope"
        self.save("slack-app-manifest.json", m)
        return f"structure: {len(ids)} shortcut(s), {len(m['oauth_config']['scopes']['bot'])} bot scopes"

    # ---- the validators themselves reject broken input ---------------------------------
    def validators_bite(self) -> str:
        bad_deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                      "spec": {"replicas": "two", "selector": {}, "template": {"spec": {"containerz": []}}}}
        try:
            kubernetes_validate.validate(bad_deploy, K8S_VERSIONS[-1], strict=True)
        except kubernetes_validate.ValidationError:
            pass
        else:
            raise CheckFailed("kubernetes-validate accepted a broken Deployment")
        try:
            self.node_validate_servicemonitor({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                                               "metadata": {"name": "x"},
                                               "spec": {"selector": {}, "endpoints": [{"interval": "often"}]}})
        except CheckFailed:
            pass
        else:
            raise CheckFailed("the ServiceMonitor schema accepted interval: often")
        with tempfile.TemporaryDirectory() as d:
            bad_am = Path(d) / "am.yml"
            bad_am.write_text("route: {receiver: nowhere}\nreceivers:\n- name: r\n  webhook_configs:\n"
                              "  - url: http://x/alerts/alertmanager\n    max_alert: 1\n")
            if run([self.a.amtool, "check-config", str(bad_am)], ok_codes=(0, 1)).returncode == 0:
                raise CheckFailed("amtool accepted a config with an unknown receiver and field")
            bad_compose = Path(d) / "compose.json"
            bad_compose.write_text(json.dumps({"services": {"a": {"image": "x", "depends_onn": ["b"]}}}))
            if run([self.a.check_jsonschema, "--builtin-schema", "vendor.compose-spec", str(bad_compose)],
                   ok_codes=(0, 1)).returncode == 0:
                raise CheckFailed("the compose schema accepted an unknown service key")
            bad_docker = Path(d) / "Dockerfile"
            bad_docker.write_text("FROM python\nRUN cd /tmp && pip install requests\n")
            if run([self.a.hadolint, "--no-color", str(bad_docker)], ok_codes=(0, 1)).returncode == 0:
                raise CheckFailed("hadolint accepted an untagged base image")
        import jsonschema

        manifest = yaml.safe_load((DEPLOY / "slack-app-manifest.yaml").read_text())
        manifest["features"]["shortcuts"] = [{"name": "A shortcut name over 24 chars", "type": "message",
                                              "callback_id": "x", "description": "x"}]
        if jsonschema.Draft7Validator(SLACK_MANIFEST_SCHEMA).is_valid(manifest):
            raise CheckFailed("the Slack manifest schema accepted a shortcut name of 29 characters")
        return "each validator rejects a deliberately broken input"


# ---- helpers ---------------------------------------------------------------------------

def parse_dockerfile(text: str) -> list[dict[str, str]]:
    """Instructions with their line continuations joined (comments and parser directives dropped)."""
    out: list[dict[str, str]] = []
    buf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        cmd, _, value = buf.partition(" ")
        out.append({"cmd": cmd.upper(), "value": value.strip()})
        buf = ""
    return out


def parse_dotenv(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, _, v = line.partition("=")
        env[k.strip()] = v.strip().strip("'\"")
    return env


_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate_str(s: str, env: dict[str, str]) -> str:
    """Compose's interpolation: $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e},
    ${VAR:+r}, ${VAR+r}; $$ is a literal $."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        val = env.get(name)
        present, nonempty = val is not None, bool(val)
        if op in (":-", "-"):
            return val if (nonempty if op == ":-" else present) else arg  # type: ignore[return-value]
        if op in (":?", "?"):
            if not (nonempty if op == ":?" else present):
                raise CheckFailed(f"required variable {name} is missing: {arg}")
            return val  # type: ignore[return-value]
        if op in (":+", "+"):
            return arg if (nonempty if op == ":+" else present) else ""
        return val or ""
    return _VAR.sub(sub, s)


def interpolate(obj: Any, env: dict[str, str]) -> Any:
    if isinstance(obj, str):
        return interpolate_str(obj, env)
    if isinstance(obj, list):
        return [interpolate(x, env) for x in obj]
    if isinstance(obj, dict):
        return {k: interpolate(v, env) for k, v in obj.items()}
    return obj


def compose_references(doc: dict[str, Any]) -> None:
    """What `docker compose config` would also refuse: dangling names and missing files."""
    services = doc["services"]
    volumes = set(doc.get("volumes") or {})
    secrets = set(doc.get("secrets") or {})
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep, spec in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            assert dep in services, f"{name} depends on unknown service {dep}"
            if (spec or {}).get("condition") == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy; it has no healthcheck"
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith((".", "/")):
                assert (DEPLOY / src).resolve().exists(), f"{name}: bind mount source {src} does not exist"
            elif src:
                assert src in volumes, f"{name}: volume {src} is not declared"
        for sec in svc.get("secrets") or []:
            src = sec if isinstance(sec, str) else sec["source"]
            assert src in secrets, f"{name}: secret {src} is not declared"
        build = svc.get("build")
        if build:
            ctx = DEPLOY / (build if isinstance(build, str) else build.get("context", "."))
            assert ctx.is_dir(), f"{name}: build context {ctx} missing"
            dockerfile = ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} missing"


# Slack's app manifest (api.slack.com/reference/manifests): the parts recon uses, with
# the limits Slack documents (a shortcut's name at most 24 characters, its description 150).
SLACK_MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["display_information", "features", "oauth_config", "settings"],
    "properties": {
        "display_information": {"type": "object", "required": ["name"],
                                "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 35}}},
        "features": {"type": "object", "properties": {
            "slash_commands": {"type": "array", "items": {
                "type": "object", "required": ["command", "description"], "additionalProperties": False,
                "properties": {"command": {"type": "string", "pattern": "^/[a-z0-9_-]{1,31}$"},
                               "url": {"type": "string"}, "description": {"type": "string", "maxLength": 2000},
                               "usage_hint": {"type": "string", "maxLength": 1000},
                               "should_escape": {"type": "boolean"}}}},
            "shortcuts": {"type": "array", "maxItems": 10, "items": {
                "type": "object", "required": ["name", "type", "callback_id", "description"],
                "additionalProperties": False,
                "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 24},
                               "type": {"enum": ["message", "global"]},
                               "callback_id": {"type": "string", "minLength": 1, "maxLength": 255},
                               "description": {"type": "string", "minLength": 1, "maxLength": 150}}}},
        }},
        "oauth_config": {"type": "object", "required": ["scopes"], "properties": {"scopes": {
            "type": "object", "properties": {"bot": {
                "type": "array", "uniqueItems": True,
                "items": {"type": "string", "pattern": "^[a-z_.]+(:[a-z_.]+)*$"}}}}}},
        "settings": {"type": "object", "required": ["event_subscriptions", "interactivity"], "properties": {
            "event_subscriptions": {"type": "object", "required": ["request_url", "bot_events"]},
            "interactivity": {"type": "object", "required": ["is_enabled"],
                              "properties": {"is_enabled": {"type": "boolean"}}},
        }},
    },
}

GRAFANA_ALERTING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "contactPoints"],
    "properties": {
        "apiVersion": {"const": 1},
        "contactPoints": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["orgId", "name", "receivers"],
            "additionalProperties": False,
            "properties": {
                "orgId": {"type": "integer"}, "name": {"type": "string"},
                "receivers": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["uid", "type", "settings"], "additionalProperties": False,
                    "properties": {
                        "uid": {"type": "string", "maxLength": 40}, "type": {"const": "webhook"},
                        "disableResolveMessage": {"type": "boolean"},
                        "settings": {"type": "object", "required": ["url"], "additionalProperties": False,
                                     "properties": {
                                         "url": {"type": "string"}, "httpMethod": {"enum": ["POST", "PUT"]},
                                         "authorization_scheme": {"type": "string"},
                                         "authorization_credentials": {"type": "string"},
                                         "maxAlerts": {"type": ["integer", "string"]},
                                         "title": {"type": "string"}, "message": {"type": "string"}}}}}}}}},
        "policies": {"type": "array", "items": {"type": "object", "required": ["orgId", "receiver"]}},
    },
    "additionalProperties": False,
}

GRAFANA_DATASOURCES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "datasources"],
    "properties": {
        "apiVersion": {"const": 1},
        "datasources": {"type": "array", "items": {
            "type": "object", "required": ["name", "type", "access", "url"],
            "properties": {"name": {"type": "string"}, "uid": {"type": "string"},
                           "type": {"type": "string"}, "access": {"enum": ["proxy", "direct"]},
                           "url": {"type": "string", "pattern": "^https?://"},
                           "isDefault": {"type": "boolean"}, "jsonData": {"type": "object"}},
            "additionalProperties": False}},
    },
    "additionalProperties": False,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--helm", required=True)
    p.add_argument("--hadolint", required=True)
    p.add_argument("--check-jsonschema", required=True)
    p.add_argument("--node-modules", required=True)
    p.add_argument("--amtool", required=True)
    p.add_argument("--out", type=Path, help="keep the rendered and parsed artifacts here, as JSON")
    a = p.parse_args()
    keep = a.out is not None
    out = a.out or Path(tempfile.mkdtemp(prefix="validate-deploy-"))
    out.mkdir(parents=True, exist_ok=True)
    v = Validator(a, out)
    t0 = time.perf_counter()
    v.check("Dockerfile: hadolint + multi-stage, non-root, HEALTHCHECK /healthz", v.dockerfile)
    v.check("Helm chart: helm lint --strict", v.helm_lint)
    v.check("Helm chart: helm template (defaults) + kubernetes-validate", v.chart_default)
    v.check("Helm chart: other values render valid, bad values are refused", v.chart_variants)
    v.check("Helm chart: ServiceMonitor (serviceMonitor.enabled=true)", v.chart_servicemonitor)
    v.check("Helm chart: retention CronJob (retention.cronJob.enabled=true)", v.chart_retention)
    v.check("compose.yaml: Compose Specification schema + references", v.compose)
    v.check("Alertmanager: amtool check-config (receiver example, compose config)", v.alertmanager)
    v.check("Grafana provisioning (contact point, data sources)", v.grafana)
    v.check("Tempo config", v.tempo)
    v.check("PostgreSQL init script", v.postgres_init)
    v.check("Slack app manifest", v.slack_manifest)
    v.check("validators reject broken input", v.validators_bite)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    took = time.perf_counter() - t0
    if v.failures:
        print(f"validate-deploy: {len(v.failures)} of {v.count} checks FAILED ({took:.1f}s)")
        return 1
    print(f"validate-deploy: all {v.count} checks passed ({took:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
