"""The local testbed: systemd "bare-metal" hosts as privileged podman containers.

Each node gets a management NIC (podman network with a subnet the testbed owns, reachable
from this machine over SSH), a second NIC on an address-less L2 network that the `network`
role configures, and data disks that are loop devices on sparse files. The base image is
built here with debootstrap; no image registry is involved.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allmende import paths

LABEL = "allmende.testbed"
IMAGE_REPOSITORY = "localhost/allmende-node"
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")
DEFAULT_SUBNET_INDEX = 10
# Machine-wide, like the podman networks it protects (not in the per-user state directory).
NETWORK_LOCK = os.path.join("/run/lock" if os.path.isdir("/run/lock") else "/tmp", "allmende-testbed-networks.lock")
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "iproute2",
    "sudo",
    "openssh-server",
    "udev",
    "kmod",
    "procps",
    "iputils-ping",
    "ca-certificates",
    "less",
)
# Bumped when the image recipe below changes in a way the package list does not show.
RECIPE_VERSION = "6"
NODE_ULIMITS = ("nofile=20000:20000", "nproc=4096:4096")
# Suites that configure apt in deb822 format (/etc/apt/sources.list.d/debian.sources).
DEB822_SUITES = frozenset({"trixie"})


class TestbedError(RuntimeError):
    pass


Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def run(
    cmd: Sequence[str], *, check: bool = True, input_bytes: bytes | None = None, timeout: float | None = 600
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            list(cmd),
            input=input_bytes.decode() if input_bytes else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise TestbedError(f"{cmd[0]} is not installed (run scripts/host-prereqs.sh)") from exc
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip()
        raise TestbedError(f"{' '.join(cmd)} failed (rc={proc.returncode}): {err[-800:]}")
    return proc


@dataclass
class Disk:
    file: str
    device: str
    size: str


@dataclass
class Nic:
    name: str
    network: str
    mac: str
    address: str | None = None  # CIDR, only where podman assigns it (management)


@dataclass
class Node:
    name: str
    container: str
    nics: list[Nic]
    disks: list[Disk]
    groups: list[str]

    @property
    def address(self) -> str:
        mgmt = next(n for n in self.nics if n.network == "mgmt")
        assert mgmt.address
        return mgmt.address.split("/")[0]


@dataclass
class Testbed:
    name: str
    image: str
    mgmt_network: str
    mgmt_subnet: str
    data_network: str
    nodes: list[Node] = field(default_factory=list)
    netbox_url: str | None = None  # set when the testbed is registered in NetBox

    @property
    def dir(self) -> Path:
        return testbed_dir(self.name)

    @property
    def inventory_dir(self) -> Path:
        return self.dir / "inventory"

    @property
    def ssh_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """The nodes' SSH host keys, read from each container when it is created (never over the network)."""
        return self.dir / "known_hosts"

    def ssh_args(self) -> str:
        """`ansible_ssh_common_args` for the nodes: host keys checked against known_hosts."""
        return f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"

    @property
    def ssh_config(self) -> Path:
        """`ssh -F <this> node1` logs in to a node as root."""
        return self.dir / "ssh_config"

    def group(self, name: str) -> list[str]:
        return [n.name for n in self.nodes if name in n.groups]

    def testinfra_hosts(self) -> list[str]:
        return [f"ssh://{n.name}?ssh_config={self.ssh_config}" for n in self.nodes]

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.dir / "state.json")

    @classmethod
    def load(cls, name: str) -> Testbed | None:
        path = testbed_dir(name) / "state.json"
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            nodes = [
                Node(
                    n["name"],
                    n["container"],
                    [Nic(**x) for x in n["nics"]],
                    [Disk(**d) for d in n["disks"]],
                    n["groups"],
                )
                for n in data.pop("nodes")
            ]
            return cls(nodes=nodes, **data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise TestbedError(
                f"testbed {name}: state file {path} is unreadable or corrupt ({exc.__class__.__name__}: {exc}); "
                f"remove the testbed with `allmende testbed down --name {name}`"
            ) from exc


def testbed_dir(name: str) -> Path:
    return paths.state_dir() / "testbeds" / name


def validate_name(name: str) -> None:
    if not name or not all(c.isalnum() or c == "-" for c in name) or len(name) > 20 or name.startswith("-"):
        raise TestbedError(f"testbed name {name!r}: use 1-20 letters, digits and dashes")


def prefix(name: str) -> str:
    return f"allmende-{name}"


def mac_for(name: str, node: int, nic: int) -> str:
    """Stable, locally administered MAC per testbed, node and NIC."""
    digest = hashlib.sha256(name.encode()).digest()
    return f"02:a1:{digest[0]:02x}:{digest[1]:02x}:{nic:02x}:{node:02x}"


def groups_for(index: int, count: int) -> list[str]:
    """Hyperconverged layout: the first three nodes run the control plane and network gateways."""
    groups = ["compute", "storage"]
    if index <= min(3, count):
        groups = ["control", "network", *groups]
    return groups


# ---------------------------------------------------------------- base image


def release_suite(name: str | None = None) -> str:
    """The node OS suite (base.suite) of a release manifest; default: the current release."""
    path = paths.collection_root() / "plugins" / "module_utils" / "release.py"
    spec = importlib.util.spec_from_file_location("allmende_release", path)
    if spec is None or spec.loader is None:
        raise TestbedError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        data = module.load(str(paths.collection_root()), name)
    except module.ManifestError as exc:
        raise TestbedError(f"release manifest: {exc}") from exc
    return str(data["base"]["suite"])


def image_for(suite: str) -> str:
    return f"{IMAGE_REPOSITORY}:{suite}"


def recipe_hash(suite: str, mirror: str) -> str:
    text = "|".join([RECIPE_VERSION, suite, mirror, *BASE_PACKAGES])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_label(image: str) -> str | None:
    proc = run(["podman", "image", "inspect", "--format", '{{ index .Labels "allmende.recipe" }}', image], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def apt_valid_until_disabled() -> bool:
    """Mirror this machine's apt freshness setting into the nodes (needed for frozen snapshot mirrors)."""
    proc = run(["apt-config", "dump", "Acquire::Check-Valid-Until"], check=False)
    return '"false"' in proc.stdout


def ensure_image(
    image: str | None = None, suite: str | None = None, mirror: str | None = None, log: Log = _quiet
) -> str:
    """Build the node image of `suite` (default: the current release's) unless it is up to date."""
    suite = suite or release_suite()
    image = image or image_for(suite)
    mirror = mirror or os.environ.get("ALLMENDE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    wanted = recipe_hash(suite, mirror)
    if image_label(image) == wanted:
        return image
    log(f"building base image {image} with debootstrap ({suite}, about a minute)")
    if shutil.which("debootstrap") is None:
        raise TestbedError("debootstrap is not installed (run scripts/host-prereqs.sh)")
    work = Path(tempfile.mkdtemp(prefix="allmende-rootfs-", dir=paths.cache_dir()))
    rootfs = work / "rootfs"
    try:
        run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", suite, str(rootfs), mirror],
            timeout=1200,
        )
        _configure_rootfs(rootfs, suite, mirror)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            [
                "podman",
                "import",
                "--change",
                "CMD=/sbin/init",
                "--change",
                "STOPSIGNAL=SIGRTMIN+3",
                "--change",
                f"LABEL=allmende.recipe={wanted}",
                "-",
                image,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise TestbedError(f"podman import failed: {imp.stderr.strip()[-500:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image


def _configure_rootfs(rootfs: Path, suite: str, mirror: str) -> None:
    security = mirror.rsplit("/", 1)[0] + "/debian-security"
    if suite in DEB822_SUITES:
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
            f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\nSigned-By: {keyring}\n\n"
            f"Types: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\nSigned-By: {keyring}\n"
        )
    else:
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {mirror} {suite} main\ndeb {mirror} {suite}-updates main\ndeb {security} {suite}-security main\n"
        )
    apt_conf = ['APT::Install-Recommends "false";', 'APT::Keep-Downloaded-Packages "true";']
    if apt_valid_until_disabled():
        apt_conf.append('Acquire::Check-Valid-Until "false";')
    (rootfs / "etc/apt/apt.conf.d/80allmende-testbed").write_text("\n".join(apt_conf) + "\n")
    # Fresh SSH host keys and machine-id per node, not one set baked into the image.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    dropin = rootfs / "etc/systemd/system/ssh.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "hostkeys.conf").write_text(
        "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n"
    )
    # Empty: systemd gives every container its own id at first boot (from podman's container_uuid).
    # debootstrap also leaves dbus's copy, which systemd would prefer and every node would share;
    # Debian links that copy to /etc/machine-id.
    (rootfs / "etc/machine-id").write_text("")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    for unit in (
        "systemd-udevd.service",
        "systemd-udevd-control.socket",
        "systemd-udevd-kernel.socket",
        "getty.target",
        "console-getty.service",
        "systemd-timesyncd.service",
        # A container cannot load kernel modules; the unit would only fail (trixie: systemd degraded).
        "systemd-modules-load.service",
    ):
        link = rootfs / "etc/systemd/system" / unit
        if not link.exists():
            link.symlink_to("/dev/null")
    (rootfs / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    # podman 5 warns on every call on a cgroups v1 machine; the nodes inherit the machine's cgroups.
    with (rootfs / "etc/environment").open("a") as env:
        env.write("PODMAN_IGNORE_CGROUPSV1_WARNING=1\n")


# ---------------------------------------------------------------- podman objects


def podman_json(*args: str) -> Any:
    proc = run(["podman", *args, "--format", "json"], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    return json.loads(proc.stdout)


def used_subnets() -> set[str]:
    subnets = set()
    for net in podman_json("network", "ls"):
        for sub in net.get("subnets") or []:
            subnets.add(sub.get("subnet"))
    return subnets


@contextlib.contextmanager
def network_lock() -> Iterator[None]:
    """Serialise subnet choice and network creation between concurrent `testbed up` runs."""
    fd = os.open(NETWORK_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def pick_subnet(requested: str | None) -> str:
    if requested:
        net = ipaddress.ip_network(requested, strict=True)
        if net.prefixlen > 26:
            raise TestbedError(f"subnet {requested}: needs room for the nodes (use /26 or larger)")
        return str(net)
    used = used_subnets()
    subnets = list(SUBNET_POOL.subnets(new_prefix=24))
    ordered = subnets[DEFAULT_SUBNET_INDEX:] + subnets[:DEFAULT_SUBNET_INDEX]
    for net in ordered:
        if str(net) not in used:
            return str(net)
    raise TestbedError(f"no free /24 left in {SUBNET_POOL}")


def network_subnet(network: str) -> str | None:
    data = podman_json("network", "inspect", network)
    if not data:
        return None
    subnets = data[0].get("subnets") or []
    return subnets[0]["subnet"] if subnets else ""


def ensure_networks(tb: Testbed, log: Log) -> None:
    existing = network_subnet(tb.mgmt_network)
    if existing is None:
        log(f"creating network {tb.mgmt_network} ({tb.mgmt_subnet})")
        gateway = str(next(ipaddress.ip_network(tb.mgmt_subnet).hosts()))
        run(
            [
                "podman",
                "network",
                "create",
                "--label",
                f"{LABEL}={tb.name}",
                "--subnet",
                tb.mgmt_subnet,
                "--gateway",
                gateway,
                tb.mgmt_network,
            ]
        )
    elif existing != tb.mgmt_subnet:
        raise TestbedError(f"network {tb.mgmt_network} exists with subnet {existing}, expected {tb.mgmt_subnet}")
    if network_subnet(tb.data_network) is None:
        log(f"creating network {tb.data_network} (L2 only, addresses come from the inventory)")
        run(
            [
                "podman",
                "network",
                "create",
                "--label",
                f"{LABEL}={tb.name}",
                "--internal",
                "--disable-dns",
                "--ipam-driver",
                "none",
                tb.data_network,
            ]
        )


# ---------------------------------------------------------------- disks


def loop_for(file: Path) -> str | None:
    proc = run(["losetup", "-j", str(file)], check=False)
    line = proc.stdout.strip().splitlines()
    return line[0].split(":", 1)[0] if line else None


def ensure_disk(file: Path, size: str) -> str:
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        run(["truncate", "-s", size, str(file)])
    device = loop_for(file)
    if device is None:
        device = run(["losetup", "-f", "--show", str(file)]).stdout.strip()
    return device


def detach_disk(file: Path) -> None:
    device = loop_for(file)
    while device:
        run(["losetup", "-d", device], check=False)
        again = loop_for(file)
        if again == device:
            raise TestbedError(f"cannot detach {device} ({file})")
        device = again


# ---------------------------------------------------------------- nodes


def container_state(container: str) -> str | None:
    data = podman_json("container", "inspect", container)
    return data[0]["State"]["Status"] if data else None


def apt_archive(node: Node) -> Path:
    """Per-node package archive kept between testbeds (apt cannot share one between hosts: it locks it)."""
    path = paths.cache_dir() / "apt-archives" / node.container
    (path / "partial").mkdir(parents=True, exist_ok=True)
    return path


def container_storage(tb: Testbed, node: Node) -> Path:
    """The node's /var/lib/containers, in the testbed's directory (removed by `down`)."""
    path = tb.dir / "containers" / node.name
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def image_suite(image: str) -> str:
    return image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""


def create_node(tb: Testbed, node: Node, apt_cache: Path) -> None:
    mgmt, data = node.nics
    cmd = [
        "podman",
        "run",
        "-d",
        "--name",
        node.container,
        "--hostname",
        node.name,
        "--privileged",
        "--runtime",
        "runc",
        "--systemd=always",
        "--no-hosts",
        "--label",
        f"{LABEL}={tb.name}",
        "--label",
        f"allmende.node={node.name}",
        "--network",
        f"{tb.mgmt_network}:interface_name={mgmt.name},ip={node.address},mac={mgmt.mac}",
        "--network",
        f"{tb.data_network}:interface_name={data.name},mac={data.mac}",
        "-v",
        f"{apt_cache}:/var/cache/apt/archives",
        # The node's container storage on the machine's filesystem, not on the node's overlay root:
        # overlay works there (instead of vfs, which copies every layer), and podman 5 needs it.
        "-v",
        f"{container_storage(tb, node)}:/var/lib/containers",
    ]
    for limit in NODE_ULIMITS:
        cmd += ["--ulimit", limit]
    cmd += [tb.image, "/sbin/init"]
    run(cmd)


def node_exec(container: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run(["podman", "exec", container, *args], check=check, timeout=timeout)


def wait_booted(container: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        proc = node_exec(container, "systemctl", "is-system-running", check=False, timeout=30)
        state = proc.stdout.strip() or "unknown"
        if state in ("running", "degraded"):
            return state
        time.sleep(1)
    raise TestbedError(f"{container}: systemd did not finish booting within {timeout}s (state {state})")


def install_key(container: str, pubkey: str) -> None:
    node_exec(
        container,
        "sh",
        "-c",
        "install -d -m 0700 /root/.ssh && umask 077 && "
        f"grep -qxF '{pubkey}' /root/.ssh/authorized_keys 2>/dev/null || "
        f"echo '{pubkey}' >> /root/.ssh/authorized_keys",
    )


def wait_ssh(tb: Testbed, node: Node, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = run(["ssh", *ssh_options(tb), f"root@{node.address}", "true"], check=False, timeout=20)
        if proc.returncode == 0:
            return
        last = proc.stderr.strip()
        time.sleep(1)
    raise TestbedError(f"{node.name}: SSH to {node.address} not answering after {timeout}s: {last}")


def ssh_options(tb: Testbed) -> list[str]:
    return [
        "-i",
        str(tb.ssh_key),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={tb.known_hosts}",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=5",
    ]


def host_keys(container: str, timeout: float = 60) -> list[str]:
    """The node's public SSH host keys, read through podman (sshd writes them at its first start)."""
    deadline = time.monotonic() + timeout
    while True:
        proc = node_exec(container, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub", check=False, timeout=30)
        keys = [" ".join(line.split()[:2]) for line in proc.stdout.splitlines() if len(line.split()) >= 2]
        if keys or time.monotonic() > deadline:
            break
        time.sleep(1)
    if not keys:
        raise TestbedError(f"{container}: no SSH host keys after {timeout}s (is ssh.service running?)")
    return keys


def write_known_hosts(tb: Testbed) -> Path:
    lines = []
    for node in tb.nodes:
        names = ",".join([node.name, node.container, node.address])
        lines += [f"{names} {key}" for key in host_keys(node.container)]
    tmp = tb.known_hosts.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(tb.known_hosts)
    return tb.known_hosts


def ensure_ssh_key(tb: Testbed) -> str:
    if not tb.ssh_key.exists():
        tb.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"allmende-testbed-{tb.name}", "-f", str(tb.ssh_key)])
    return Path(f"{tb.ssh_key}.pub").read_text().strip()


# ---------------------------------------------------------------- inventory


def write_ssh_config(tb: Testbed) -> Path:
    lines = [f"# Written by `allmende testbed up` for testbed {tb.name}."]
    for node in tb.nodes:
        lines += [
            f"Host {node.name} {node.container}",
            f"  HostName {node.address}",
            "  User root",
            f"  IdentityFile {tb.ssh_key}",
            "  IdentitiesOnly yes",
            "  StrictHostKeyChecking yes",
            f"  UserKnownHostsFile {tb.known_hosts}",
            "  LogLevel ERROR",
        ]
    tb.ssh_config.write_text("\n".join(lines) + "\n")
    return tb.ssh_config


def write_inventory(tb: Testbed, root: Path | None = None) -> Path:
    """An inventory directory: the allmende.cloud.testbed plugin reading this testbed, plus the
    collection's testbed group_vars."""
    inv = tb.inventory_dir
    inv.mkdir(parents=True, exist_ok=True)
    config = {"plugin": "allmende.cloud.testbed", "name": tb.name, "state_dir": str(paths.state_dir())}
    header = f"# Written by `allmende testbed up` for testbed {tb.name}; rewritten on every up.\n"
    (inv / "testbed.yml").write_text(header + yaml.safe_dump(config, sort_keys=False))
    root = root or paths.collection_root()
    source = root / "inventories" / "testbed" / "group_vars"
    target = inv / "group_vars"
    if target.exists():
        shutil.rmtree(target)
    if source.is_dir():
        shutil.copytree(source, target)
    return inv


# ---------------------------------------------------------------- up / down / status


def up(
    name: str = "default",
    nodes: int = 3,
    subnet: str | None = None,
    disks: int = 2,
    disk_size: str = "20G",
    image: str | None = None,
    log: Log = _quiet,
) -> Testbed:
    validate_name(name)
    if not 1 <= nodes <= 50:
        raise TestbedError(f"--nodes {nodes}: choose between 1 and 50")
    if not 0 <= disks <= 8:
        raise TestbedError(f"--disks {disks}: choose between 0 and 8")
    if shutil.which("podman") is None:
        raise TestbedError("podman is not installed (run scripts/host-prereqs.sh)")
    image = image or image_for(release_suite())
    tb = Testbed.load(name)
    if tb is not None and subnet and subnet != tb.mgmt_subnet:
        raise TestbedError(f"testbed {name} already uses subnet {tb.mgmt_subnet}; `down` it first to change")
    if tb is not None and tb.nodes and tb.image != image:
        raise TestbedError(f"testbed {name} runs {tb.image}, the release wants {image}; `down` it first to change")
    if tb is not None and len(tb.nodes) > nodes:
        log(f"testbed {name} has {len(tb.nodes)} nodes; keeping them (use `down` to shrink)")
    ensure_image(image, suite=image_suite(image) or None, log=log)
    pre = prefix(name)
    with network_lock():
        # podman networks are machine-wide: pick a free subnet and take it before another `up` can
        if tb is None:
            mgmt_net = f"{pre}-mgmt"
            tb = Testbed(name, image, mgmt_net, network_subnet(mgmt_net) or pick_subnet(subnet), f"{pre}-data")
        tb.image = image
        ensure_networks(tb, log)
    pubkey = ensure_ssh_key(tb)
    network = ipaddress.ip_network(tb.mgmt_subnet)
    count = max(nodes, len(tb.nodes))
    by_name = {n.name: n for n in tb.nodes}
    for index in range(1, count + 1):
        node_name = f"node{index}"
        node = by_name.get(node_name)
        disk_files = [tb.dir / "disks" / f"{node_name}-disk{d}.img" for d in range(1, disks + 1)]
        if node is None:
            node = Node(
                node_name,
                f"{pre}-{node_name}",
                [
                    Nic(
                        "eth0",
                        "mgmt",
                        mac_for(name, index, 0),
                        f"{network.network_address + 10 + index}/{network.prefixlen}",
                    ),
                    Nic("eth1", "data", mac_for(name, index, 1)),
                ],
                [],
                groups_for(index, count),
            )
            tb.nodes.append(node)
            by_name[node_name] = node
        else:
            disk_files = [Path(d.file) for d in node.disks]
        node.disks = [Disk(str(f), ensure_disk(f, disk_size), disk_size) for f in disk_files]
        state = container_state(node.container)
        if state is not None and state != "running":
            log(f"{node.name}: starting container ({state})")
            run(["podman", "start", node.container])
            state = "running"
        if state is not None and not _devices_visible(node):
            log(f"{node.name}: its disks are not the loop devices it was created with; recreating the container")
            run(["podman", "rm", "-f", "-t", "5", node.container])
            state = None
        if state is None:
            log(f"{node.name}: creating container {node.container} at {node.address}")
            create_node(tb, node, apt_archive(node))
    tb.nodes.sort(key=lambda n: int(n.name.removeprefix("node")))
    tb.save()
    for node in tb.nodes:
        boot = wait_booted(node.container)
        if boot == "degraded":
            failed = node_exec(node.container, "systemctl", "--failed", "--plain", "--no-legend", check=False)
            log(f"{node.name}: systemd degraded: {' '.join(failed.stdout.split()[:1]) or '?'}")
        install_key(node.container, pubkey)
    write_known_hosts(tb)
    for node in tb.nodes:
        wait_ssh(tb, node)
    write_ssh_config(tb)
    write_inventory(tb)
    return tb


def _devices_visible(node: Node) -> bool:
    missing = [
        d.device for d in node.disks if node_exec(node.container, "test", "-b", d.device, check=False).returncode != 0
    ]
    return not missing


def down(name: str = "default", log: Log = _quiet) -> list[str]:
    """Remove containers, networks, loop devices and disk files of a testbed; return what was removed."""
    validate_name(name)
    removed: list[str] = []
    for container in podman_json("ps", "-a", "--filter", f"label={LABEL}={name}"):
        cname = container["Names"][0]
        run(["podman", "rm", "-f", "-t", "5", cname])
        removed.append(f"container {cname}")
    for net in (f"{prefix(name)}-mgmt", f"{prefix(name)}-data"):
        if network_subnet(net) is not None:
            run(["podman", "network", "rm", "-f", net])
            removed.append(f"network {net}")
    folder = testbed_dir(name)
    disks = folder / "disks"
    if disks.is_dir():
        for file in sorted(disks.glob("*.img")):
            device = loop_for(file)
            detach_disk(file)
            if device:
                removed.append(f"loop device {device}")
            file.unlink()
    if folder.exists():
        shutil.rmtree(folder)
        removed.append(f"state {folder}")
    for line in removed:
        log(f"removed {line}")
    return removed


def status(name: str = "default") -> dict[str, Any]:
    validate_name(name)
    tb = Testbed.load(name)
    if tb is None:
        return {"name": name, "exists": False, "nodes": []}
    nodes = []
    for node in tb.nodes:
        state = container_state(node.container) or "missing"
        system = "-"
        if state == "running":
            system = node_exec(node.container, "systemctl", "is-system-running", check=False).stdout.strip()
        nodes.append(
            {
                "name": node.name,
                "container": node.container,
                "state": state,
                "systemd": system,
                "address": node.address,
                "groups": node.groups,
                "disks": [f"{d.device} ({d.size})" for d in node.disks],
                "nics": [f"{n.name}:{n.network}:{n.mac}" for n in node.nics],
            }
        )
    return {
        "name": name,
        "exists": True,
        "subnet": tb.mgmt_subnet,
        "image": tb.image,
        "inventory": str(tb.inventory_dir),
        "nodes": nodes,
    }


def list_testbeds() -> list[str]:
    base = paths.state_dir() / "testbeds"
    return sorted(p.name for p in base.iterdir() if (p / "state.json").exists()) if base.is_dir() else []
