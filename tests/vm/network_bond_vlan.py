"""Bonds and VLANs from allmende.cloud.network on a real Debian kernel, in two QEMU VMs.

The testbed's kernel has no bonding or 8021q support, so this proves what the testbed cannot:
two VMs (QEMU, TCG) boot Debian's own kernel package with the testbed's Debian image as an
initramfs root. Each has a management NIC (QEMU user networking, SSH forwarded on 127.0.0.1)
and two NICs joined to the other VM by QEMU datagram links on 127.0.0.1. The network role turns
those two NICs into an LACP bond with MTU 9000, VLANs 100/200/300 on it and a bridge on VLAN
300; then the kernel's view is checked (bond mode, LACP partner, VLAN ids, MTUs), the VMs ping
each other with jumbo frames, a second run changes nothing, an MTU change touches one link only
and a LAG mode change recreates the bond with everything on it.

Only Debian packages are downloaded (linux-image, via apt-get download). Every wait is bounded
and the VMs are killed at the end (they also die on their own after --vm-lifetime seconds).

    .venv/bin/python tests/vm/network_bond_vlan.py        # as root, on a Debian 12 machine
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from allmende import paths, testbed

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("bonding", "8021q", "bridge", "virtio_net", "virtio_pci", "virtio_rng")
RECIPE = "2"
SSH_OPTS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
SSH_OPTS += ["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, timeout=600, check=True, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# ------------------------------------------------------------------ image


def kernel(work: Path) -> tuple[str, Path]:
    """Debian's kernel package, downloaded with apt and unpacked (not installed)."""
    proc = run(["apt-cache", "depends", "linux-image-amd64"])
    package = re.search(r"Depends: (linux-image-\S+)", proc.stdout).group(1)
    version = package.removeprefix("linux-image-")
    unpacked = work / f"kernel-{version}"
    if not (unpacked / "boot" / f"vmlinuz-{version}").exists():
        log(f"downloading {package} (Debian package)")
        debs = work / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        run(["apt-get", "download", package], cwd=debs)
        deb = next(debs.glob(f"{package}_*.deb"))
        tmp = Path(tempfile.mkdtemp(dir=work))
        run(["dpkg-deb", "-x", str(deb), str(tmp)])
        tmp.rename(unpacked)
    return version, unpacked


def module_closure(tree: Path, wanted) -> dict[str, Path]:
    index = {p.name[:-3].replace("-", "_"): p for p in tree.rglob("*.ko")}
    seen: dict[str, Path] = {}
    stack = list(wanted)
    while stack:
        name = stack.pop().replace("-", "_")
        if name in seen:
            continue
        seen[name] = index[name]
        match = re.search(rb"depends=([^\0]*)\0", index[name].read_bytes())
        stack.extend(d for d in (match.group(1).decode().split(",") if match else []) if d)
    return seen


