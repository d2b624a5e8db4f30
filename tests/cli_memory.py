"""The CLI's own peak memory. A child's ru_maxrss (wait4, RUSAGE_CHILDREN) starts from the
forking test process's size, which Linux carries across exec; VmHWM belongs to the new
program's memory alone."""

from __future__ import annotations

from pathlib import Path

# `python -c MEASURED_CLI args...` runs `airflow-mapreduce args...`, writing its VmHWM line
# from /proc/self/status to $CLI_VMHWM_FILE at exit.
MEASURED_CLI = """
import atexit, os, sys
def report():
    with open("/proc/self/status") as status, open(os.environ["CLI_VMHWM_FILE"], "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")))
atexit.register(report)
from airflow_mapreduce.cli import main
sys.argv[0] = "airflow-mapreduce"
main()
"""


def peak_bytes(vmhwm_file: Path) -> int:
    """The peak the measured CLI wrote ("VmHWM:  12345 kB")."""
    return int(vmhwm_file.read_text().split()[1]) * 1024
