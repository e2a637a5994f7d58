"""Which conv shapes survive a channels-last backward pass on this CPU (the evidence behind the allow-list in
``autos.training.channels_last.channels_last_is_safe``).

oneDNN's AVX2 1x1 backward-weights kernel (torch 2.13/2.14) segfaults or spins forever for some small channel
counts (docs/reliability.md, "No hang, no crash on CPU"), so every case runs in its own subprocess under a timeout:
a crash or a hang is recorded, not suffered. Two probes: a single conv (in_channels, size, kernel, stride) and a
whole ResNet-18 / VGG-16 at a width, each for both thread settings (OMP_NUM_THREADS=1 and the default). Also
records whether the allow-list accepts each network, so a shape it accepts that crashed here would show at a glance
(``accepted_but_failed``).

    .venv/bin/python bench/channels_last_probe.py   # ~2 min on 2 cores; writes bench/results/channels_last_probe.json
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

from common import REPO, save

CONV = """
import sys, torch
cin, hw, k, s = map(int, sys.argv[1:5])
torch.manual_seed(0)
conv = torch.nn.Conv2d(cin, max(2 * cin, 16), k, stride=s, padding=k // 2, bias=False)
conv = conv.to(memory_format=torch.channels_last)
x = torch.randn(32, cin, hw, hw).contiguous(memory_format=torch.channels_last).requires_grad_(True)
for _ in range(3):
    conv(x).sum().backward()
"""

NET = """
import sys, torch
from autos.models import build_model
from autos.training.channels_last import channels_last_is_safe
name, width, hw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = build_model(name, num_classes=10, width=width, input_size=hw, seed=0).to(memory_format=torch.channels_last)
print("accepted" if channels_last_is_safe(model, hw) else "refused", flush=True)
x = torch.randn(32, 3, hw, hw).contiguous(memory_format=torch.channels_last)
for _ in range(2):
    torch.nn.functional.cross_entropy(model(x), torch.zeros(32, dtype=torch.long)).backward()
"""

TIMEOUT_S = 60


def run(code: str, args: list[str], threads: str | None) -> tuple[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "hang", ""
    outcome = "ok" if proc.returncode == 0 else f"crash (exit {proc.returncode})"
    return outcome, proc.stdout.strip()


def main() -> None:
    convs, nets = [], []
    for threads in (None, "1"):
        for cin, hw, (k, s) in itertools.product([3, 4, 8, 16], [16, 32, 64], [(1, 2), (1, 1), (3, 1)]):
            outcome, _ = run(CONV, [str(cin), str(hw), str(k), str(s)], threads)
            convs.append({"in_channels": cin, "size": hw, "kernel": k, "stride": s, "omp_threads": threads or "default",
                          "outcome": outcome})
        for name, width, hw in itertools.product(["resnet18", "vgg16_bn"], [4, 8, 16], [16, 32, 64]):
            outcome, verdict = run(NET, [name, str(width), str(hw)], threads)
            nets.append({"model": name, "width": width, "size": hw, "omp_threads": threads or "default",
                         "outcome": outcome, "allow_list": verdict.splitlines()[0] if verdict else "?"})
    failed = [c for c in convs + nets if c["outcome"] != "ok"]
    accepted_but_failed = [n for n in nets if n["allow_list"] == "accepted" and n["outcome"] != "ok"]
    save("channels_last_probe", {"timeout_s": TIMEOUT_S, "failed": failed, "accepted_but_failed": accepted_but_failed,
                                 "convs": convs, "nets": nets})


if __name__ == "__main__":
    main()