def base_initramfs(work: Path, version: str, unpacked: Path, key: Path) -> Path:
    """The testbed's Debian image plus the kernel modules, as one uncompressed cpio archive."""
    image = testbed.ensure_image(log=log)
    image_id = run(["podman", "image", "inspect", "--format", "{{.Id}}", image]).stdout.strip()
    stamp = hashlib.sha256(f"{RECIPE}|{image_id}|{version}|{key.read_text()}".encode()).hexdigest()[:16]
    cpio = work / f"base-{stamp}.cpio"
    if cpio.exists():
        return cpio
    log(f"building the VM root from {image} and {len(MODULES)} kernel modules with their dependencies")
    rootfs = Path(tempfile.mkdtemp(dir=work, prefix="rootfs-"))
    rootfs.chmod(0o755)  # becomes / in the VM
    container = f"allmende-vm-rootfs-{os.getpid()}"
    try:
        run(["podman", "create", "--name", container, image])
        export = subprocess.Popen(["podman", "export", container], stdout=subprocess.PIPE)
        run(["tar", "-x", "-C", str(rootfs)], stdin=export.stdout)
        export.wait(timeout=300)
    finally:
        run(["podman", "rm", "-f", container], check=False)
    for junk in ("usr/share/doc", "usr/share/locale", "usr/share/man", "var/cache/apt", "var/lib/apt/lists"):
        shutil.rmtree(rootfs / junk, ignore_errors=True)
    # A VM has real udev and consoles: undo the container-only masks of the image.
    for unit in ("systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket"):
        (rootfs / "etc/systemd/system" / unit).unlink(missing_ok=True)
    (rootfs / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (rootfs / "etc/machine-id").write_text("")
    modules = rootfs / "usr/lib/modules" / version
    source = unpacked / "lib/modules" / version
    for path in module_closure(source / "kernel", MODULES).values():
        target = modules / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for extra in source.glob("modules.builtin*"):
        shutil.copy2(extra, modules / extra.name)
    shutil.copy2(source / "modules.order", modules / "modules.order")
    run(["chroot", str(rootfs), "/sbin/depmod", version])
    run(["chroot", str(rootfs), "systemctl", "enable", "systemd-networkd.service"])
    ssh = rootfs / "root/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    (ssh / "authorized_keys").chmod(0o600)
    console = rootfs / "dev/console"
    console.unlink(missing_ok=True)
    os.mknod(console, 0o600 | 0o020000, os.makedev(5, 1))
    with cpio.with_suffix(".tmp").open("wb") as out:
        find = subprocess.Popen(["find", "."], cwd=rootfs, stdout=subprocess.PIPE)
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=rootfs, stdin=find.stdout, stdout=out, check=True)
        find.wait(timeout=60)
    cpio.with_suffix(".tmp").rename(cpio)
    shutil.rmtree(rootfs)
    for old in work.glob("base-*.cpio"):
        if old != cpio:
            old.unlink()
    return cpio


def vm_initramfs(work: Path, base: Path, index: int) -> Path:
    """The base archive plus this VM's host name and management address (set up like an installer would)."""
    extra = Path(tempfile.mkdtemp(dir=work))
    extra.chmod(0o755)  # its "." entry overrides the mode of / in the VM
    (extra / "etc/systemd/network").mkdir(parents=True)
    (extra / "etc/hostname").write_text(f"vm{index}\n")
    (extra / "etc/systemd/network/10-installer-mgmt.network").write_text(
        f"[Match]\nMACAddress={mac(index, 0)}\n\n[Network]\nAddress=10.0.2.15/24\nLinkLocalAddressing=no\n"
    )
    out = work / f"vm{index}.cpio"
    with out.open("wb") as handle:
        handle.write(base.read_bytes())
        find = subprocess.Popen(["find", "."], cwd=extra, stdout=subprocess.PIPE)
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=extra, stdin=find.stdout, stdout=handle, check=True)
        find.wait(timeout=60)
    shutil.rmtree(extra)
    return out


# ------------------------------------------------------------------ VMs


