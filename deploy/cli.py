"""The ``snn-deploy`` command line.

``snn-deploy --target xylo model.nir`` deploys (it is the ``deploy`` command; the word may be left out).
Exit codes: 0 ok, 1 user error (bad file, bad input, does not fit: one line, no traceback), 2 internal error
(set ``SNN_DEPLOY_DEBUG=1`` to see its traceback).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from . import __version__
from .conventions import METHODS, RESETS
from .errors import SnnDeployError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _DeployByDefault(click.Group):
    """A group where ``snn-deploy [options] MODEL`` means ``snn-deploy deploy [options] MODEL``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["deploy", *args]
        return super().parse_args(ctx, args)


def convention_options(f: Callable) -> Callable:
    """``--dt``, ``--method`` and ``--reset``, for every command that reads a model."""
    f = click.option(
        "--reset",
        type=click.Choice(RESETS),
        default=None,
        help="Reset convention: zero (to v_reset, NIR), subtract (v -= threshold in the firing step), "
        "subtract-next (snnTorch: subtracted in the next step). Default: graph metadata, else zero with a warning.",
    )(f)
    f = click.option(
        "--method",
        type=click.Choice(METHODS),
        default=None,
        help="Discretisation: euler (forward Euler, as snnTorch/Rockpool/Lava export) or exact (exponential).",
    )(f)
    f = click.option(
        "--dt", type=float, default=None, help="Time step in seconds (default: graph metadata or inferred)."
    )(f)
    return f


@click.group(cls=_DeployByDefault, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="snn-deploy")
def cli() -> None:
    """Deploy NIR spiking neural networks to neuromorphic chips, with bit-accurate emulators.

    \b
    snn-deploy --target xylo model.nir        deploy (writes model.xylo/)
    snn-deploy inspect model.nir [--json]     nodes, shapes, parameter ranges, conventions
    snn-deploy targets                        the targets and their limits
    """


@cli.command("inspect")
@click.argument("model", type=click.Path(dir_okay=True))
@convention_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print exactly one JSON object (nodes, edges, conventions, warnings).",
)
def inspect_command(
    model: str, dt: float | None, method: str | None, reset: str | None, as_json: bool
) -> None:
    """Show a NIR model's nodes, shapes, parameter ranges, conventions and warnings."""
    from .io import load

    graph = load(model, dt=dt, method=method, reset=reset)
    if as_json:
        click.echo(json.dumps(graph.summary()))
        return
    table = Table(title=f"{model}: {len(graph.nodes)} nodes, {len(graph.edges)} edges")
    for col in ("node", "type", "input", "output", "parameters"):
        table.add_column(col)
    for n in graph.nodes:
        params = ", ".join(
            f"{p} {np.min(v):.4g}..{np.max(v):.4g}" if v.size else f"{p} (empty)"
            for p, v in n.params().items()
        )
        table.add_row(
            n.name, n.type_name, str(list(n.input_shape or ())), str(list(n.output_shape or ())), params
        )
    out.print(table)
    edges = ", ".join(
        f"{a} -> {b}" + (" (recurrent)" if (a, b) in graph.recurrent else "") for a, b in graph.edges
    )
    out.print(f"edges: {edges}")
    for key, s in graph.conventions.to_dict().items():
        out.print(f"{key}: {s['value']} ({s['source']}{'; ' + s['note'] if s['note'] else ''})")
    for w in graph.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}")


@cli.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print the targets and their limits as JSON.")
def targets_command(as_json: bool) -> None:
    """List the deployment targets and their hardware limits."""
    from snn_deploy.backends import available_targets

    targets = available_targets()
    if as_json:
        click.echo(
            json.dumps([{"name": t.name, "aliases": list(t.aliases), "limits": t.limits} for t in targets])
        )
        return
    if not targets:
        out.print("no targets are available yet")
        return
    table = Table(title="targets")
    for col in ("target", "aliases", "description", "limits"):
        table.add_column(col)
    for t in targets:
        limits = ", ".join(f"{k}={v}" for k, v in t.limits.items())
        table.add_row(t.name, ", ".join(t.aliases), t.description, limits)
    out.print(table)


@cli.command("deploy")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", "-t", "target_name", required=True, help="Target name (see `snn-deploy targets`).")
@click.option(
    "-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Artefact directory."
)
@click.option(
    "--calibration",
    type=click.Path(dir_okay=False),
    default=None,
    help="Calibration input (.npz, key 'input').",
)
@click.option(
    "--allow-approximate", is_flag=True, help="Deploy even where the target cannot be exact (with a warning)."
)
@convention_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def deploy_command(
    model: str,
    target_name: str,
    out_dir: str | None,
    calibration: str | None,
    allow_approximate: bool,
    dt: float | None,
    method: str | None,
    reset: str | None,
    as_json: bool,
) -> None:
    """Deploy MODEL.nir to a target: writes the artefact directory and report.json, prints the summary."""
    from pathlib import Path

    from snn_deploy.backends import get_target

    from .io import load

    target = get_target(target_name)
    graph = load(model, dt=dt, method=method, reset=reset)
    dest = Path(out_dir) if out_dir else Path(model).with_suffix("." + target_name.split("-")[0])
    try:
        report = target.deploy(
            graph, dest, calibration=calibration, allow_approximate=allow_approximate, model_path=model
        )
    except SnnDeployError as e:
        raise e.with_file(model) from None
    if as_json:
        click.echo(json.dumps(report))
    else:
        from .report import print_summary

        print_summary(report, out)


