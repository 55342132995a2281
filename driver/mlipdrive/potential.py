"""The :class:`Potential`: a loaded model that computes energies, forces and virials.

Conventions (the same in every engine):

- ``virial`` is the symmetric part of ``-dE/d(strain)``, a 3×3 matrix in energy
  units (LAMMPS's sign: ``sum r ⊗ f`` for pair potentials); ``stress`` is
  ``-virial / volume`` (ASE's sign, positive under tension). A model that is not
  exactly rotation-invariant (PET, P3M) has an antisymmetric part too, which is
  dropped as metatomic_ase and i-PI's driver drop it.
- cells are row matrices (one lattice vector per row, as in ASE and metatomic).
- with ``pairs`` given, the caller owns the neighbour search (LAMMPS, MPI
  domains): atoms are local atoms plus ghost atoms, usually with no periodicity,
  and only ``selected_atoms`` contribute to the energy. Forces are returned for
  every atom, ghosts included, for the caller to send back to their owners.
- which outputs are used (variants, the energy uncertainty, non-conservative
  forces and stress) follows the settings (:mod:`mlipdrive.outputs`);
  ``non_conservative`` takes forces and stress ('on'), or one of them ('forces',
  'stress'), from the model's heads, without a backward pass for them, and
  removes the heads' net force (as metatomic's ASE and i-PI engines do);
  ``scale`` multiplies energy, forces and virial.
"""

import contextlib
import dataclasses
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from metatensor.torch import Labels
from metatomic.torch import (
    AtomisticModel,
    ModelEvaluationOptions,
    ModelOutput,
    System,
    unit_conversion_factor,
)

from .neighbors import Candidates, VerletPairs, half_list_mask, neighbor_block
from .outputs import choose_outputs, ensemble_output
from .settings import InferenceSettings
from .extensions import no_missing_autograd
from .messages import evaluation_message, output_message
from .uncertainty import check_uncertainty
from .units import UnitSystem
from .verify import check_model_input

#: metatomic's dtype names (ModelCapabilities.dtype) -> torch dtypes
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}

#: relative size below which a periodic cell is degenerate (see Potential.check_cell)
DEGENERATE_CELL = 1e-6


@dataclasses.dataclass
class Results:
    """What one evaluation gives, in the potential's unit system, as float64."""

    energy: float
    forces: Optional[np.ndarray] = None
    #: (3, 3), symmetric: the symmetric part of -dE/d(strain) (module doc)
    virial: Optional[np.ndarray] = None
    #: (3, 3), symmetric: -virial / volume, for a cell periodic in all directions
    stress: Optional[np.ndarray] = None
    energies: Optional[np.ndarray] = None
    #: per-atom energy uncertainty in eV (whatever the unit system), where the
    #: model has one and the check is on; zero for atoms not selected
    energy_uncertainty: Optional[np.ndarray] = None
    #: ``ensemble``: the energy of each ensemble member (members,), and with
    #: forces their forces (members, n, 3) and virials (members, 3, 3)
    energy_ensemble: Optional[np.ndarray] = None
    forces_ensemble: Optional[np.ndarray] = None
    virial_ensemble: Optional[np.ndarray] = None


class InvalidInput(ValueError):
    """Input that cannot be evaluated; the message names the problem and the fix."""


