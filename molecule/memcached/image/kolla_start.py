"""Stand-in kolla_start: copy the files config.json lists into place, then exec its command."""

import grp
import json
import os
import pwd
import shlex
import shutil

CONFIG = "/var/lib/kolla/config_files/config.json"

with open(CONFIG) as handle:
    config = json.load(handle)
strategy = os.environ.get("KOLLA_CONFIG_STRATEGY", "COPY_ALWAYS")
marker = "/run/kolla-configured"
if strategy == "COPY_ALWAYS" or not os.path.exists(marker):
    for item in config.get("config_files", []):
        dest = item["dest"]
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(item["source"], dest)
        owner, _sep, group = item.get("owner", "root").partition(":")
        os.chown(dest, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group or owner).gr_gid)
        os.chmod(dest, int(item.get("perm", "0600"), 8))
    open(marker, "w").close()
command = shlex.split(config["command"])
os.execvp(command[0], command)