@cli.command("validate")
@click.argument("artefact", type=click.Path(exists=False))
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Input .npz with key 'input': integer spike counts (T, N_in).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def validate_command(artefact: str, input_path: str, as_json: bool) -> None:
    """Run an artefact on the device (the chip, or the vendor simulator standing in for it) and on our emulator,
    and compare every recorded array. Exit code 1 when they differ."""
    from pathlib import Path

    from .errors import ArtefactError, InputError
    from .hil import validate_loihi, validate_xylo
    from .inputs import as_counts, load_input

    path = Path(artefact)
    x = load_input(input_path)
    if x.ndim != 2:
        raise InputError("input must be (T, N_in)", file=input_path, param="input")
    x = as_counts(x, file=input_path)
    if (path / "xylo.json").is_file():
        from snn_deploy.backends.xylo import XyloArtefact

        result = validate_xylo(XyloArtefact.load(path), x.astype(np.int32))
    elif (path / "network.net").is_file() or path.suffix == ".net":
        result = validate_loihi(path, x.astype(np.int32))
    else:
        raise ArtefactError("not a Xylo or Loihi artefact", file=artefact, fix="deploy a model first")
    if as_json:
        click.echo(json.dumps(result))
    else:
        out.print(f"device: {result['device']} ({result['kind']}), {result['steps']} steps")
        for k, v in result["mismatches"].items():
            out.print(f"  {k}: {'equal' if v == 0 else f'{v} elements differ'}")
        out.print("bit-exact" if result["bit_exact"] else "[red]MISMATCH[/red]")
    if not result["bit_exact"]:
        sys.exit(1)


@cli.command("doctor")
def doctor_command() -> None:
    """Which vendor tools, reference environments and devices are available here."""
    import importlib.util
    from pathlib import Path

    rows = []
    for mod, what in (
        ("xylosim", "Xylo reference simulator (XyloSim)"),
        ("rockpool", "Rockpool (XyloSim wrapper, from_specification)"),
        ("samna", "SynSense samna (Xylo hardware)"),
        ("jaxsnn", "jaxsnn (BrainScaleS-2 software)"),
        ("hxtorch", "hxtorch (BrainScaleS-2 hardware)"),
    ):
        rows.append((what, "yes" if importlib.util.find_spec(mod) else "no"))
    lava = Path(__file__).resolve().parent.parent / ".lava-venv" / "bin" / "python"
    rows.append(("Lava 0.10 reference environment (.lava-venv)", "yes" if lava.exists() else "no"))
    import jax

    rows.append(("JAX devices", ", ".join(str(d) for d in jax.devices())))
    table = Table(title="snn-deploy doctor")
    table.add_column("component")
    table.add_column("available")
    for r in rows:
        table.add_row(*r)
    out.print(table)


def _register_optional_commands() -> None:
    """Commands living in their own modules (simulate, exact, timing, ...), added when present."""
    import importlib

    for module, attr in (
        ("snn_deploy.cli_simulate", "simulate_command"),
        ("snn_deploy.cli_exact", "exact_command"),
        ("snn_deploy.cli_exact", "timing_command"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        cli.add_command(getattr(mod, attr))


_register_optional_commands()


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: runs the CLI with the exit-code contract of the module docstring."""
    # Repairs and inferred conventions are part of every command's output (graph.warnings), not stderr noise.
    from .infer import ConventionWarning
    from .io import RepairWarning

    warnings.filterwarnings("ignore", category=ConventionWarning)
    warnings.filterwarnings("ignore", category=RepairWarning)
    try:
        cli.main(args=argv, prog_name="snn-deploy", standalone_mode=False)
    except SnnDeployError as e:
        err.print(f"error: {e.one_line()}", markup=False)
        sys.exit(1)
    except click.exceptions.Abort:
        err.print("aborted", markup=False)
        sys.exit(1)
    except click.ClickException as e:
        err.print(f"error: {e.format_message()}", markup=False)
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # noqa: BLE001 -- the contract: anything else is an internal error, exit 2
        if os.environ.get("SNN_DEPLOY_DEBUG"):
            traceback.print_exc()
        err.print(
            f"internal error: {type(e).__name__}: {e} (set SNN_DEPLOY_DEBUG=1 for the traceback)",
            markup=False,
        )
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main()
