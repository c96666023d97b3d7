"""`allmende images build` twice (the second builds nothing), the kolla contract of a real image on
127.0.0.1, and the local registry: push from this machine, pull and run on a testbed node over TLS."""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest
import yaml
from conftest import allmende

from allmende import testbed

NAME = os.environ.get("ALLMENDE_ITEST_IMAGES_TESTBED", "im-itest")
IMAGE = "memcached"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memcached_answers(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"version\r\n")
                return s.recv(100).decode()
        except OSError:
            time.sleep(0.5)
    return ""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if shutil.which("podman") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("podman is not installed (scripts/host-prereqs.sh); CI must run the image tests")
        pytest.skip("podman is not installed (scripts/host-prereqs.sh)")
    state = tmp_path_factory.mktemp("state")
    saved = os.environ.get("ALLMENDE_STATE_DIR")
    os.environ["ALLMENDE_STATE_DIR"] = str(state)
    yield state
    if not os.environ.get("ALLMENDE_KEEP_TESTBED"):
        allmende("registry", "down")
        allmende("testbed", "down", "--name", NAME)
    if saved is None:
        os.environ.pop("ALLMENDE_STATE_DIR", None)
    else:
        os.environ["ALLMENDE_STATE_DIR"] = saved


@pytest.fixture(scope="module")
def built(env):
    first = allmende("images", "build", "--only", IMAGE, "--json", timeout=1800)
    assert first.returncode == 0, first.stdout + first.stderr
    return json.loads(first.stdout)