class Potential:
    """A metatomic model ready to evaluate, with its settings and unit system."""

    def __init__(
        self,
        model: AtomisticModel,
        device: torch.device,
        settings: InferenceSettings,
        units: UnitSystem,
    ):
        self.model = model
        self.device = device
        self.settings = settings
        self.units = units
        self.capabilities = model.capabilities()
        self.dtype = TORCH_DTYPES[self.capabilities.dtype]
        # the dtype the model was exported with (load() records it before conversion)
        self.exported_dtype = self.capabilities.dtype
        self.atomic_types = list(self.capabilities.atomic_types)
        self.requested_neighbor_lists = list(model.requested_neighbor_lists())
        self.cutoffs = [o.engine_cutoff(units.length) for o in self.requested_neighbor_lists]
        self.interaction_range = self.capabilities.interaction_range * unit_conversion_factor(
            self.capabilities.length_unit, units.length
        )
        skin = settings.skin * unit_conversion_factor("angstrom", units.length)
        self.verlet = VerletPairs(max(self.cutoffs, default=0.0), skin)
        self.timings: Dict[str, float] = defaultdict(float)
        #: what the settings asked for but could not do here ("tf32: no effect on
        #: CPU"); filled by :func:`mlipdrive.load`
        self.notes: List[str] = []
        #: the model outputs the settings ask for (variants, uncertainty, heads)
        self.outputs = choose_outputs(
            self.capabilities.outputs, settings, model.metadata().name or "model"
        )
        self._energy_key = self.outputs.energy
        #: whole-structure evaluations so far (the uncertainty warnings count them)
        self.evaluations = 0
        # the model sums its per-atom energies itself, at a cost (metatrain's
        # sum_over_samples); with atom_energy_sum this driver sums them
        self.sum_atom_energies = settings.atom_energy_sum and (
            self.capabilities.outputs[self._energy_key].sample_kind == "atom"
        )
        self._types_cache: Optional[Tuple[np.ndarray, torch.Tensor]] = None
        self._candidates_cache: Dict[bool, Tuple[int, torch.Tensor, torch.Tensor]] = {}
        self._valid_cell: Optional[Tuple[bytes, bytes]] = None

    # ------------------------------------------------------------------ public API

    def compute(
        self,
        positions,
        types,
        cell=None,
        pbc=None,
        *,
        forces: bool = True,
        stress: bool = True,
        per_atom: bool = False,
        selected_atoms=None,
        pairs=None,
        pairs_pbc=None,
        pairs_local: Optional[int] = None,
        partial: bool = False,
        ensemble: str = "",
    ) -> Results:
        """Energy (and forces, virial/stress, per-atom energies) of one structure.

        :param positions: (n, 3) array of positions (numpy or torch)
        :param types: (n,) atomic numbers
        :param cell: (3, 3) cell, one lattice vector per row; zeros or None if none
        :param pbc: (3,) periodicity; default: periodic where the cell vector is set
        :param selected_atoms: indices of the atoms whose energies are summed
            (default all)
        :param pairs: optional ``(pairs (m, 2), shifts (m, 3))``, a *full* list of
            candidate pairs (both directions) that contains every pair within the
            model's cutoff; then no neighbour search is done
        :param pairs_pbc: the periodicity ``pairs`` were searched with, where it
            is not ``pbc`` (MPI domains whose stress comes from the model's head
            get the structure's cell and pbc); read by the ``verify`` setting
        :param pairs_local: ``pairs`` hold only the pairs with one of the first
            ``pairs_local`` atoms (a short-range model's MPI domain, see
            :mod:`mlipdrive.halo`); read by the ``verify`` setting
        :param partial: this is one domain's share of a larger structure: skip
            :meth:`finish` (the uncertainty check and the removal of the net
            non-conservative force), which the caller applies to the whole
        :param ensemble: '' (none), 'energy' (the energy of each member of the
            model's ``energy_ensemble``) or 'forces' (also their forces and
            virials, one backward pass per member), as i-PI's driver offers

        A structure without atoms has energy 0, forces of shape (0, 3) and a zero
        virial, without a call to the model (metatomic energies are sums over
        atoms). Degenerate periodic cells are refused (see :meth:`check_cell`).
        """
        inputs = self.check_inputs(positions, types, cell, pbc)
        _, types_np, _, pbc_np = inputs
        selection = self._selection_labels(selected_atoms, len(types_np))
        if len(types_np) == 0:
            return _empty_results(pbc_np, forces, stress, per_atom)
        results = self._evaluate(
            inputs, selection, (pairs, pairs_pbc, pairs_local), forces, stress, per_atom, ensemble
        )
        if not partial:
            self.finish(results)
        return results

    def _evaluate(self, inputs, selection, given_pairs, forces, stress, per_atom, ensemble):
        """The model's outputs and their derivatives for checked ``inputs``
        (positions, types, cell, pbc); ``given_pairs``: (pairs, pairs_pbc,
        pairs_local), the other arguments as in :meth:`compute`."""
        positions_np, types_np, cell_np, pbc_np = inputs
        pairs, pairs_pbc, pairs_local = given_pairs
        # non_conservative: the quantities the model's heads give need no leaf
        head_forces, head_stress = self.settings.forces_from_head, self.settings.stress_from_head
        system, positions_t, strain = self._system(
            positions_np, types_np, cell_np, pbc_np, forces and not head_forces,
            stress and not head_stress, pairs,
        )
        if self.settings.verify:
            with timed(self.timings, "verify"):
                search_pbc = pbc_np if pairs_pbc is None else np.asarray(pairs_pbc, dtype=bool)
                check_model_input(
                    self, system, types_np, positions_np, cell_np, pbc_np, search_pbc, pairs_local
                )
        energy, results, outputs = self._forward(
            system, per_atom, selection, forces, stress, ensemble
        )
        if ensemble:
            self._ensemble(results, outputs, ensemble, positions_t, strain)
        self._direct_forces(results, outputs, system, forces and head_forces, stress and head_stress)
        self._backward(results, energy, positions_t if forces and not head_forces else None, strain)
        results.virial = _symmetric(results.virial)
        results.stress = _stress(results.virial, cell_np, pbc_np)
        _scale(results, self.settings.scale)
        return results

    def finish(self, results: Results, where: Optional[str] = None, labels=None):
        """What is done once per whole structure (after the reduction when domains
        share it): remove the net non-conservative force, check the uncertainty
        (``where`` names the step in the message, default 'evaluation N')."""
        self.evaluations += 1
        if self.settings.forces_from_head and results.forces is not None and len(results.forces):
            results.forces -= results.forces.mean(axis=0)
        if results.energy_uncertainty is not None:
            with timed(self.timings, "uncertainty check"):
                check_uncertainty(
                    results.energy_uncertainty,
                    self.settings.uncertainty_threshold,
                    self.settings.uncertainty_action,
                    where or f"evaluation {self.evaluations}",
                    labels,
                )

    def energy_output(self, per_atom: bool = False) -> ModelOutput:
        """The energy output to ask the model for; its values sum to the energy."""
        if per_atom and self.capabilities.outputs[self._energy_key].sample_kind != "atom":
            # asked anyway, the model fails inside (GAP: "inputs to 'add' should have
            # the same samples") or gives per-structure values
            raise InvalidInput(output_message(
                "no_per_atom_energy", model=self.model.metadata().name or "model",
                output=self._energy_key,
            ))
        per_atom = per_atom or self.sum_atom_energies
        return ModelOutput(unit=self.units.energy, sample_kind="atom" if per_atom else "system")

    # ------------------------------------------------------------------ internals

    def _system(self, positions_np, types_np, cell_np, pbc_np, forces, stress, pairs):
        """(the metatomic System with its neighbour lists, the positions tensor,
        the strain tensor or None): the leaves that forces and virial come from."""
        # with caller-owned pairs (MPI domains, ghosts) the atom set changes by design
        types_t = self._types_tensor(types_np, cache=pairs is None)
        positions_t = _as_tensor(positions_np, self.dtype, self.device)
        # metatomic wants zero cell vectors along non-periodic directions (slabs)
        model_cell = np.where(pbc_np[:, None], cell_np, 0.0)
        cell_t = _as_tensor(model_cell, self.dtype, self.device)
        if forces:
            positions_t.requires_grad_(True)
        strain = None
        positions_used, cell_used = positions_t, cell_t
        if stress:
            # the virial is -dE/d(strain) at strain = identity
            strain = torch.eye(3, dtype=self.dtype, device=self.device, requires_grad=True)
            positions_used, cell_used = positions_t @ strain, cell_t @ strain
        with timed(self.timings, "neighbors"):
            system = System(
                types_t, positions_used, cell_used, torch.from_numpy(pbc_np).to(self.device)
            )
            self._add_neighbor_lists(system, positions_np, model_cell, pbc_np, pairs)
        return system, positions_t, strain

    def model_outputs(
        self, per_atom: bool, forces: bool, stress: bool, ensemble: str = ""
    ) -> Dict[str, ModelOutput]:
        """The outputs to ask the model for in one evaluation."""
        requested = {self._energy_key: self.energy_output(per_atom)}
        if ensemble:
            requested[self.ensemble_key()] = ModelOutput(unit=self.units.energy, sample_kind="system")
        chosen, units = self.outputs, self.units
        if chosen.uncertainty is not None:
            # in eV whatever the unit system: the threshold is in eV
            requested[chosen.uncertainty] = ModelOutput(unit="eV", sample_kind="atom")
        if chosen.non_conservative_forces is not None and forces:
            requested[chosen.non_conservative_forces] = ModelOutput(
                unit=f"{units.energy}/{units.length}", sample_kind="atom"
            )
        if chosen.non_conservative_stress is not None and stress:
            requested[chosen.non_conservative_stress] = ModelOutput(
                unit=f"{units.energy}/{units.length}^3", sample_kind="system"
            )
        return requested

    def ensemble_key(self) -> str:
        """The model's energy ensemble output (OutputChoiceError if it has none)."""
        return ensemble_output(
            self.capabilities.outputs, self.settings, self.model.metadata().name or "model"
        )

    def _ensemble(self, results: Results, outputs, ensemble: str, positions_t, strain):
        """The members' energies and, for 'forces', their forces and virials."""
        members = outputs[self.ensemble_key()].block().values.reshape(-1)
        results.energy_ensemble = _to_numpy(members)
        if ensemble != "forces":
            return
        if self.settings.non_conservative != "off" or positions_t is None or strain is None:
            raise InvalidInput(
                "an ensemble of forces and virials needs forces and stress by autograd: "
                "turn non_conservative off"
            )
        forces, virials = [], []
        with timed(self.timings, "backward"), no_missing_autograd():
            for member in members:
                gradient = torch.autograd.grad(member, [positions_t, strain], retain_graph=True)
                forces.append(-_to_numpy(gradient[0]))
                virials.append(-_to_numpy(gradient[1]))
        results.forces_ensemble = np.stack(forces)
        results.virial_ensemble = np.stack(virials)

    def _forward(self, system, per_atom: bool, selection, forces: bool, stress: bool, ensemble=""):
        """(the energy tensor, :class:`Results` with the energy, the per-atom
        energies if asked and the uncertainty, the model's outputs), or
        FloatingPointError for a non-finite energy."""
        options = ModelEvaluationOptions(
            length_unit=self.units.length,
            outputs=self.model_outputs(per_atom, forces, stress, ensemble),
            selected_atoms=selection,
        )
        with timed(self.timings, "forward"):
            outputs = self.model([system], options, self.settings.check_consistency)
            values = outputs[self._energy_key].block().values
            energy = values.sum()
        results = Results(energy=float(energy.detach()))
        if not np.isfinite(results.energy):
            raise FloatingPointError(
                "the model returned a non-finite energy; check the structure (atoms "
                "too close?) and that the model suits these elements"
            )
        if per_atom:
            results.energies = values.detach().reshape(-1).to(torch.float64).cpu().numpy()
        if self.outputs.uncertainty is not None:
            n_atoms = len(system.positions)
            block = outputs[self.outputs.uncertainty].block()
            results.energy_uncertainty = _per_atom(
                block, n_atoms, 1, self.outputs.uncertainty, UNCERTAINTY_ADVICE
            ).reshape(-1)
        return energy, results, outputs

    def _direct_forces(self, results: Results, outputs, system, forces: bool, stress: bool):
        """Forces and virial from the model's non-conservative outputs: forces on
        the selected atoms (zero on the others: ghosts get no force), virial
        ``-stress * volume`` for a cell periodic along all three axes."""
        chosen = self.outputs
        if forces:
            block = outputs[chosen.non_conservative_forces].block()
            results.forces = _per_atom(
                block, len(system.positions), 3, chosen.non_conservative_forces, HEAD_ADVICE
            )
            if not np.isfinite(results.forces).all():
                raise FloatingPointError(
                    "the model returned non-finite non-conservative forces; check the "
                    "structure (atoms too close?) and that the model suits these elements"
                )
        if stress and chosen.non_conservative_stress is not None and bool(system.pbc.all()):
            values = _checked_values(
                outputs[chosen.non_conservative_stress].block(), (1, 3, 3, 1),
                chosen.non_conservative_stress, "one 3x3 matrix per structure", HEAD_ADVICE,
            )
            volume = abs(float(torch.det(system.cell.detach().to(torch.float64))))
            results.virial = -values.reshape(3, 3) * volume

    def _backward(self, results: Results, energy, positions_t, strain):
        """Fill ``results.forces`` (if ``positions_t``) and ``results.virial`` (if
        ``strain``) from one backward pass."""
        inputs = [leaf for leaf in (positions_t, strain) if leaf is not None]
        if not inputs:
            return
        with timed(self.timings, "backward"), no_missing_autograd():
            gradients = torch.autograd.grad(energy, inputs)
        if positions_t is not None:
            results.forces = -_to_numpy(gradients[0])
            if not np.isfinite(results.forces).all():
                raise FloatingPointError(
                    "the model returned non-finite forces; check the structure "
                    "(atoms too close?) and that the model suits these elements"
                )
        if strain is not None:
            results.virial = -_to_numpy(gradients[-1])

    def check_inputs(self, positions, types, cell, pbc):
        """Inputs as contiguous numpy arrays, or :class:`InvalidInput` naming the problem.

        Periodic cells are checked by :meth:`check_cell`.
        """
        positions = _as_numpy(positions, np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise InvalidInput(
                f"positions must have shape (n_atoms, 3), got {positions.shape}"
            )
        n_atoms = positions.shape[0]
        types = _as_numpy(types, np.int32)
        if types.shape != (n_atoms,):
            raise InvalidInput(
                f"types must have shape ({n_atoms},) to match the positions, "
                f"got {types.shape}"
            )
        cell = np.zeros((3, 3)) if cell is None else _as_numpy(cell, np.float64)
        if cell.shape != (3, 3):
            raise InvalidInput(f"cell must have shape (3, 3), got {cell.shape}")
        if pbc is None:
            pbc = np.abs(cell).sum(axis=1) > 0
        pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
        if not np.isfinite(positions).all():
            bad = np.unique(np.nonzero(~np.isfinite(positions))[0])
            raise InvalidInput(
                f"positions of atoms {bad[:10].tolist()} are not finite (NaN/inf); "
                "the integrator or the input structure produced them"
            )
        if not np.isfinite(cell).all():
            raise InvalidInput("the cell is not finite (NaN/inf)")
        self.check_cell(cell, pbc)
        return positions, types, cell, pbc

    def check_cell(self, cell: np.ndarray, pbc: np.ndarray):
        """:class:`InvalidInput` if a periodic direction has a degenerate cell vector.

        The test has no absolute length, with ``DEGENERATE_CELL`` = 1e-6: each
        periodic vector must be longer than 1e-6 times the larger of the longest
        periodic vector and the model's cutoff (shorter, an atom would have over a
        million periodic images within that distance), and the periodic vectors
        must span a volume (an area for two; |det| for three) of at least 1e-6
        times the product of their lengths. Vectors along non-periodic axes are
        not checked; they may be zero.
        """
        # MD keeps its cell: the last cell that passed is not checked again
        key = (cell.tobytes(), pbc.tobytes())
        if not pbc.any() or key == self._valid_cell:
            return
        lengths = np.sqrt((cell * cell).sum(axis=1))
        scale = max(lengths[pbc].max(), max(self.cutoffs, default=0.0))
        fix = (
            "; a periodic direction needs a non-degenerate cell vector (the "
            "structure's repeat); for a slab or a cluster, set pbc False along that axis"
        )
        for axis in np.flatnonzero(pbc):
            if lengths[axis] <= DEGENERATE_CELL * scale:
                size = "zero" if lengths[axis] == 0 else (
                    f"only {lengths[axis]:.3g} {self.units.length} long"
                )
                raise InvalidInput(
                    f"periodic along cell vector {axis} but that vector is {size} "
                    f"(cell {cell.tolist()})" + fix
                )
        periodic = cell[pbc]
        spanned = np.sqrt(abs(np.linalg.det(periodic @ periodic.T)))
        if spanned < DEGENERATE_CELL * np.prod(lengths[pbc]):
            raise InvalidInput(
                f"the periodic cell vectors {periodic.tolist()} are nearly linearly "
                f"dependent: they span {spanned / np.prod(lengths[pbc]):.3g} of the "
                "volume of a right-angled cell with the same lengths" + fix
            )
        self._valid_cell = key

    def _types_tensor(self, types: np.ndarray, cache: bool) -> torch.Tensor:
        """Atom types as a device tensor, checked against the model's types.

        With ``fixed_composition`` (and ``cache``) the check and the conversion are
        done once; a later call with other types is an error, never a silent re-use.
        """
        if not cache:
            return self._checked_types(types)
        if self.settings.fixed_composition and self._types_cache is not None:
            cached_np, cached_t = self._types_cache
            if types is cached_np or np.array_equal(types, cached_np):
                return cached_t
            raise InvalidInput(
                "the atom types changed while 'fixed_composition' is on; load the "
                "model again, or turn fixed_composition off (it is part of 'turbo')"
            )
        types_t = self._checked_types(types)
        self._types_cache = (types.copy(), types_t)
        return types_t

    def _checked_types(self, types: np.ndarray) -> torch.Tensor:
        check_types(types, self.atomic_types)
        return torch.from_numpy(types).to(self.device)

    def _add_neighbor_lists(self, system, positions_np, cell_np, pbc_np, pairs):
        if pairs is None:
            full_pairs, full_shifts = self.verlet.pairs(positions_np, cell_np, pbc_np)
            key = self.verlet.rebuilds
        else:
            full_pairs, full_shifts = pairs
            key = -1
        for options, cutoff in zip(self.requested_neighbor_lists, self.cutoffs):
            candidates = self._candidates(options.full_list, key, full_pairs, full_shifts)
            block = neighbor_block(options, cutoff, system.positions, system.cell, candidates)
            system.add_neighbor_list(options, block)

    def _candidates(self, full_list: bool, key: int, pairs, shifts) -> Candidates:
        """Full or half candidate pairs on the device, cached per rebuild."""
        cached = self._candidates_cache.get(full_list)
        if key >= 0 and cached is not None and cached[0] == key:
            return cached[1]
        pairs_t = torch.as_tensor(np.asarray(pairs), dtype=torch.int32).reshape(-1, 2)
        shifts_t = torch.as_tensor(np.asarray(shifts), dtype=torch.int32).reshape(-1, 3)
        if not full_list:
            keep = half_list_mask(pairs_t, shifts_t)
            pairs_t, shifts_t = pairs_t[keep], shifts_t[keep]
        candidates = Candidates(pairs_t.to(self.device), shifts_t.to(self.device))
        if key >= 0:
            self._candidates_cache[full_list] = (key, candidates)
        return candidates

    def _selection_labels(self, selected_atoms, n_atoms: int) -> Optional[Labels]:
        if selected_atoms is None:
            return None
        atoms = torch.as_tensor(np.asarray(selected_atoms), dtype=torch.int32).reshape(-1)
        if atoms.numel() and (atoms.min() < 0 or atoms.max() >= n_atoms):
            raise InvalidInput(f"selected_atoms must be indices in [0, {n_atoms})")
        values = torch.stack([torch.zeros_like(atoms), atoms], dim=1)
        return Labels(["system", "atom"], values.to(self.device))


@contextlib.contextmanager
def timed(timings: Dict[str, float], phase: str):
    """Add the seconds spent in the ``with`` block to ``timings[phase]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


def check_types(types: np.ndarray, known: Sequence[int]):
    """:class:`InvalidInput` if ``types`` holds atomic types outside ``known`` (the
    model's), naming them and the known ones."""
    unsupported = ~np.isin(types, known)
    if unsupported.any():
        bad = sorted(set(types[unsupported].tolist()))
        raise InvalidInput(
            f"atomic types {bad} are not supported by this model, which knows "
            f"{list(known)}; use a model trained for these elements"
        )


#: what to do about an output of the wrong shape (:func:`_checked_values`)
HEAD_ADVICE = evaluation_message("head_advice")
UNCERTAINTY_ADVICE = evaluation_message("uncertainty_advice")


def _per_atom(block, n_atoms: int, width: int, output: str, advice: str) -> np.ndarray:
    """(n_atoms, width) float64 values of the per-atom output ``output``, zero for
    the atoms it has no sample for (atoms not selected)."""
    rows = len(block.samples) if "atom" in block.samples.names else "atoms"
    expected = (rows, width, 1) if width > 1 else (rows, 1)
    meaning = "one 3-vector per atom" if width == 3 else "one value per atom"
    values = _checked_values(block, expected, output, meaning, advice).reshape(-1, width)
    atoms = block.samples.column("atom").to(torch.int64).cpu().numpy()
    result = np.zeros((n_atoms, width))
    result[atoms] = values
    return result


def _checked_values(block, expected: tuple, output: str, meaning: str, advice: str) -> np.ndarray:
    """The values of ``output``'s block as float64 numpy, or RuntimeError naming
    the output, the shape metatomic defines for it and the shape it has."""
    actual = tuple(block.values.shape)
    if actual != expected:
        def text(shape):
            return "(" + ", ".join(str(size) for size in shape) + ")"

        raise RuntimeError(evaluation_message(
            "output_shape", output=output, actual=text(actual), expected=text(expected),
            meaning=meaning, advice=advice,
        ))
    return _to_numpy(block.values)


def _scale(results: Results, scale: float):
    """Multiply energy, forces, virial, stress and per-atom energies by ``scale``."""
    if scale == 1.0:
        return
    results.energy *= scale
    for name in ("forces", "virial", "stress", "energies", "energy_ensemble",
                 "forces_ensemble", "virial_ensemble"):
        value = getattr(results, name)
        if value is not None:
            setattr(results, name, value * scale)


def _empty_results(pbc, forces: bool, stress: bool, per_atom: bool) -> Results:
    """The exact results for a structure without atoms: all zero, with a stress
    where :func:`_stress` would give one."""
    return Results(
        energy=0.0,
        forces=np.zeros((0, 3)) if forces else None,
        virial=np.zeros((3, 3)) if stress else None,
        stress=np.zeros((3, 3)) if stress and pbc.all() else None,
        energies=np.zeros(0) if per_atom else None,
    )


def _symmetric(virial: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """The symmetric part of a virial: an antisymmetric part (PET's, P3M's
    -dE/d(strain) have one) would only rotate the cell; metatomic_ase, i-PI's
    driver and LAMMPS's six components drop it too."""
    return None if virial is None else 0.5 * (virial + virial.T)


def _stress(virial: Optional[np.ndarray], cell: np.ndarray, pbc: np.ndarray):
    """``-virial / volume`` for a cell periodic along all three axes, else None
    (check_cell has made sure that such a cell has a volume)."""
    if virial is None or not pbc.all():
        return None
    return -virial / abs(np.linalg.det(cell))


def _as_numpy(array, dtype) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(array, dtype=dtype)


def _as_tensor(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tensor of ``array``; shares its memory when dtype and device already match."""
    tensor = torch.from_numpy(array).to(dtype=dtype, device=device)
    if tensor.data_ptr() == array.ctypes.data:
        # never let autograd bookkeeping touch the caller's buffer
        tensor = tensor.view_as(tensor)
    return tensor


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).cpu().numpy()