def mac(vm: int, nic: int) -> str:
    return f"52:54:00:a1:{vm:02x}:{nic:02x}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VM:
    def __init__(self, index, work, version, unpacked, initramfs, key, links, lifetime):
        self.index = index
        self.name = f"vm{index}"
        self.key = key
        self.port = free_port()
        self.log = work / f"{self.name}.console.log"
        cmd = ["timeout", str(lifetime), "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max"]
        cmd += ["-smp", "1", "-m", "1280", "-display", "none", "-monitor", "none", "-no-reboot"]
        cmd += ["-serial", f"file:{self.log}", "-uuid", f"6d1c4a6e-0000-4000-8000-{index:012d}"]
        cmd += ["-kernel", str(unpacked / "boot" / f"vmlinuz-{version}"), "-initrd", str(initramfs)]
        # Emulated CPUs on a busy machine are slow: give systemd's units time, and print little.
        append = "console=ttyS0 rdinit=/lib/systemd/systemd net.ifnames=0 panic=-1 quiet systemd.show_status=false"
        append += " systemd.default_timeout_start_sec=900"
        cmd += ["-append", append]
        cmd += ["-netdev", f"user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-10.0.2.15:22"]
        cmd += ["-device", f"virtio-net-pci,netdev=mgmt,mac={mac(index, 0)}", "-device", "virtio-rng-pci"]
        for nic, ports in enumerate(links, start=1):
            # A point-to-point Ethernet link: UDP datagrams between the two VMs' ports on 127.0.0.1.
            local, remote = ports if index == 1 else reversed(ports)
            cmd += ["-netdev", f"dgram,id=l{nic},local.type=inet,local.host=127.0.0.1,local.port={local},"]
            cmd[-1] += f"remote.type=inet,remote.host=127.0.0.1,remote.port={remote}"
            # 802.3ad needs full duplex and a speed, which virtio-net reports only when told.
            cmd += ["-device", f"virtio-net-pci,netdev=l{nic},mac={mac(index, nic)},speed=10000,duplex=full"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def ssh(self, command: str, timeout=120, check=True) -> subprocess.CompletedProcess[str]:
        cmd = ["ssh", *SSH_OPTS, "-i", str(self.key), "-p", str(self.port), "root@127.0.0.1", command]
        return run(cmd, timeout=timeout, check=check)

    def wait_ssh(self, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name}: qemu exited: {self.proc.stderr.read()[-500:]}")
            try:
                if self.ssh("systemctl is-system-running --wait", timeout=90, check=False).returncode in (0, 1):
                    return time.monotonic() - start
            except subprocess.TimeoutExpired:
                pass
            time.sleep(5)
        raise SystemExit(f"{self.name}: no SSH within {timeout:.0f}s; console: {self.log}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ------------------------------------------------------------------ the role


def interfaces(index: int, lag_mode="802.3ad", vlan200_mtu=1500):
    """What NetBox would say about the VM: eth0 management, eth1+eth2 an LACP bond with VLANs."""
    n = 10 + index
    return [
        {"name": "eth0", "type": "physical", "mac": mac(index, 0), "mgmt_only": True, "addresses": ["10.0.2.15/24"]},
        {"name": "eth1", "type": "physical", "mac": mac(index, 1), "lag": "bond0"},
        {"name": "eth2", "type": "physical", "mac": mac(index, 2), "lag": "bond0"},
        {"name": "bond0", "type": "lag", "lag_mode": lag_mode, "mtu": 9000},
        {
            "name": "bond0.100",
            "type": "vlan",
            "parent": "bond0",
            "vid": 100,
            "addresses": [f"10.214.30.{n}/24", f"fd42:214:30::{n}/64"],
        },
        {
            "name": "bond0.200",
            "type": "vlan",
            "parent": "bond0",
            "vid": 200,
            "mtu": vlan200_mtu,
            "addresses": [f"10.215.30.{n}/24"],
        },
        {"name": "bond0.300", "type": "vlan", "parent": "bond0", "vid": 300, "bridge": "br-provider"},
        {"name": "br-provider", "type": "bridge", "addresses": [f"10.216.30.{n}/24"]},
    ]


def write_inventory(work: Path, vms, key: Path, changed=("vm1",), **changes) -> Path:
    hosts = {}
    for vm in vms:
        data = interfaces(vm.index, **(changes if vm.name in changed else {}))
        hosts[vm.name] = {
            "ansible_host": "127.0.0.1",
            "ansible_port": vm.port,
            "allmende_interfaces": data,
            "allmende_routes": [],
        }
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(key),
                "ansible_ssh_common_args": " ".join(SSH_OPTS),
                "ansible_python_interpreter": "/usr/bin/python3",
            },
            "hosts": hosts,
        }
    }
    path = work / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def apply_role(inventory: Path, timeout: int) -> tuple[dict, float]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_TIMEOUT": "60",
    }
    playbook = Path(sys.executable).parent / "ansible-playbook"
    start = time.monotonic()
    proc = run(
        [str(playbook), "-i", str(inventory), str(ROOT / "playbooks/network.yml")],
        timeout=timeout,
        env=env,
        check=False,
    )
    took = time.monotonic() - start
    try:
        result = json.loads(proc.stdout)
    except ValueError as exc:
        raise SystemExit(
            f"ansible-playbook printed no JSON (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
        ) from exc
    if proc.returncode != 0:
        raise SystemExit(f"the network role failed (rc={proc.returncode}):\n{proc.stdout[-6000:]}")
    return result, took


def task_result(result: dict, name: str) -> dict:
    for play in result["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ")[-1] == name:
                return task["hosts"]
    raise SystemExit(f"no task {name!r}")


# ------------------------------------------------------------------ checks


