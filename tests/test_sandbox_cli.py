"""``python -m sandbox``: a flag for every setting of ``sandbox.faults.Faults``, derived from its fields so
the CLI cannot fall behind the profile; bad values are argparse errors (exit status 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.__main__ import build_parser, fault_settings, faults_from
from sandbox.faults import Faults

ROOT = Path(__file__).resolve().parent.parent


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def odd_value(name: str, default: Any) -> Any:
    """A valid value for setting ``name`` other than its default."""
    if isinstance(default, bool):
        return not default
    if name == "clock_skew_seconds":
        return -240.0  # behind: a negative number must get through argparse as a value
    return 0.25 if default == 0 else default / 2


def test_every_fault_setting_but_the_seed_is_a_flag_with_help() -> None:
    options = {action.dest: action for action in build_parser()._actions}
    settings = set(Faults().to_dict()) - {"seed"}  # the seed is --seed, shared with the world
    assert {setting.name for setting in fault_settings()} == settings
    for name in settings:
        assert flag(name) in options[name].option_strings
        assert options[name].help, f"{flag(name)} has no help"
    assert "--seed" in options["seed"].option_strings


def test_fault_flags_reach_the_profile_and_default_to_its_defaults() -> None:
    assert faults_from(build_parser().parse_args(["shopify"])).to_dict() == Faults(seed=1).to_dict()

    wanted = {s.name: odd_value(s.name, s.default) for s in fault_settings()}
    argv = ["woocommerce", "--seed", "9"]
    for name, value in wanted.items():
        argv += [flag(name)] if value is True else [f"{flag(name)}={value}"]
    faults = faults_from(build_parser().parse_args(argv))
    assert faults.to_dict() == {**wanted, "seed": 9}
    assert faults.credentials_revoked is True and faults.clock_skew_seconds == -240.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate-limit-storm", "1.5"], "rate_limit_storm must be a probability in [0, 1]"),
        (["--token-expiry-rate", "-0.1"], "token_expiry_rate must be a probability in [0, 1]"),
        (["--latency-seconds", "soon"], "latency_seconds must be a number, got 'soon'"),
        (["--hang-seconds", "-1"], "hang_seconds must be >= 0"),
        (["--clock-skew-seconds", "90000"], "clock_skew_seconds must be within"),
        (["--timeout-rate", "nan"], "timeout_rate must be a finite number"),
        (["--clock-step-seconds", "inf"], "clock_step_seconds must be a finite number"),
        (["--credentials-revoked=yes"], "ignored explicit argument"),
    ],
)
def test_a_bad_fault_value_is_an_argparse_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["shopify", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[0].split('=')[0]}" in err and message in err


def test_the_cli_serves_a_sandbox_whose_profile_holds_the_flags() -> None:
    argv = ["youzan", "--seed", "5", "--timeout-rate", "0.3", "--hang-seconds", "2"]
    argv += ["--clock-skew-seconds", "-240", "--credentials-revoked"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # "youzan sandbox at http://127.0.0.1:PORT (seed 5, ...)"
        base_url = first.split(" at ", 1)[1].split()[0]
        served = requests.get(f"{base_url}/_sandbox/faults", timeout=5).json()
        assert served == {
            **Faults().to_dict(),
            "timeout_rate": 0.3,
            "hang_seconds": 2.0,
            "clock_skew_seconds": -240.0,
            "credentials_revoked": True,
            "seed": 5,
        }
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)
    assert process.returncode == 0 and "sandbox stopped" in out
