"""The `grukit` command, the README's code blocks and the examples, run as a user would."""

import pathlib
import re
import subprocess
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_grukit_info_reports_versions_engines_threads():
    res = subprocess.run([sys.executable, "-m", "grukit", "info"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"torch    {torch.__version__}" in res.stdout
    assert re.search(r"reference\s+built", res.stdout)
    assert re.search(r"cpu\s+(built|missing)", res.stdout)
    for gpu_engine in ("cudnn", "triton"):
        assert re.search(gpu_engine + r"\s+(built|missing)", res.stdout)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (torch sees no CUDA device)"
    assert f"gpu      {gpu}" in res.stdout
    assert f"threads  {torch.get_num_threads()}" in res.stdout


def test_grukit_without_command_prints_help_and_fails():
    res = subprocess.run([sys.executable, "-m", "grukit"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "usage: grukit" in res.stdout


def test_readme_python_blocks_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2, "the README should show runnable python examples"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