def test_a_second_build_builds_nothing(built):
    assert [i["name"] for i in built["images"]] == ["base", IMAGE]
    second = allmende("images", "build", "--only", IMAGE)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to build: all 2 images are up to date" in second.stdout
    again = json.loads(allmende("images", "build", "--only", IMAGE, "--json").stdout)
    assert [i["action"] for i in again["images"]] == ["present", "present"]
    assert [i["tag"] for i in again["images"]] == [i["tag"] for i in built["images"]]
    for image in again["images"]:
        assert image["tag"].startswith(f"{again['release']}-") and image["size"] > 0
        label = subprocess.run(
            ["podman", "image", "inspect", "--format", '{{ index .Labels "allmende.inputs" }}', image["ref"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert label == image["inputs"]


def test_the_image_honours_the_kolla_contract_on_localhost(built, tmp_path):
    ref = built["images"][-1]["ref"]
    port = free_port()
    config = tmp_path / "config"
    config.mkdir()
    (config / "extra.conf").write_text("tuned\n")
    (config / "config.json").write_text(
        json.dumps(
            {
                "command": f"/usr/bin/memcached -l 127.0.0.1 -p {port} -m 16",
                "config_files": [
                    {
                        "source": "/var/lib/kolla/config_files/extra.conf",
                        "dest": "/etc/memcached.d/extra.conf",
                        "owner": "memcache",
                        "perm": "0640",
                    },
                    {"source": "/var/lib/kolla/config_files/absent", "dest": "/etc/absent", "optional": True},
                ],
                "permissions": [{"path": "/var/log/kolla/memcached", "owner": "memcache:memcache", "recurse": True}],
            }
        )
    )
    container = f"allmende-{NAME}-contract"
    run = [
        "podman",
        "run",
        "-d",
        "--name",
        container,
        "--network",
        "host",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=10000:10000",
        "--ulimit",
        "nproc=4096:4096",
        "-v",
        f"{config}:/var/lib/kolla/config_files:ro",
        ref,
    ]
    try:
        subprocess.run(run, check=True, capture_output=True, text=True)
        assert memcached_answers(port).startswith("VERSION 1.6"), subprocess.getoutput(f"podman logs {container}")
        stat = subprocess.run(
            ["podman", "exec", container, "stat", "-c", "%U %a", "/etc/memcached.d/extra.conf"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert stat.stdout.split() == ["memcache", "640"]
        whoami = subprocess.run(["podman", "exec", container, "id", "-un"], capture_output=True, text=True, check=True)
        assert whoami.stdout.strip() == "memcache"
        logs = subprocess.getoutput(f"podman logs {container}")
        assert "Running command: '/usr/bin/memcached" in logs
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "2", container], capture_output=True, check=False)


def test_a_node_pulls_from_the_local_registry_over_tls(built, tmp_path):
    proc = allmende("testbed", "up", "--name", NAME, "--nodes", "1", "--disks", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tb = testbed.Testbed.load(NAME)
    port = free_port()
    up = allmende("registry", "up", "--port", str(port), "--testbed", NAME)
    assert up.returncode == 0, up.stdout + up.stderr
    status = json.loads(allmende("registry", "status").stdout)
    gateway = next(entry["address"] for entry in status["listeners"] if not entry["address"].startswith("127."))
    assert status["running"] and {e["address"] for e in status["listeners"]} == {f"127.0.0.1:{port}", gateway}
    # Only the project's addresses: nothing listens on the wildcard address for this port.
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True)
    local = sorted(line.split()[3] for line in listening.stdout.splitlines())
    assert local == sorted({f"127.0.0.1:{port}", gateway}), listening.stdout
    pushed = allmende("images", "push", "--only", IMAGE)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "pushed " in pushed.stdout
    # The registry holds that image now (same config digest): a second push sends nothing.
    again = allmende("images", "push", "--only", IMAGE)
    assert again.returncode == 0 and "nothing to push" in again.stdout, again.stdout + again.stderr
    # The testbed's inventory learns registry and tag (inventories/testbed/group_vars/all/images.yml).
    recorded = yaml.safe_load((tb.dir / "images.yml").read_text())
    assert recorded["allmende_image_tags"][IMAGE] == built["images"][-1]["tag"]
    assert recorded["allmende_image_registry"] == gateway
    tag = built["images"][-1]["tag"]
    node = tb.nodes[0].container
    # The node's root is overlayfs: its podman keeps images in vfs storage (the point here is the pull),
    # configured before podman first runs.
    storage = tmp_path / "storage.conf"
    storage.write_text(
        '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n'
    )
    testbed.node_exec(node, "mkdir", "-p", "/etc/containers")
    subprocess.run(["podman", "cp", str(storage), f"{node}:/etc/containers/storage.conf"], check=True)
    install = testbed.node_exec(
        node,
        "sh",
        "-c",
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman crun >/dev/null",
        timeout=600,
    )
    assert install.returncode == 0
    # The node trusts the project CA for this address only (no insecure registry anywhere).
    testbed.node_exec(node, "test", "-f", f"/etc/containers/certs.d/{gateway}/ca.crt")
    image = f"{gateway}/allmende/{IMAGE}:{tag}"
    pull = testbed.node_exec(node, "podman", "pull", "-q", image, check=False, timeout=600)
    assert pull.returncode == 0, pull.stderr
    answer = testbed.node_exec(
        node,
        "sh",
        "-c",
        "mkdir -p /tmp/kolla && printf '%s' '{\"command\": \"/usr/bin/memcached -l 127.0.0.1 -p 11311\"}' "
        f"> /tmp/kolla/config.json && podman run -d --name mc --network host --runtime crun --cgroups=disabled "
        f"--ulimit nofile=10000:10000 --ulimit nproc=4096:4096 -v /tmp/kolla:/var/lib/kolla/config_files:ro {image} "
        ">/dev/null && for i in $(seq 30); do python3 -c \"import socket; s=socket.create_connection(('127.0.0.1', "
        "11311), 2); s.sendall(b'version\\r\\n'); print(s.recv(64).decode())\" 2>/dev/null && break; sleep 1; done",
        check=False,
        timeout=120,
    )
    assert "VERSION 1.6" in answer.stdout, answer.stdout + answer.stderr
    # Without the CA the same pull is refused: TLS is verified, not skipped.
    testbed.node_exec(node, "rm", "-rf", f"/etc/containers/certs.d/{gateway}")
    refused = testbed.node_exec(node, "podman", "pull", "-q", image.replace(IMAGE, "nope"), check=False)
    assert refused.returncode != 0 and "certificate" in refused.stderr, refused.stderr