class Checks:
    def __init__(self):
        self.failed = []
        self.passed = 0

    def __call__(self, ok: bool, what: str):
        if ok:
            self.passed += 1
            log(f"  ok   {what}")
        else:
            self.failed.append(what)
            log(f"  FAIL {what}")


def link_json(vm: VM, name: str) -> dict:
    return json.loads(vm.ssh(f"ip -j -d link show dev {name}").stdout)[0]


def check_kernel_state(vm: VM, peer: VM, check: Checks, lag_mode="802.3ad", vlan200_mtu=1500):
    bond = vm.ssh("ip -d link show bond0").stdout
    check(
        f"bond mode {lag_mode}" in bond and " mtu 9000 " in bond, f"{vm.name}: ip -d link: bond0 {lag_mode}, mtu 9000"
    )
    for nic in ("eth1", "eth2"):
        text = vm.ssh(f"ip -d link show {nic}").stdout
        check(" master bond0 " in text and " mtu 9000 " in text, f"{vm.name}: {nic} in bond0, mtu 9000")
    expected = {"bond0.100": 9000, "bond0.200": vlan200_mtu, "bond0.300": 9000}
    for name, mtu in expected.items():
        text = vm.ssh(f"ip -d link show {name}").stdout
        vid = name.split(".")[1]
        check(
            f"vlan protocol 802.1Q id {vid} " in text and f" mtu {mtu} " in text and f"{name}@bond0" in text,
            f"{vm.name}: ip -d link: {name} VLAN {vid} on bond0, mtu {mtu}",
        )
    bridge = vm.ssh("ip -d link show br-provider").stdout
    port = vm.ssh("ip -d link show bond0.300").stdout
    check(" master br-provider " in port and " mtu 9000 " in bridge, f"{vm.name}: bond0.300 in br-provider, mtu 9000")
    if lag_mode == "802.3ad":
        check(wait_lacp(vm, peer), f"{vm.name}: LACP aggregator with {peer.name} over both links")


def wait_lacp(vm: VM, peer: VM, timeout=180) -> bool:
    """The active aggregator holds both links and the peer's bond is the partner (LACP converges slowly under TCG)."""
    partner = link_json(peer, "bond0")["address"]
    deadline = time.monotonic() + timeout
    while True:
        status = vm.ssh("cat /proc/net/bonding/bond0").stdout
        active = status.split("Active Aggregator Info:", 1)[-1].split("Slave Interface:", 1)[0]
        if "Number of ports: 2" in active and f"Partner Mac Address: {partner}" in active:
            return True
        if time.monotonic() > deadline:
            log(f"{vm.name}: /proc/net/bonding/bond0:\n{status}")
            return False
        time.sleep(5)


