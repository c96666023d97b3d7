"""The kolla contract, checked: the keystone role on the keystone image of upstream kolla's kolla-build.

A testbed (3 control nodes) gets the control plane of scripts/kolla/contract-check.yml: HAProxy
and keepalived (the VIP), MariaDB Galera and memcached from Allmende's own images, and keystone
from the role as it is, with only the image variables pointing it at the image that
scripts/kolla-build-keystone.py built with kolla-build and pushed to the local registry
(allmende_image_namespace: kolla, allmende_image_tags: {keystone: <release>-debian-trixie}).
Then `openstack token issue` runs from this machine against the VIP, and the testbed goes away.

Usage: .venv/bin/python scripts/kolla-contract-check.py [--name kolla] [--release 2026.1] [--skip-build] [--keep]
(ALLMENDE_STATE_DIR, ALLMENDE_REGISTRY_PORT as for every command; docs/images.md.)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from allmende import paths
from allmende.testbed import Testbed

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ALLMENDE_IMAGES = ["mariadb", "memcached", "haproxy", "keepalived"]
NAMESPACE = "kolla"


def log(msg: str) -> None:
    print(f"kolla-contract-check: {msg}", flush=True)


def run(cmd: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]


def step(name: str, times: dict[str, float], cmd: list[str], timeout: float, **kwargs: object) -> None:
    start = time.monotonic()
    run(cmd, timeout, **kwargs)
    times[name] = time.monotonic() - start
    log(f"{name}: {times[name]:.0f}s")


def secrets(tb: Testbed) -> dict[str, str]:
    store = paths.collection_module("plugins/plugin_utils/secret_store.py", "allmende_secret_store")
    return store.SecretStore(str(tb.inventory_dir)).read_all()


def token_issue(tb: Testbed, vip: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OS_AUTH_URL": f"http://{vip}:5000/v3",
        "OS_USERNAME": "admin",
        "OS_PASSWORD": secrets(tb)["keystone_admin"],
        "OS_PROJECT_NAME": "admin",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_INTERFACE": "public",
    }
    log(f"$ openstack token issue (OS_AUTH_URL={env['OS_AUTH_URL']}, user admin)")
    proc = subprocess.run(
        [str(BIN / "openstack"), "token", "issue", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"openstack token issue failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def running_images(tb: Testbed) -> dict[str, str]:
    """The image each node's keystone container runs, as podman on the node reports it."""
    found = {}
    for node in tb.nodes:
        if "control" not in node.groups:
            continue
        remote = ["sudo", "podman", "inspect", "--format", "{{.ImageName}} {{.State.Status}}", "keystone"]
        proc = subprocess.run(
            ["ssh", "-F", str(tb.ssh_config), node.name, shlex.join(remote)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        found[node.name] = proc.stdout.strip() or proc.stderr.strip()[-200:]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=os.environ.get("ALLMENDE_TESTBED_NAME") or "kolla", help="testbed name")
    parser.add_argument("--release", default="2026.1")
    parser.add_argument("--skip-build", action="store_true", help="push the kolla image built before")
    parser.add_argument("--keep", action="store_true", help="leave testbed and registry up")
    args = parser.parse_args(argv)

    allmende = str(BIN / "allmende")
    port = os.environ.get("ALLMENDE_REGISTRY_PORT") or ""
    tag = f"{args.release}-debian-trixie"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ALLMENDE_TESTBED_NAME=args.name)
    times: dict[str, float] = {}
    began = time.monotonic()
    ok = False
    try:
        step("testbed up", times, [allmende, "testbed", "up", "--name", args.name, "--nodes", "3"], 1800, env=env)
        tb = Testbed.load(args.name)
        assert tb is not None
        registry = [allmende, "registry", "up", "--testbed", args.name] + (["--port", port] if port else [])
        step("registry up", times, registry, 600, env=env)
        step(
            "allmende images",
            times,
            [allmende, "images", "build", "--release", args.release, "--only", *ALLMENDE_IMAGES],
            3600,
            env=env,
        )
        push = [allmende, "images", "push", "--release", args.release, "--only", *ALLMENDE_IMAGES]
        step("allmende images push", times, push, 1800, env=env)
        kolla = [sys.executable, str(ROOT / "scripts" / "kolla-build-keystone.py"), "--release", args.release]
        kolla += ["--namespace", NAMESPACE, "--tag", tag] + (["--skip-build"] if args.skip_build else [])
        step("kolla-build keystone", times, kolla, 5400, env=env)

        playbook = [
            str(BIN / "ansible-playbook"),
            "-i",
            str(tb.inventory_dir),
            str(ROOT / "scripts" / "kolla" / "contract-check.yml"),
            "-e",
            json.dumps({"kolla_image_namespace": NAMESPACE, "kolla_image_tag": tag}),
        ]
        step("deploy", times, playbook, 3600, env=env)

        vip = tb_vip(tb)
        for node, image in running_images(tb).items():
            log(f"{node}: keystone container: {image}")
        result = token_issue(tb, vip)
        log(
            f"openstack token issue against http://{vip}:5000/v3: token of {len(result['id'])} characters,"
            f" expires {result['expires']}, project {result['project_id']}, user {result['user_id']}"
        )
        ok = True
    finally:
        if not args.keep:
            for cmd in ([allmende, "testbed", "down", "--name", args.name], [allmende, "registry", "down"]):
                subprocess.run(cmd, check=False, timeout=900, env=env)
        log(
            f"{'PASSED' if ok else 'FAILED'} after {time.monotonic() - began:.0f}s "
            + ", ".join(f"{k} {v:.0f}s" for k, v in times.items())
        )
    return 0 if ok else 1


def tb_vip(tb: Testbed) -> str:
    # inventories/testbed/group_vars/all/loadbalancer.yml: the .250 of the management subnet
    return ".".join(tb.mgmt_subnet.split("/")[0].split(".")[:3]) + ".250"


if __name__ == "__main__":
    sys.exit(main())
