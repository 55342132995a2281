"""Unit systems of the engines we serve, by the names the engines use.

Every engine talks to :class:`mlipdrive.Potential` in its own units; metatomic
converts between those and the model's declared units (lengths of positions,
cells and neighbour vectors on the way in, energies on the way out). Forces
are energy/length and virials energy, in the same system.
"""

from typing import NamedTuple


class UnitSystem(NamedTuple):
    """Length and energy unit names, as metatomic spells them."""

    length: str
    energy: str


UNIT_SYSTEMS = {
    # ASE and LAMMPS 'metal': Å, eV
    "metal": UnitSystem("angstrom", "eV"),
    "ase": UnitSystem("angstrom", "eV"),
    # LAMMPS 'real': Å, kcal/mol
    "real": UnitSystem("angstrom", "kcal/mol"),
    # LAMMPS 'electron' and i-PI's wire units: Bohr, Hartree
    "electron": UnitSystem("Bohr", "Hartree"),
    "atomic": UnitSystem("Bohr", "Hartree"),
    # LAMMPS 'si': m, J
    "si": UnitSystem("m", "J"),
}


#: the LAMMPS unit styles the plugin supports (its table is generated from these)
LAMMPS_UNIT_STYLES = ("metal", "real", "electron", "si")

#: what to say to a LAMMPS user whose unit style is not supported
LAMMPS_UNITS_ADVICE = "use units " + ", ".join(LAMMPS_UNIT_STYLES) + " (the model's units are converted to them)"


def unit_system(name: str) -> UnitSystem:
    """The unit system called ``name``, or an error listing the supported ones."""
    try:
        return UNIT_SYSTEMS[name]
    except KeyError:
        raise ValueError(
            f"unsupported units '{name}'; mlipdrive supports {sorted(UNIT_SYSTEMS)} "
            f"(LAMMPS: {LAMMPS_UNITS_ADVICE})"
        ) from None
