"""`slmkit retrain schedule`: the systemd timer + service (or crontab line) that runs `retrain --if-due`.

Printed, not installed: where units go and who runs them is the operator's choice. The retrain
takes its own lock, so a timer firing while one still runs starts nothing; the crontab line
adds `flock -n` anyway so cron does not pile up waiting processes.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

from slmkit.errors import SlmkitError

_EVERY = re.compile(r"^(?P<n>[1-9][0-9]*)(?P<unit>[mhd])$")


def calendars(every: str) -> tuple[str, str]:
    """'15m', '1h', '6h', '1d' -> (systemd OnCalendar, crontab schedule)."""
    match = _EVERY.match(every)
    if match is None:
        raise SlmkitError(f"--every {every!r}: write minutes, hours or days, e.g. 15m, 1h, 6h or 1d")
    n, unit = int(match["n"]), match["unit"]
    if unit == "m" and 60 % n == 0:
        return f"*:0/{n}", f"*/{n} * * * *"
    if unit == "h" and 24 % n == 0:
        return ("hourly", "0 * * * *") if n == 1 else (f"*-*-* 0/{n}:00:00", f"0 */{n} * * *")
    if unit == "d" and n == 1:
        return "daily", "0 3 * * *"
    raise SlmkitError(
        f"--every {every!r}: use a span that divides the hour or the day (5m, 10m, 15m, 30m, 1h, 2h, 6h, 12h) or 1d"
    )


def slmkit_command() -> list[str]:
    """How to run this slmkit from a unit or cron: the installed script, else this Python with -m slmkit."""
    script = shutil.which("slmkit")
    here = Path(sys.executable).with_name("slmkit")
    if here.exists():
        return [str(here)]
    return [script] if script else [sys.executable, "-m", "slmkit"]


def schedule_text(project: Path, task: str, every: str = "1h", *, cron: bool = False) -> str:
    """The units (or the crontab line) for `project`, with absolute paths."""
    project = project.resolve()
    on_calendar, crontab = calendars(every)
    command = shlex.join([*slmkit_command(), "retrain", "--if-due", "--project", str(project)])
    if cron:
        lock = shlex.quote(str(project / ".slmkit" / "retrain.cron.lock"))
        log = shlex.quote(str(project / ".slmkit" / "retrain.log"))
        return (
            f"# crontab -e: run `slmkit retrain --if-due` for {task} every {every}\n"
            f"{crontab} cd {shlex.quote(str(project))} && flock -n {lock} {command} >> {log} 2>&1\n"
        )
    unit = f"slmkit-retrain-{re.sub(r'[^A-Za-z0-9_-]', '-', task)}"
    return f"""# {unit}.service and {unit}.timer: `slmkit retrain --if-due` for {task} every {every}.
# Put both in /etc/systemd/system/ (or ~/.config/systemd/user/ with systemctl --user), then:
#   systemctl daemon-reload && systemctl enable --now {unit}.timer
#   journalctl -u {unit}.service     # what each run printed
# --- {unit}.service ---
[Unit]
Description=slmkit retrain --if-due ({task}, {project})

[Service]
Type=oneshot
WorkingDirectory={project}
Environment=HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ExecStart={command}
# Training is CPU-heavy: stay behind the server's requests.
Nice=10
# A retrain holds .slmkit/retrain.lock itself; exit 6 means gates blocked it (nothing moved).
SuccessExitStatus=6

# --- {unit}.timer ---
[Unit]
Description=Run {unit}.service every {every}

[Timer]
OnCalendar={on_calendar}
Persistent=true
RandomizedDelaySec=60

[Install]
WantedBy=timers.target
"""
