"""benchmarks/gpu_check.sh runs end to end at tiny sizes on the CPU and prints every line."""

import os
import re
import subprocess
import sys

from conftest import REPO


def test_gpu_check_runs_on_the_cpu_and_prints_its_lines() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    number = r"[\d,]+ images/s"
    for arch in ("resnet18", "deit_small"):
        assert any(re.fullmatch(rf"throughput {arch} 32px eager: train {number} \(batch 8\), "
                                rf"eval {number} \(batch 16\) \[\d+ s\]", line)
                   for line in lines), out.stdout
        assert f"throughput {arch} 32px compile: skipped (--cpu)" in lines
    (paper,) = [line for line in lines if line.startswith("paper run:")]
    assert "40 train / 40 test JPEGs at 48 px, 4 classes, 2 epochs:" in paper
    assert "data path device" in paper and re.search(r"record \d+\.\d\d", paper)
    (study,) = [line for line in lines if line.startswith("study estimate:")]
    assert re.search(r"24 runs .*: \d+\.\d min on this device", study)
    assert all(f"{cell} " in study for cell in ("cub200 resnet18", "cub200 deit_small",
                                                "octdl resnet18", "octdl deit_small"))
    assert lines[-1].startswith("gpu_check: done in")
