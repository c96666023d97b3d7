"""What allmende.cloud.libvirt must leave on the compute hosts of the testbed."""

import json
import os
import time
import uuid
from pathlib import Path

import testinfra
import yaml

from allmende.testbed import Testbed

ROOT = Path(__file__).resolve().parents[3]
RELEASE = yaml.safe_load((ROOT / "releases" / "index.yml").read_text())["current"]
MANIFEST = yaml.safe_load((ROOT / "releases" / f"{RELEASE}.yml").read_text())

TESTBED = Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "molecule"))
assert TESTBED is not None, "the scenario's testbed does not exist"
COMPUTE = TESTBED.group("compute")
testinfra_hosts = [f"ssh://{name}?ssh_config={TESTBED.ssh_config}" for name in COMPUTE]
FACTS = "/etc/ansible/facts.d/allmende_libvirt.fact"
IMAGES = "/var/lib/libvirt/images/allmende-test"
MARKER = "ALLMENDE-GUEST-BOOTED"

# A minimal guest: the Debian kernel (taken from its package, not installed) and an initrd with
# busybox whose init prints a marker line on the serial console and powers off.
PREPARE_GUEST = f"""
set -eu
mkdir -p {IMAGES} && cd {IMAGES}
if [ ! -s vmlinuz ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q busybox-static cpio >/dev/null
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {{print $2; exit}}')
  apt-get download -q "$pkg" >/dev/null 2>&1
  dpkg-deb --fsys-tarfile "$pkg"_*.deb | tar -x -O --wildcards './boot/vmlinuz-*' > vmlinuz.tmp
  mv vmlinuz.tmp vmlinuz && rm -f "$pkg"_*.deb
fi
rm -rf root && mkdir -p root/bin root/proc
cp /bin/busybox root/bin/busybox
cat > root/init <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo "{MARKER} kernel=$(/bin/busybox uname -r) cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)"
/bin/busybox poweroff -f
EOF
chmod 0755 root/init
(cd root && find . | cpio -o -H newc 2>/dev/null | gzip -1) > initrd.img
rm -rf root
"""


def domain_xml(name, virt_type, cpu_mode, serial):
    cpu = f'<cpu mode="{cpu_mode}"/>' if cpu_mode in ("host-model", "host-passthrough") else ""
    return f"""<domain type="{virt_type}">
  <name>{name}</name>
  <memory unit="MiB">128</memory>
  <vcpu>1</vcpu>
  {cpu}
  <os>
    <type arch="x86_64" machine="pc">hvm</type>
    <kernel>{IMAGES}/vmlinuz</kernel>
    <initrd>{IMAGES}/initrd.img</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type="file"><source path="{serial}"/><target port="0"/></serial>
    <console type="file"><source path="{serial}"/><target type="serial" port="0"/></console>
  </devices>
</domain>
"""


def test_libvirt_answers(host):
    assert host.service("libvirtd").is_enabled
    out = host.check_output("virsh --connect qemu:///system version")
    components = MANIFEST["components"]
    assert f"Using library: libvirt {components['libvirt']['version']}" in out
    assert f"Running hypervisor: QEMU {components['qemu']['version']}" in out


def test_libvirt_and_qemu_held_at_the_manifest_version(host):
    held = host.check_output("apt-mark showhold").split()
    for component, packages in {
        "libvirt": ("libvirt-daemon-system", "libvirt-clients", "libvirt-daemon"),
        "qemu": ("qemu-system-x86", "qemu-utils", "qemu-block-extra"),
    }.items():
        for package in packages:
            assert package in held, package
        pref = host.file(f"/etc/apt/preferences.d/allmende-{component}.pref").content_string
        assert f"Pin: version {MANIFEST['components'][component]['apt']}\n" in pref


def test_virt_type_is_detected_and_recorded(host):
    facts = json.loads(host.file(FACTS).content_string)
    assert facts["virt_type"] in ("kvm", "qemu")
    assert facts["virt_type"] == ("kvm" if facts["kvm_usable"] else "qemu")
    assert facts["cpu_mode"] == ("host-model" if facts["virt_type"] == "kvm" else "none")
    if not facts["kvm_usable"]:
        # Here /dev/kvm answers and a probe guest even runs under it, but far slower than
        # emulated: no hardware virtualization behind it, so TCG it is.
        assert facts["cpu_models"] == []
        assert "Checking for hardware virtualization" in facts["host_validation_failed"]


def test_a_tiny_domain_boots_with_the_detected_virt_type():
    host = testinfra.get_host(testinfra_hosts[0])
    facts = json.loads(host.file(FACTS).content_string)
    host.check_output(f"timeout 600 bash -c {quote(PREPARE_GUEST)}")
    name = f"allmende-test-{uuid.uuid4().hex[:6]}"
    serial = f"/var/log/libvirt/qemu/{name}-serial.log"
    xml = f"/tmp/{name}.xml"
    host.check_output(f"printf '%s' {quote(domain_xml(name, facts['virt_type'], facts['cpu_mode'], serial))} > {xml}")
    try:
        host.check_output(f"virsh --connect qemu:///system define {xml}")
        started = time.monotonic()
        host.check_output(f"virsh --connect qemu:///system start {name}")
        output = ""
        while time.monotonic() - started < 240:
            output = host.run(f"cat {serial}").stdout
            if MARKER in output:
                break
            time.sleep(2)
        assert MARKER in output, f"no marker after {time.monotonic() - started:.0f}s:\n{output[-2000:]}"
        accel = "tcg" if facts["virt_type"] == "qemu" else "kvm"
        log = host.check_output(f"cat /var/log/libvirt/qemu/{name}.log")
        assert f"accel={accel}" in log or f"-accel {accel}" in log, log[-2000:]
    finally:
        host.run(f"virsh --connect qemu:///system destroy {name}")
        host.run(f"virsh --connect qemu:///system undefine {name}")
        host.run(f"rm -f {xml} {serial}")


def quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"