def check_traffic(vm: VM, peer: VM, check: Checks, vlan200_mtu=1500):
    n = 10 + peer.index
    for address, size in ((f"10.214.30.{n}", 8972), (f"10.215.30.{n}", vlan200_mtu - 28), (f"10.216.30.{n}", 8972)):
        proc = vm.ssh(f"ping -n -c 2 -i 0.5 -W 3 -M do -s {size} {address}", check=False, timeout=60)
        check(proc.returncode == 0, f"{vm.name} -> {peer.name}: {size}-byte ping with DF to {address}")
    proc = vm.ssh(f"ping -6 -n -c 2 -i 0.5 -W 3 fd42:214:30::{n}", check=False, timeout=60)
    check(proc.returncode == 0, f"{vm.name} -> {peer.name}: IPv6 over VLAN 100")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=paths.cache_dir() / "vm-network")
    parser.add_argument("--vm-lifetime", type=int, default=5400, help="seconds after which the VMs stop by themselves")
    parser.add_argument("--keep", action="store_true", help="leave the VMs running at the end")
    args = parser.parse_args()
    for tool in ("qemu-system-x86_64", "cpio", "podman", "apt-get", "dpkg-deb", "ssh"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (apt-get install qemu-system-x86 cpio openssh-client)")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    key = work / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    started = time.monotonic()
    version, unpacked = kernel(work)
    base = base_initramfs(work, version, unpacked, key)
    links = [(free_port(), free_port()), (free_port(), free_port())]
    vms = []
    check = Checks()
    try:
        for index in (1, 2):
            # One after the other: two emulated boots at once are slow on a shared machine.
            initramfs = vm_initramfs(work, base, index)
            vm = VM(index, work, version, unpacked, initramfs, key, links, args.vm_lifetime)
            vms.append(vm)
            log(f"{vm.name}: booted, SSH after {vm.wait_ssh(1500):.0f}s (kernel {version}, TCG)")
        vm1, vm2 = vms
        check("bonding" not in vm1.ssh("lsmod").stdout, "before: no bond on the VMs")

        log("applying the network role")
        result, took = apply_role(write_inventory(work, vms, key), 1800)
        log(f"first run: {took:.0f}s, changed tasks {[result['stats'][v.name]['changed'] for v in vms]}")
        for vm, peer in ((vm1, vm2), (vm2, vm1)):
            check_kernel_state(vm, peer, check)
        for vm, peer in ((vm1, vm2), (vm2, vm1)):
            check_traffic(vm, peer, check)
        check(all(link_json(v, "eth0").get("master") is None for v in vms), "eth0 (management) left alone")

        result, took = apply_role(write_inventory(work, vms, key), 1800)
        changed = {v.name: result["stats"][v.name]["changed"] for v in vms}
        check(changed == {"vm1": 0, "vm2": 0}, f"second run changes nothing ({changed}, {took:.0f}s)")

        log("changing the MTU of VLAN 200 on vm1 to 1400")
        bond_index = link_json(vm1, "bond0")["ifindex"]
        cursor = re.search(r"-- cursor: (\S+)", vm1.ssh("journalctl -n 0 --show-cursor --no-pager").stdout).group(1)
        result, took = apply_role(write_inventory(work, vms, key, vlan200_mtu=1400), 1800)
        applied = task_result(result, "Apply the changes to the links they concern")
        journal = vm1.ssh(f"journalctl --after-cursor='{cursor}' --no-pager -o cat").stdout
        touched = sorted(set(re.findall(r"^(\S+): (?:Re)?[Cc]onfiguring with /etc/systemd/network/", journal, re.M)))
        check(
            applied["vm1"].get("reloaded") == ["bond0.200"]
            and touched == ["bond0.200"]
            and not applied["vm1"]["deleted"],
            f"only bond0.200 reconfigured (networkd: {touched}, {took:.0f}s)",
        )
        if touched != ["bond0.200"]:
            log(f"apply result: {applied['vm1']}\njournal:\n{journal}")
        check(result["stats"]["vm2"]["changed"] == 0, "vm2 unchanged")
        check(link_json(vm1, "bond0")["ifindex"] == bond_index, "bond0 not recreated for an MTU change")
        check_kernel_state(vm1, vm2, check, vlan200_mtu=1400)

        log("changing the LAG mode on both VMs to balance-xor")
        inventory = write_inventory(work, vms, key, changed=("vm1", "vm2"), lag_mode="balance-xor")
        result, took = apply_role(inventory, 1800)
        applied = task_result(result, "Apply the changes to the links they concern")
        for vm in vms:
            check(
                applied[vm.name]["deleted"] == ["bond0"] and applied[vm.name]["reconfigured"] == ["eth1", "eth2"],
                f"{vm.name}: bond0 recreated, its members rejoined, VLANs and bridge port back ({took:.0f}s)",
            )
        check(link_json(vm1, "bond0")["ifindex"] != bond_index, "vm1: bond0 is a new device")
        for vm, peer in ((vm1, vm2), (vm2, vm1)):
            check_kernel_state(vm, peer, check, lag_mode="balance-xor")
        check_traffic(vm2, vm1, check)

        log("back to the original data")
        apply_role(write_inventory(work, vms, key), 1800)
        for vm, peer in ((vm1, vm2), (vm2, vm1)):
            check_kernel_state(vm, peer, check)
        check_traffic(vm1, vm2, check)
    finally:
        if not args.keep:
            for vm in vms:
                vm.stop()
            for initramfs in work.glob("vm*.cpio"):
                initramfs.unlink()  # 180 MB each, rebuilt in seconds
    log(f"{check.passed} checks passed, {len(check.failed)} failed, {time.monotonic() - started:.0f}s in all")
    for what in check.failed:
        log(f"failed: {what}")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
