"""The command line as a whole: fast help, one vocabulary of options, deprecated aliases,
one-line usage errors, and --strict exit codes for CI."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import click
import pytest
import torch
from conftest import assert_one_line_error, run

from landscape.cli import options
from landscape.cli.main import COMMANDS, cli

HEAVY = ("torch", "numpy", "matplotlib", "h5py", "scipy", "sklearn", "networkx", "tqdm", "PIL")


def command(name: str) -> click.Command:
    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None, name
    return cmd


def visible_options(cmd: click.Command) -> dict[str, click.Option]:
    return {opt: p for p in cmd.params if isinstance(p, click.Option) and not p.hidden for opt in p.opts}


# ------------------------------------------------------------------------ fast help

HELP_PROBE = """
import json, sys
from landscape.cli.main import COMMANDS, main
report = {}
for args in [["--help"], ["--version"]] + [[name, "--help"] for name in COMMANDS]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    report[" ".join(args)] = [code, sorted(m for m in %r if m in sys.modules)]
print(json.dumps(report))
"""


def test_help_of_every_command_imports_no_heavy_library(tmp_path):
    """`landscape --help` and each `landscape COMMAND --help`, in a fresh interpreter: torch,
    numpy, matplotlib, h5py (and the rest) stay unimported (they load when a command runs)."""
    proc = subprocess.run([sys.executable, "-c", HELP_PROBE % (HEAVY,)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) == {"--help", "--version"} | {f"{name} --help" for name in COMMANDS}
    for args, (code, heavy) in report.items():
        assert code == 0, args
        assert heavy == [], f"landscape {args} imported {heavy}"


MAP_PROBE = """
import sys
from landscape.cli.main import main
for args in (["info", sys.argv[1]], ["info", sys.argv[1], "--json"], ["tree", sys.argv[1]]):
    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
print("torch" in sys.modules)
"""


def test_reading_a_map_does_not_import_torch(tmp_path, make_map):
    """`landscape info` and `landscape tree` on a map read HDF5 and draw text: torch (about a
    second to import) stays out of them."""
    from conftest import save, wells_content

    path = save(tmp_path, wells_content(make_map), "wells.h5")
    proc = subprocess.run([sys.executable, "-c", MAP_PROBE, str(path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_group_help_lists_every_command_with_its_whole_summary(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    listing = " ".join(out.split("Commands:")[1].split())
    assert list(COMMANDS) == ["train", "sample", "info", "map", "tree", "check", "funnel", "diagnose", "compare",
                              "demo"]
    for name in COMMANDS:
        cmd = command(name)
        assert cmd.short_help, f"{name}: set short_help explicitly"
        summary = " ".join(cmd.short_help.split())
        assert f"{name} {summary}" in listing, name
        assert "..." not in summary and summary.endswith((".", "?")), name
        assert len(summary) <= 66, f"{name}: the summary must fit one line of an 80-column terminal"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_examples_and_documented_options(capsys, name):
    code, out, _ = run(capsys, name, "--help")
    assert code == 0
    examples = out.split("Examples:", 1)
    assert len(examples) == 2, f"{name} --help has no Examples: block"
    assert re.search(rf"^\s+landscape {name}\b", examples[1], flags=re.MULTILINE), name
    for param in command(name).params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        assert param.help, f"{name} {param.opts[0]}: no help"
        if param.is_flag:
            continue
        assert param.type is not click.STRING or param.metavar or param.callback, f"{name} {param.opts[0]}: no type"
        unset = param.default is None or param.multiple or param.default is getattr(click.core, "UNSET", None)
        if not unset:
            assert param.show_default, f"{name} {param.opts[0]}: default {param.default!r} not shown"


# ------------------------------------------------------------------- one vocabulary

# option -> the commands that have that concept
SHARED = {
    "--chains": ("sample", "check", "map", "funnel", "compare"),
    "--steps": ("sample", "map", "funnel"),  # train's --steps counts parameter updates
    "--eps": ("sample", "check", "map", "funnel"),
    "--temperature": ("sample", "check", "map"),
    "--device": ("train", "sample", "check", "map", "funnel", "diagnose", "compare", "demo"),
    "--seed": ("train", "sample", "check", "map", "funnel", "compare"),
    "--out": ("train", "sample", "check", "map", "compare", "demo"),
    "--force": ("train", "sample", "check", "map", "funnel", "diagnose", "compare"),
    "--quiet": ("train", "sample", "check", "map", "funnel", "diagnose", "compare", "demo"),
    "--json": ("info", "tree", "check", "funnel", "diagnose", "compare"),
    "--dataset": ("train", "sample", "check", "map", "funnel", "diagnose"),
    "--data-root": ("train", "sample", "check", "map", "funnel", "diagnose"),
}
BASE_HELP = {
    "--chains": options.CHAINS_HELP,
    "--steps": options.STEPS_HELP,
    "--eps": options.EPS_HELP,
    "--temperature": options.TEMPERATURE_HELP,
    "--device": options.DEVICE_HELP,
    "--seed": options.SEED_HELP,
    "--force": options.FORCE_HELP,
    "--quiet": options.QUIET_HELP,
    "--json": options.JSON_HELP,
    "--dataset": options.DATASET_HELP,
    "--data-root": options.DATA_ROOT_HELP,
}


def _type_key(t: click.ParamType) -> tuple:
    return (type(t), getattr(t, "min", None), getattr(t, "max", None), getattr(t, "min_open", None))


@pytest.mark.parametrize("flag", list(SHARED))
def test_shared_options_have_one_name_type_metavar_and_help(flag):
    found = {name: visible_options(command(name)).get(flag) for name in SHARED[flag]}
    missing = [name for name, opt in found.items() if opt is None]
    assert not missing, f"{flag} missing in {missing}"
    opts = list(found.values())
    if flag != "--out":  # --out is a file or a folder and says which
        assert len({_type_key(o.type) for o in opts}) == 1, flag
        assert len({o.metavar for o in opts}) == 1, flag
        assert len({o.name for o in opts}) == 1, flag
    if flag in BASE_HELP:
        for name, opt in found.items():
            assert opt.help.startswith(BASE_HELP[flag].rstrip(".")), (name, flag, opt.help)
    if flag in ("--eps", "--temperature"):
        for opt in opts:
            assert options.LANGEVIN in opt.help
    # the old spellings are gone from every command's visible options
    for name in COMMANDS:
        visible = visible_options(command(name))
        assert not {"--n", "--epsilon", "--tau"} & set(visible), name


def test_device_is_one_option_everywhere(capsys, tmp_path):
    for name in SHARED["--device"]:
        opt = visible_options(command(name))["--device"]
        assert opt.metavar == "[auto|cpu|cuda|cuda:N]" and opt.callback is options.device_callback, name
        assert opt.default == "auto" and opt.show_default, name
        code, _, err = run(capsys, name, *(["x"] if name in ("sample", "check", "map", "funnel", "diagnose")
                                           else ["x", "y"] if name == "compare" else []),
                           "--device", "gpu", *(["--out", tmp_path / "o.pt"] if name == "train" else []))
        assert_one_line_error(code, err, r"^error: Invalid value for '--device': 'gpu': use auto, cpu, cuda or "
                                         r"cuda:N", expected_code=2)
    # cuda:N passes the check (the command then fails on the missing file, not on the option)
    code, _, err = run(capsys, "sample", tmp_path / "missing.pt", "--device", "cuda:1")
    assert_one_line_error(code, err, "missing.pt: no such file")


def test_finite_numbers_are_required(capsys, tmp_path):
    for flag in ("--eps", "--temperature"):
        for bad in ("nan", "inf", "-1"):
            code, _, err = run(capsys, "sample", tmp_path / "missing.pt", flag, bad)
            assert_one_line_error(code, err, rf"^error: Invalid value for '{flag}'", expected_code=2)


# -------------------------------------------------------------- deprecated aliases


@click.command("toy", cls=options.Command)
@options.chains_option(5, old="--n")
@options.eps_option(default_text="1", old="--epsilon")
@options.temperature_option(default_text="1", old_tau="--tau")
@click.option("--fail", is_flag=True, help="Fail with an error.")
@click.option("--code", type=int, default=0, show_default=True, help="Exit status.")
def toy(chains, eps, temperature, fail, code):
    from landscape.errors import LandscapeError

    if fail:
        raise LandscapeError("it failed")
    click.echo(f"chains={chains} eps={eps} T={temperature}")
    if code:
        raise click.exceptions.Exit(code)


def test_old_names_map_onto_the_new_options_with_a_note(capsys):
    code, out, err = run_toy(capsys, "--n", "3", "--epsilon", "0.5", "--tau", "0.5")
    assert code == 0
    assert out.strip() == "chains=3 eps=0.5 T=0.25"  # --tau 0.5 is --temperature 0.25
    notes = err.strip().splitlines()
    assert notes == [
        "note: --n is deprecated and will be removed in the next release; use --chains",
        "note: --epsilon is deprecated and will be removed in the next release; use --eps",
        "note: --tau is deprecated and will be removed in the next release; use --temperature "
        "(T = tau^2: --tau 0.5 is --temperature 0.25)",
    ]
    code, out, err = run_toy(capsys, "--chains", "3")
    assert (code, out.strip(), err) == (0, "chains=3 eps=None T=None", "")
    code, out, err = run_toy(capsys)
    assert (code, out.strip(), err) == (0, "chains=5 eps=None T=None", "")
    # a chosen exit status is not an error: the note is still printed
    code, out, err = run_toy(capsys, "--n", "2", "--code", "3")
    assert code == 3 and out.strip() == "chains=2 eps=None T=None" and err.startswith("note: --n is deprecated")


def test_an_error_stays_one_line_and_both_names_are_a_usage_error(capsys):
    code, _, err = run_toy(capsys, "--n", "3", "--fail")
    assert_one_line_error(code, err, "^error: it failed$")
    code, _, err = run_toy(capsys, "--n", "3", "--chains", "4")
    assert_one_line_error(code, err, r"^error: --n is the old name of --chains: give --chains only", expected_code=2)
    code, _, err = run_toy(capsys, "--n", "0")
    assert_one_line_error(code, err, r"^error: Invalid value for '--n'", expected_code=2)


def test_old_names_are_hidden_from_help(capsys):
    code, out, _ = run_toy(capsys, "--help")
    assert code == 0 and "--chains" in out and "--temperature" in out
    assert not re.search(r"--n\b|--epsilon|--tau\b", out)
    for name in ("sample", "check"):
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and not re.search(r"--n\b|--epsilon|--tau\b", out), name
        hidden = {p.opts[0] for p in command(name).params if isinstance(p, click.Option) and p.hidden}
        assert hidden == {"--n", "--epsilon", "--tau"}, name


def run_toy(capsys, *args):
    from landscape.cli.errors import run_guarded

    code = run_guarded(toy, list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -------------------------------------------------------------------- usage errors


def test_usage_errors_are_one_line_with_exit_status_2(capsys, tmp_path):
    for args, pattern in [
        (["train", "--out", tmp_path / "x.pt", "--bogus"], r"No such option '--bogus'.*\(see: landscape train --help\)$"),
        (["frob"], r"No such command 'frob'"),
        (["train", "--out", tmp_path / "x.pt", "--resume", "--force"], "contradict"),
        (["sample", tmp_path / "x.pt", "--chains", "0"], r"Invalid value for '--chains'"),
        (["check", tmp_path / "x.pt", "--strict", "--multiples", "3,1"], "increasing positive numbers"),
        (["compare", tmp_path / "a.pt", tmp_path / "b.pt", "--strict", "--no-check"], "--strict judges"),
    ]:
        code, out, err = run(capsys, *args)
        assert_one_line_error(code, err, "^error: .*" + pattern, expected_code=2)
        assert out == ""


# ----------------------------------------------------------------- --strict for CI

TINY = [
    "--steps", "3", "--batch-size", "20", "--quiet", "--set", "model.kwargs.hidden=[16]", "--set", "sampler.steps=5",
    "--set", "train.plot_every=100",
]


@pytest.fixture(scope="module")
def regimes(tmp_path_factory):
    """One tiny digits checkpoint saved three times, trained as convergent, non-convergent
    and unknown: the same chains, so one verdict, which agrees with exactly one of the
    first two."""
    from landscape.cli.errors import run_guarded

    folder = tmp_path_factory.mktemp("strict")
    base = folder / "base.pt"
    assert run_guarded(cli, ["train", "--preset", "digits-nonconvergent", "--out", str(base), *TINY]) == 0
    content = torch.load(base, weights_only=True)
    paths = {}
    for regime in ("convergent", "non-convergent", "unknown"):
        content["regime"] = regime
        paths[regime] = folder / f"{regime}.pt"
        torch.save(content, paths[regime])
    return paths


CHECK = ["--multiples", "1,2", "--chains", "4", "--quiet", "--force"]


@pytest.mark.slow
def test_check_strict_exit_status_follows_the_verdict(regimes, capsys, tmp_path):
    results = {}
    for regime, path in regimes.items():
        code, out, err = run(capsys, "check", path, *CHECK, "--json", "--out", tmp_path / f"{regime}.png")
        assert code == 0, err  # without --strict: 0 whatever the verdict
        results[regime] = json.loads(out)
    verdict = results["convergent"]["verdict"]
    assert {r["verdict"] for r in results.values()} == {verdict}  # one model, one verdict
    agree, disagree = ("convergent", "non-convergent") if verdict == "convergent" else ("non-convergent", "convergent")
    expected = {agree: 0, disagree: 3, "unknown": 0 if verdict == "convergent" else 3}
    for regime, path in regimes.items():
        code, out, err = run(capsys, "check", path, *CHECK, "--strict", "--out", tmp_path / f"{regime}.png")
        assert code == expected[regime], (regime, verdict, err)
        assert out.rstrip().splitlines()[-1].startswith("pictures: ")  # the usual output comes first
        if code:
            assert err.strip() == (f"check failed (--strict): verdict {verdict}, "
                                   + ("regime unknown" if regime == "unknown" else f"trained as {regime}"))
        else:
            assert err == ""
    # --json --strict: the JSON, then the exit status
    code, out, _ = run(capsys, "check", regimes[disagree], *CHECK, "--strict", "--json",
                       "--out", tmp_path / "j.png")
    assert code == 3 and json.loads(out)["agreement"] == "disagrees"


@pytest.mark.slow
def test_compare_strict_fails_when_either_sides_check_fails(regimes, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compare = ["--multiples", "1,2", "--chains", "4", "--quiet", "--force", "--out", tmp_path / "cmp.png"]
    code, out, err = run(capsys, "compare", regimes["convergent"], regimes["non-convergent"], *compare, "--json",
                         "--strict")
    assert code == 3, err
    payload = json.loads(out)
    agreement = {name: check["agreement"] for name, check in payload["checks"].items()}
    assert sorted(agreement.values()) == ["agrees", "disagrees"]
    failed = next(name for name, a in agreement.items() if a == "disagrees")
    assert err.startswith("check failed (--strict): ") and f"{failed}: verdict" in err
    assert len(err.strip().splitlines()) == 1
    # the same without --strict: exit 0 whatever the verdicts
    code, _, err = run(capsys, "compare", regimes["convergent"], regimes["non-convergent"], *compare)
    assert code == 0, err
    # both sides agree with their regimes: passes
    agreeing = regimes["convergent" if payload["verdicts"]["convergent"] == "convergent" else "non-convergent"]
    twin = tmp_path / "twin.pt"
    twin.write_bytes(agreeing.read_bytes())
    code, out, err = run(capsys, "compare", agreeing, twin, *compare, "--strict")
    assert code == 0, err
    assert "picture: " in out


def test_no_help_shows_a_placeholder_where_a_value_belongs(capsys):
    # An unbounded number range once showed as "[x<=None]" after --box.
    for name in COMMANDS:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and "None" not in out, name
